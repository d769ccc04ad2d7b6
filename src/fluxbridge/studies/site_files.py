"""FLUXNET site files for the site cross-validation: finding them, and the meteorology the
canonical reader leaves out (long-wave radiation, pressure, wind).

Reads files, so it belongs with the readers of :mod:`fluxbridge.io`; it sits here until it
joins :mod:`fluxbridge.io.fluxnet`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError

log = logging.getLogger(__name__)

EXTRA_METEO_COLUMNS: dict[str, tuple[str, ...]] = {
    "lw_in": ("LW_IN_F", "LW_IN_ERA"),
    "pa": ("PA_F", "PA_ERA"),
    "ws": ("WS_F", "WS_ERA"),
}
"""More gap-filled meteorology the FLUXNET2015 files carry (incoming long-wave radiation
[W m-2], air pressure [kPa], wind speed [m s-1]; the ``_F`` columns are gap-filled with downscaled
ERA-Interim, so they are as complete as TA_F), by canonical name and source columns in order of
preference. A file without any of a variable's columns gives NaN, which every model handles
(the network and the random forest take the training mean, XGBoost learns a default branch)."""

EXTRA_METEO_UNITS: dict[str, str] = {"lw_in": "W m-2", "pa": "kPa", "ws": "m s-1"}
"""Units of the variables of :data:`EXTRA_METEO_COLUMNS` (those of the files)."""

_FILE = re.compile(r"^(?:FLX|AMF|ICOSETC)_(?P<site>[A-Za-z]{2}-[A-Za-z0-9]{3})_.*?"
                   r"_(?P<res>HH|HR|DD|WW|MM|YY)_.*\.csv$")

def find_site_files(data: str | os.PathLike[str], time_step: str | None = None
                    ) -> tuple[list[Path], str]:
    """FLUXNET site CSV files of one resolution in a directory.

    Parameters
    ----------
    data
        Directory of FLUXNET2015 (or ONEFlux-style) CSV files.
    time_step
        ``"MM"`` or ``"DD"``; by default the one resolution present.

    Returns
    -------
    paths, time_step
        Sorted file paths (one per site) and their resolution.
    """
    root = Path(data)
    if not root.is_dir():
        raise InputError("not a directory", path=root, expected="a directory of FLUXNET CSV files")
    by_res: dict[str, dict[str, Path]] = {}
    for p in sorted(root.glob("*.csv")):
        match = _FILE.match(p.name)
        if match and "_BIF_" not in p.name:
            by_res.setdefault(match["res"], {}).setdefault(match["site"], p)
    usable = {r: v for r, v in by_res.items() if r in ("MM", "DD")}
    if time_step is None:
        if len(usable) != 1:
            found = ", ".join(f"{r} ({len(v)} sites)" for r, v in sorted(by_res.items()))
            raise InputError(f"found {found or 'no FLUXNET site files'}", path=root,
                             variable="time_step",
                             expected="FLUXNET files of exactly one of MM or DD resolution "
                                      "(or name the time step)")
        time_step = next(iter(usable))
    if time_step not in usable:
        raise InputError(f"no {time_step} site files", path=root, variable="time_step",
                         expected="FLX_<SITE>_FLUXNET2015_<SET>_MM_… or …_DD_… CSV files")
    return list(usable[time_step].values()), time_step


def read_extra_meteo(paths: Sequence[Path], sites: xr.Dataset) -> xr.Dataset:
    """Add the meteorology of :data:`EXTRA_METEO_COLUMNS` from the site files to ``sites``.

    Parameters
    ----------
    paths
        The site files ``sites`` was read from (MM or DD, one per site; files of sites absent
        from ``sites`` are ignored).
    sites
        Canonical sites dataset on (site, time) at the files' own resolution.

    Returns
    -------
    xr.Dataset
        ``sites`` with ``lw_in``, ``pa``, ``ws`` on (site, time), NaN where a file lacks them.
    """
    from fluxbridge.io.fluxnet_csv import parse_file_name, read_table

    index = {str(s): i for i, s in enumerate(np.asarray(sites["site"].values).astype(str))}
    times = pd.DatetimeIndex(sites["time"].values)
    values = {name: np.full((len(index), times.size), np.nan) for name in EXTRA_METEO_COLUMNS}
    wanted = [c for columns in EXTRA_METEO_COLUMNS.values() for c in columns]
    for path in paths:
        site = parse_file_name(path).site
        if site not in index:
            continue
        df, where = read_table(path, columns=wanted)
        raw = df["TIMESTAMP_START" if "TIMESTAMP_START" in df else "TIMESTAMP"].astype(str)
        fmt = {6: "%Y%m", 8: "%Y%m%d"}.get(int(raw.str.len().max()), "%Y%m%d%H%M")
        pos = times.get_indexer(pd.to_datetime(raw, format=fmt))
        ok = pos >= 0
        for name, columns in EXTRA_METEO_COLUMNS.items():
            column = next((c for c in columns if c in df), None)
            if column is None:
                log.info("%s lacks %s: NaN", where, "/".join(columns))
                continue
            values[name][index[site], pos[ok]] = df[column].to_numpy(dtype=float)[ok]
    out = sites.copy()
    for name, array in values.items():
        out[name] = (("site", "time"), array, {"units": EXTRA_METEO_UNITS[name],
                                               "source_variable": EXTRA_METEO_COLUMNS[name][0]})
    return out
