"""Reader of NOAA ObsPack CO2 tower files (one site and intake per NetCDF file).

Layout followed (NOAA GML ObsPack NetCDF, as the ObsPack readers of CarbonTracker's CTDAS read
it; docs/footprints.md): dimension ``obs``; ``time(obs)`` in ``seconds since
1970-01-01T00:00:00Z`` at the *beginning* of the averaging interval; ``value(obs)`` the dry-air
mole fraction in ``mol mol-1`` (fill -999.999); ``value_unc(obs)`` (optional, same units);
``latitude``, ``longitude`` [degree], ``altitude`` [m a.s.l.], ``intake_height`` [m above
ground] (a file may hold several intakes); ``qc_flag(obs, 3 characters)`` (``qcflag`` in some
products, e.g. NOAA's CCGG tower in-situ ObsPack), the NOAA flag whose first column is the
*rejection* flag and second the *selection* flag (``.`` = not flagged); ``obs_flag(obs)``
(optional, CTDAS's use flag, 1 = use); ``obspack_id(obs, characters)``; global attributes
``site_code`` and ``dataset_parameter`` (``co2``; another species is refused).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError

PPM_PER_UNIT = {"molmol-1": 1e6, "mol/mol": 1e6, "micromolmol-1": 1.0, "umolmol-1": 1.0,
                "µmolmol-1": 1.0, "ppm": 1.0}
"""Factors from the units an ObsPack ``value`` may carry to ppm (µmol mol-1)."""

PLAUSIBLE_PPM = (250.0, 1000.0)
"""Range [ppm] of tower CO2 mole fractions accepted; outside it the units are suspect."""

REQUIRED = ("time", "value", "latitude", "longitude", "intake_height", "obspack_id")
QC_NAMES = ("qc_flag", "qcflag")
"""Names of the NOAA quality-control flag in ObsPack products."""


def read_obspack(path: str | os.PathLike[str], *, qc: bool = True) -> pd.DataFrame:
    """An ObsPack CO2 file as a tidy table in ppm.

    Parameters
    ----------
    path
        ObsPack NetCDF file (module docstring).
    qc
        Drop the values whose NOAA rejection flag (first character of ``qc_flag``) is set.

    Returns
    -------
    pd.DataFrame
        One row per observation, sorted by time: ``time`` (UTC, beginning of the averaging
        interval), ``co2`` [ppm], ``co2_unc`` [ppm] (NaN where the file has none), ``lat``,
        ``lon`` [degree], ``intake_height`` [m above ground], ``qc_flag``, ``obs_flag`` (1
        where the file has none), ``obspack_id``, ``site``. Missing values (fill) are left out.

    Raises
    ------
    InputError
        Another species than CO2, a missing variable, units that are not a mole fraction,
        values outside :data:`PLAUSIBLE_PPM`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("ObsPack file not found", path=path)
    with xr.open_dataset(path) as ds:
        parameter = str(ds.attrs.get("dataset_parameter", "co2")).strip().lower()
        if parameter != "co2":
            raise InputError(f"an ObsPack file of {parameter!r}", path=path,
                             variable="dataset_parameter", expected="'co2'")
        qc_name = next((v for v in QC_NAMES if v in ds.variables), None)
        missing = [v for v in REQUIRED if v not in ds.variables]
        if qc and qc_name is None:
            missing.append("qc_flag")
        if missing:
            raise InputError("ObsPack variable missing", path=path, variable=missing[0],
                             expected=f"the ObsPack layout with {', '.join(REQUIRED)}, qc_flag")
        ds = ds.load()
    factor = _ppm_factor(ds["value"], "value", path)
    n = ds.sizes[ds["value"].dims[0]]
    table = pd.DataFrame({
        "time": pd.DatetimeIndex(ds["time"].values),
        "co2": ds["value"].values.astype(np.float64) * factor,
        "co2_unc": (ds["value_unc"].values * _ppm_factor(ds["value_unc"], "value_unc", path)
                    if "value_unc" in ds else np.full(n, np.nan)),
        "lat": np.broadcast_to(ds["latitude"].values, n).astype(np.float64),
        "lon": np.broadcast_to(((ds["longitude"].values + 180.0) % 360.0) - 180.0, n),
        "intake_height": np.broadcast_to(ds["intake_height"].values, n).astype(np.float64),
        "qc_flag": _strings(ds[qc_name].values) if qc_name else "...",
        "obs_flag": ds["obs_flag"].values.astype(np.int64) if "obs_flag" in ds else 1,
        "obspack_id": _strings(ds["obspack_id"].values),
        "site": str(ds.attrs.get("site_code", "")),
    })
    table = table[np.isfinite(table["co2"])]
    _check_plausible(table["co2"], path)
    if qc:
        table = table[table["qc_flag"].str[0] == "."]
    return table.sort_values("time").reset_index(drop=True)


def daytime(table: pd.DataFrame, start_hour: float = 12.0, end_hour: float = 16.0
            ) -> pd.DataFrame:
    """The rows whose time falls between two hours of local solar time.

    Local (mean) solar time is UTC + longitude / 15 h (the equation of time, under 17 min, is
    neglected). A row is kept when the local solar time of its ``time`` (the beginning of its
    averaging interval) lies in ``[start_hour, end_hour)``: hourly means from 12:00 to 15:00
    for the default afternoon window, the well-mixed hours used by inversions.

    Parameters
    ----------
    table
        A table of :func:`read_obspack` (``time`` UTC, ``lon`` [degree]).
    start_hour, end_hour
        Window [h of local solar time], ``0 <= start_hour < end_hour <= 24``.

    Returns
    -------
    pd.DataFrame
        The selected rows with a column ``solar_hour`` [h], 0 to 24.
    """
    if not 0 <= start_hour < end_hour <= 24:
        raise InputError(f"daytime window [{start_hour}, {end_hour}) h", variable="start_hour",
                         expected="0 <= start_hour < end_hour <= 24")
    utc = pd.DatetimeIndex(table["time"])
    hours = (utc.hour + utc.minute / 60 + utc.second / 3600).to_numpy(dtype=float)
    solar = np.mod(hours + table["lon"].to_numpy(dtype=float) / 15.0, 24.0)
    keep = (solar >= start_hour) & (solar < end_hour)
    return table.assign(solar_hour=solar)[keep].reset_index(drop=True)


def _ppm_factor(var: xr.DataArray, name: str, path: Path) -> float:
    units = str(var.attrs.get("units", ""))
    factor = PPM_PER_UNIT.get(units.replace(" ", "").lower())
    if factor is None:
        raise InputError(f"units {units!r}", path=path, variable=name,
                         expected="mol mol-1 (ObsPack NetCDF) or micromol mol-1")
    return factor


def _check_plausible(co2: pd.Series, path: Path) -> None:
    lo, hi = PLAUSIBLE_PPM
    if co2.size and (co2.min() < lo or co2.max() > hi):
        raise InputError(f"CO2 from {co2.min():.4g} to {co2.max():.4g} ppm after conversion",
                         path=path, variable="value",
                         expected=f"{lo:g} to {hi:g} ppm: are the units right?")


def _strings(values: np.ndarray) -> np.ndarray:
    """Text of a decoded character variable (bytes or str) without padding."""
    return np.array([(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip()
                     .rstrip("\x00") for v in np.asarray(values).ravel()], dtype=object)
