"""What :func:`fluxbridge.io.inspect.inspect_file` found out about a file, and its helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


@dataclass
class FileReport:
    """What :func:`inspect_file` found out about one file.

    Attributes
    ----------
    path
        The file.
    usable
        Whether fluxbridge can use it.
    reason
        Why not (one line naming the file), None when usable.
    format
        The recognised format, e.g. ``"FLUXNET2015 FULLSET site file"``.
    resolution
        Time step (``HH``, ``DD``, ``MM``, ``hourly``, ``monthly`` ...), if any.
    period
        First and last time, if any.
    variables
        Variable name → units (canonical names for what the readers produce).
    coverage
        Variable → share of finite values [1].
    notes
        Further findings (what is missing, what the name gets wrong, how it can be used).
    """

    path: Path
    usable: bool = False
    reason: str | None = None
    format: str = "unknown"
    resolution: str | None = None
    period: tuple[str, str] | None = None
    variables: dict[str, str] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """A human-readable multi-line report."""
        lines = [f"file:       {self.path}", f"format:     {self.format}"]
        if self.resolution:
            lines.append(f"resolution: {self.resolution}")
        if self.period:
            lines.append(f"period:     {self.period[0]} .. {self.period[1]}")
        if self.variables:
            lines.append("variables:  " + ", ".join(
                f"{k} [{v}]" for k, v in self.variables.items()))
        if self.coverage:
            lines.append("coverage:   " + ", ".join(
                f"{k} {100 * v:.1f}%" for k, v in self.coverage.items()))
        lines.extend(f"note:       {n}" for n in self.notes)
        lines.append("usable:     " + ("yes" if self.usable else f"no — {self.reason}"))
        return "\n".join(lines)


def one_line(text: str, path: Path) -> str:
    """``text`` on one line, starting with ``path`` unless it names it."""
    line = " ".join(str(text).split())
    return line if str(path) in line else f"{path}: {line}"


def period(times: np.ndarray | pd.DatetimeIndex, fmt: str = "%Y-%m-%d") -> tuple[str, str]:
    """First and last of ``times`` as text."""
    t = pd.DatetimeIndex(np.asarray(times))
    return t[0].strftime(fmt), t[-1].strftime(fmt)


def finite_share(values: xr.DataArray | np.ndarray) -> float:
    """Share of finite values [1] (0 for none)."""
    arr = np.asarray(values, dtype=float)
    return float(np.isfinite(arr).mean()) if arr.size else 0.0
