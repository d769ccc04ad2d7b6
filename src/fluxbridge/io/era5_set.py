"""One file of an ERA5 set delivered one variable per file (``era5_t2m_2004.nc``, ...).

The CDS commonly gives one variable per file. :func:`fluxbridge.io.era5.open_era5` reads such a
set when all its files are named together; :func:`inspect_era5_part` says what one of them
is, checks its own variables, finds its siblings beside it by name and opens the set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.era5 import REQUIRED, UNITS, open_era5
from fluxbridge.io.file_report import FileReport, period

CDS_NAMES = {"t2m": "2m_temperature", "d2m": "2m_dewpoint_temperature",
             "ssrd": "surface_solar_radiation_downwards", "tp": "total_precipitation"}
"""Short ERA5 name → the CDS request name, which file names often carry instead."""

_GIVES = {"t2m": "ta (and vpd with d2m)", "d2m": "vpd (with t2m)", "ssrd": "sw_in",
          "tp": "precip"}
"""What each required variable becomes in the canonical predictors."""


def siblings(path: Path, present: list[str]) -> dict[str, Path | None]:
    """The files beside ``path`` that hold the other required variables, by name.

    A sibling's name is ``path``'s with the variable's short (``t2m``) or CDS name
    (``2m_temperature``) swapped for the other's; None where no such file exists, or where
    ``path``'s name carries no variable name.
    """
    lacking = [n for n in REQUIRED if n not in present]
    found: dict[str, Path | None] = dict.fromkeys(lacking)
    for own in present:
        for names in (CDS_NAMES, {n: n for n in REQUIRED}):
            if names[own] not in path.name:
                continue
            for other in lacking:
                candidate = path.with_name(path.name.replace(names[own], names[other]))
                if found[other] is None and candidate.is_file():
                    found[other] = candidate
    return found


def _check_own(ds: xr.Dataset, present: list[str], path: Path) -> str:
    """Units of the file's variables, and the name of its time dimension."""
    for name in present:
        units = ds[name].attrs.get("units")
        if units not in UNITS[name]:
            raise InputError(f"units {units!r}", path=path, variable=name,
                             expected=" or ".join(repr(u) for u in UNITS[name]))
    dim = next((d for d in ("valid_time", "time") if d in ds.dims), None)
    if dim is None or not np.issubdtype(ds[dim].dtype, np.datetime64):
        raise InputError("no decodable time axis", path=path, variable="valid_time/time",
                         expected="an ERA5 file with 'valid_time' or 'time'")
    return dim


def inspect_era5_part(path: Path, report: FileReport, present: list[str]) -> None:
    """Report one file of a per-variable ERA5 set: what it holds and whether its set opens.

    The file is usable when its own variables, units and time axis are right; the notes
    name the siblings it needs (found beside it or not) and what the set gives when opened.
    """
    with xr.open_dataset(path, chunks={}) as ds:
        dim = _check_own(ds, present, path)
        times = pd.DatetimeIndex(ds[dim].values)
        hours = float(np.median(np.diff(times.asi8))) / 3.6e12 if times.size > 1 else 0.0
        report.variables = {n: str(ds[n].attrs["units"]) for n in present}
        report.coverage = {n: float(ds[n].notnull().mean().compute()) for n in present}
        shape = [ds.sizes[d] for d in ("latitude", "lat", "longitude", "lon") if d in ds.sizes]
    report.format = f"one variable of an ERA5 set ({', '.join(present)} of {', '.join(REQUIRED)})"
    report.resolution = "hourly" if hours < 1.5 else "daily" if hours < 30 else "monthly"
    report.period = period(times)
    gives = "; ".join(_GIVES[n] for n in present)
    report.notes.append(f"grid {' x '.join(map(str, shape))}; gives {gives}")
    found = siblings(path, present)
    missing = [n for n, p in found.items() if p is None]
    token = next((t for t in (CDS_NAMES[present[0]], present[0]) if t in path.name), None)
    glob = path.name.replace(token, "*") if token else "*.nc"
    report.notes.append("usable with its siblings: name the files of all of "
                        f"{', '.join(REQUIRED)} together in inputs.meteorology (e.g. "
                        f"{glob!r})")
    if missing:
        report.notes.append(f"not found beside it: {', '.join(missing)}")
    else:
        _open_set(path, [p for p in found.values() if p is not None], report)
    report.usable = True


def _open_set(path: Path, others: list[Path], report: FileReport) -> None:
    """Open the file with its siblings as the pipeline would, and note the result."""
    names = ", ".join(p.name for p in others)
    try:
        ds = open_era5([path, *others])
    except InputError as exc:
        report.notes.append(f"with {names} beside it, the set does not open: {exc}")
        return
    report.notes.append(f"with {names} beside it, the set opens as daily "
                        f"{', '.join(ds.data_vars)} over {' .. '.join(period(ds['time']))}")
