"""Exceptions of the package.

Every problem with a user's input raises :class:`InputError` (or a subclass). Its message names
the file, the variable and what was expected, so the command line can print it on one line.
"""

from __future__ import annotations

from os import PathLike


class FluxbridgeError(Exception):
    """Base class of all fluxbridge errors."""


class InputError(FluxbridgeError, ValueError):
    """A file, variable or setting that fluxbridge cannot use as given.

    Parameters
    ----------
    message
        What is wrong and, where possible, what to do about it.
    path
        The file concerned, if any.
    variable
        The variable, column or configuration key concerned, if any.
    expected
        What was expected instead.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        variable: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.variable = variable
        self.expected = expected
        self.detail = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = []
        if self.path:
            parts.append(self.path)
        if self.variable:
            parts.append(f"variable {self.variable!r}")
        head = ": ".join([", ".join(parts), self.detail]) if parts else self.detail
        if self.expected:
            head += f" (expected {self.expected})"
        return head


class InputProblems(InputError):
    """Several problems with the inputs, listed together on one line.

    Parameters
    ----------
    problems
        Each problem, naming its file, variable and what was expected.
    """

    def __init__(self, problems: list[InputError]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problems with the inputs: " + " | ".join(
            f"{i}) {p}" for i, p in enumerate(self.problems, 1)))


class ConfigError(InputError):
    """An invalid experiment configuration."""


class GridMismatchError(InputError):
    """Two gridded inputs that should share a grid do not."""


class ClusterError(FluxbridgeError):
    """The dask cluster failed under a computation: a worker died, the scheduler went away.

    What finished before is kept; the message says so, and that a rerun resumes.
    """
