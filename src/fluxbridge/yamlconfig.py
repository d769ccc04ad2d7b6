"""Reading YAML configuration files safely and validating them with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fluxbridge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def read_yaml(path: str | Path, expected: str) -> Any:
    """The parsed content of a YAML file (``yaml.safe_load``).

    Raises
    ------
    ConfigError
        If the file is missing (``expected`` says what should be there) or not valid YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("configuration file not found", path=path, expected=expected)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}".replace("\n", " "), path=path) from None


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
