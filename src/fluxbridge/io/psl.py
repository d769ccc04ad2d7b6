"""NOAA PSL gridded monthly NetCDF: monthly means and long-term-mean climatologies.

The layout NOAA PSL (and CPC) serve NCEP/NCAR Reanalysis 1 (``air.sig995.mon.ltm``), CMAP
(``precip.mon.ltm``), GHCN-CAMS (``air.mon.mean``) and similar products in: one variable named
``air``, ``precip`` or ``prate`` on (time, lat, lon), latitude from 90 N, longitude 0..360, time
in hours or days since 1800-01-01. A long-term mean (``ltm``) stamps its 12 months in year 1
and names ``climatology_bounds``; it is read as a mean seasonal cycle on a ``month``
dimension (1..12), never as a real year.
"""

from __future__ import annotations

import os
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import SECONDS_PER_DAY
from fluxbridge.errors import InputError
from fluxbridge.grid import to_canonical_grid
from fluxbridge.io.area_weights import regrid_mean
from fluxbridge.vocabulary import attrs as var_attrs

PSL_VARIABLES = {"air": "ta", "precip": "precip", "prate": "precip"}
"""PSL variable name → canonical name."""

_UNITS = {
    "ta": {"degC": (1.0, 0.0), "C": (1.0, 0.0), "deg C": (1.0, 0.0), "celsius": (1.0, 0.0),
           "K": (1.0, -273.15), "degK": (1.0, -273.15), "deg K": (1.0, -273.15),
           "kelvin": (1.0, -273.15)},
    "precip": {"mm/day": (1.0, 0.0), "mm d-1": (1.0, 0.0), "mm/d": (1.0, 0.0),
               "kg/m^2/s": (SECONDS_PER_DAY, 0.0), "kg m-2 s-1": (SECONDS_PER_DAY, 0.0),
               "Kg/m^2/s": (SECONDS_PER_DAY, 0.0)},
}
"""Source units → (factor, offset) to the canonical units (degC; mm d-1)."""


def _open(path: Path) -> xr.Dataset:
    if not path.is_file():
        raise InputError("NetCDF file not found", path=path)
    try:
        return xr.open_dataset(path, decode_times=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "),
                         path=path) from None


def _months(ds: xr.Dataset, path: Path) -> tuple[list[cftime.datetime], bool]:
    """The decoded time stamps and whether they are a climatology (12 months, no year)."""
    if "time" not in ds.dims or "units" not in ds["time"].attrs:
        raise InputError("no time axis with units", path=path, variable="time",
                         expected="time in hours or days since a date (NOAA PSL layout)")
    t = ds["time"]
    stamps = list(cftime.num2date(np.atleast_1d(t.values), t.attrs["units"],
                                  calendar=t.attrs.get("calendar", "standard")))
    climatology = "climatology" in t.attrs or all(s.year < 1800 for s in stamps)
    if climatology and sorted(s.month for s in stamps) != list(range(1, 13)):
        raise InputError(f"a climatology with months {[s.month for s in stamps]}", path=path,
                         variable="time", expected="each of the 12 months once")
    return stamps, climatology


def _base_period(ds: xr.Dataset) -> str:
    """Years the climatology averages (from ``climatology_bounds`` or ``climo_period``)."""
    name = ds["time"].attrs.get("climatology", "climatology_bounds")
    if name in ds and "units" in ds[name].attrs:
        ends = cftime.num2date(np.asarray(ds[name].values).ravel(), ds[name].attrs["units"],
                               calendar="standard")
        return f"{min(e.year for e in ends)}-{max(e.year for e in ends)}"
    return str(ds["time"].attrs.get("climo_period", "unknown"))


def _to_canonical_units(da: xr.DataArray, name: str, path: Path) -> xr.DataArray:
    units = str(da.attrs.get("units", "")).strip()
    if units not in _UNITS[name]:
        raise InputError(f"units {units!r}", path=path, variable=str(da.name),
                         expected=" or ".join(repr(u) for u in _UNITS[name]))
    factor, offset = _UNITS[name][units]
    out = (da * factor + offset).astype(np.float32)
    if name == "precip":
        out = out.clip(min=0)
    return out.assign_attrs({**var_attrs(name), "source_variable": str(da.name),
                             "source_units": units})


def read_psl(path: str | os.PathLike[str], grid: xr.Dataset | None = None) -> xr.Dataset:
    """A NOAA PSL monthly or long-term-mean NetCDF in canonical names and units.

    Parameters
    ----------
    path
        NetCDF with ``air`` [degC or K] and/or ``precip`` [mm/day] or ``prate``
        [kg m-2 s-1] on (time, lat, lon): NCEP/NCAR R1 ``air.sig995.mon.ltm``, CMAP
        ``precip.mon.ltm``, GHCN-CAMS ``air.mon.mean`` and the like.
    grid
        Model grid (regular ``lat``/``lon`` [degree]); given, each field is averaged onto it
        by exact overlap area (:func:`fluxbridge.io.area_weights.regrid_mean`).

    Returns
    -------
    xr.Dataset
        ``ta`` [degC] and/or ``precip`` [mm d-1], float32, on the canonical grid (latitude
        descending, longitude ascending in [-180, 180)) or on ``grid``. A monthly series has
        ``time`` (month starts); a climatology has ``month`` (1..12), attribute
        ``climatology = "true"`` and ``climatology_period`` (e.g. ``"1981-2010"``); a series
        has ``climatology = "false"``.
    """
    path = Path(path)
    ds = _open(path)
    found = [n for n in PSL_VARIABLES if n in ds.data_vars]
    if not found:
        raise InputError(f"no PSL variable among {sorted(ds.data_vars)[:8]}", path=path,
                         variable="air/precip",
                         expected=f"one of {', '.join(PSL_VARIABLES)} on (time, lat, lon)")
    stamps, climatology = _months(ds, path)
    out = xr.Dataset({PSL_VARIABLES[n]: _to_canonical_units(ds[n], PSL_VARIABLES[n], path)
                      for n in found})
    if climatology:
        out = out.assign_coords(time=[s.month for s in stamps]).rename(time="month")
        out = out.sortby("month")
        out["month"].attrs = {"long_name": "month of the year", "units": "1"}
    else:
        out = out.assign_coords(time=pd.DatetimeIndex(
            [pd.Timestamp(s.year, s.month, 1) for s in stamps]))
    out = to_canonical_grid(out)
    if grid is not None:
        out = xr.Dataset({n: regrid_mean(out[n], grid) for n in out.data_vars})
    out.attrs = {"source": str(path), "source_title": str(ds.attrs.get("title", "")),
                 "climatology": "true" if climatology else "false"}
    if climatology:
        out.attrs["climatology_period"] = _base_period(ds)
        out.attrs["comment"] = ("mean seasonal cycle: the long-term mean of each calendar "
                                "month, not the months of a particular year")
    return out
