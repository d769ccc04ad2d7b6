"""Meteorology of FLUXNET-family site files that the canonical sites reader leaves out.

Incoming long-wave radiation, air pressure and wind speed, read from the same files as
:func:`fluxbridge.io.fluxnet.read_sites` (through :func:`fluxbridge.io.fluxnet_csv.read_records`)
and added to its sites dataset; the site cross-validation (:mod:`fluxbridge.studies.sitecv`)
uses them as predictors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.io.fluxnet_csv import parse_file_name, read_records

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


def read_extra_meteo(paths: Sequence[str | os.PathLike[str]], sites: xr.Dataset) -> xr.Dataset:
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
        ``sites`` with ``lw_in`` [W m-2], ``pa`` [kPa] and ``ws`` [m s-1] on (site, time), NaN
        where a file lacks them or has no record at a time of ``sites``.

    Raises
    ------
    InputError
        A file :func:`~fluxbridge.io.fluxnet_csv.read_records` refuses (truncated, malformed,
        non-numeric values, content at another resolution than its name says).
    """
    index = {str(s): i for i, s in enumerate(np.asarray(sites["site"].values).astype(str))}
    times = pd.DatetimeIndex(sites["time"].values)
    values = {name: np.full((len(index), times.size), np.nan) for name in EXTRA_METEO_COLUMNS}
    wanted = [c for columns in EXTRA_METEO_COLUMNS.values() for c in columns]
    for path in map(Path, paths):
        parsed = parse_file_name(path)
        if parsed.site not in index:
            continue
        df, where, file_times, _ = read_records(path, parsed.resolution, wanted)
        pos = times.get_indexer(file_times)
        ok = pos >= 0
        for name, columns in EXTRA_METEO_COLUMNS.items():
            column = next((c for c in columns if c in df), None)
            if column is None:
                log.info("%s lacks %s: NaN", where, "/".join(columns))
                continue
            values[name][index[parsed.site], pos[ok]] = df[column].to_numpy(dtype=float)[ok]
    out = sites.copy()
    for name, array in values.items():
        out[name] = (("site", "time"), array, {"units": EXTRA_METEO_UNITS[name],
                                               "source_variable": EXTRA_METEO_COLUMNS[name][0]})
    return out
