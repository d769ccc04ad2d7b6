"""Reading YAML configuration files safely and validating them with clear errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fluxbridge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that gives one key twice (YAML would silently keep the last value).

    Parameters
    ----------
    key
        The key given twice.
    lines
        The (1-based) lines of its first and second occurrence.
    """

    def __init__(self, key: Any, lines: tuple[int, int]) -> None:
        self.key, self.lines = key, lines
        super().__init__(f"key {key!r} given twice (lines {lines[0]} and {lines[1]})")


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (merge keys ``<<``
    may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of ``node``; raises :class:`DuplicateKeyError` on a repeated key."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first != line:
                raise DuplicateKeyError(key, (first, line))
        return super().construct_mapping(node, deep=deep)


def _non_finite(data: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Dotted key and value of every non-finite number (.inf, .nan) in parsed YAML."""
    if isinstance(data, float) and not math.isfinite(data):
        yield where or "(top level)", data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _non_finite(value, f"{where}[{i}]")


def read_yaml(path: str | Path, expected: str) -> Any:
    """The parsed content of a YAML file (``yaml.safe_load``, a key given twice refused).

    Raises
    ------
    ConfigError
        If the file is missing (``expected`` says what should be there), not valid YAML,
        gives a key twice in one mapping, or holds a non-finite number (.inf, .nan).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("configuration file not found", path=path, expected=expected)
    try:
        data = yaml.load(path.read_text(), Loader=StrictSafeLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(str(exc), path=path, variable=str(exc.key),
                          expected="each key once in its mapping") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}".replace("\n", " "), path=path) from None
    bad = next(_non_finite(data), None)
    if bad is not None:
        raise ConfigError(f"non-finite number {bad[1]}", path=path, variable=bad[0],
                          expected="a finite number")
    return data


def load_yaml(path: str | Path, expected: str, parse: Callable[[Any, Path], T]) -> T:
    """Read a YAML file (``yaml.safe_load``) and parse it with ``parse(data, path)``;
    ``expected`` says what should be there when the file is missing."""
    path = Path(path)
    return parse(read_yaml(path, expected), path)


def validate(model: type[M], data: Any, path: Path | None, example_keys: str) -> M:
    """Validate a parsed mapping into ``model``; the error names the key, value and rule."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping of keys", path=path,
                          expected=f"YAML keys such as {example_keys}")
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"invalid value {first.get('input')!r}: {first['msg']}{more}",
                          path=path, variable=key) from None


def packaged_template(name: str) -> str:
    """The text of a template shipped in ``fluxbridge/templates``."""
    return resources.files("fluxbridge.templates").joinpath(name).read_text()
