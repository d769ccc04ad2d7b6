"""ERA5 single-level NetCDF as the Copernicus Climate Data Store delivers it.

Both layouts: the new CDS one (dimension ``valid_time``, scalar ``number``, string ``expver``,
float32 with NaN) and the legacy one (dimension ``time``, int16 packed with scale_factor /
add_offset, optional ``expver`` dimension when ERA5 and ERA5T are mixed). Hourly, daily or
monthly-mean files; longitudes 0..360 or -180..180; either latitude order.

Accumulated variables (``ssrd`` J m-2, ``tp`` m) are accumulations over the hour ending at the
stamp in hourly files: the daily total of day d is hours 01..23 of d plus 00 of d+1. Daily and
monthly-mean products store accumulations per day. VPD uses the ECMWF Tetens formula over water.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import SECONDS_PER_DAY
from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, to_canonical_grid
from fluxbridge.vocabulary import attrs as var_attrs

log = logging.getLogger(__name__)

ACCUMULATED = ("ssrd", "strd", "ssr", "tp", "e", "pev")
REQUIRED = ("t2m", "d2m", "ssrd", "tp")
_UNITS = {
    "t2m": ("K",),
    "d2m": ("K",),
    "ssrd": ("J m**-2", "J m-2", "J/m2", "J m^-2"),
    "tp": ("m", "m of water equivalent"),
}


def saturation_vapour_pressure(t_kelvin: xr.DataArray) -> xr.DataArray:
    """Saturation vapour pressure over water [Pa], ECMWF Tetens formula (IFS documentation)."""
    return 611.21 * np.exp(17.502 * (t_kelvin - 273.16) / (t_kelvin - 32.19))


def vpd_hpa(t2m: xr.DataArray, d2m: xr.DataArray) -> xr.DataArray:
    """Vapour pressure deficit [hPa] from 2 m temperature and dew point [K]."""
    out = (saturation_vapour_pressure(t2m) - saturation_vapour_pressure(d2m)).clip(min=0) / 100
    out.attrs = var_attrs("vpd")
    return out


def _open_zip(path: Path) -> xr.Dataset:
    """A CDS zip of ``data_stream-*_stepType-{instant,accum}.nc`` members, merged."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".nc")]
            if not members:
                raise InputError(f"no NetCDF member in the zip ({zf.namelist()[:5]})",
                                 path=path, expected="data_stream-*_stepType-*.nc members")
            parts = []
            for m in members:
                with netCDF4.Dataset(m, memory=zf.read(m)) as nc:
                    parts.append(xr.open_dataset(xr.backends.NetCDF4DataStore(nc)).load())
    except zipfile.BadZipFile:
        raise InputError("not a valid zip file (truncated download?)", path=path) from None
    return xr.merge(parts, compat="override", join="exact")


def _open(paths: Sequence[Path]) -> xr.Dataset:
    for p in paths:
        if not p.is_file():
            raise InputError("ERA5 file not found", path=p)
    try:
        if len(paths) == 1 and zipfile.is_zipfile(paths[0]):
            ds = _open_zip(paths[0])
        elif len(paths) == 1:
            ds = xr.open_dataset(paths[0], chunks={})
        else:
            ds = xr.open_mfdataset(paths, combine="by_coords", chunks={}, data_vars="minimal",
                                   coords="minimal", compat="override")
    except ValueError as exc:
        msg = str(exc).replace("\n", " ")
        if "calendar" in msg.lower() or "decode" in msg.lower():
            raise InputError(f"cannot decode the time axis: {msg}", path=paths[0],
                             variable="time", expected="a CF calendar") from None
        raise InputError(f"cannot open as NetCDF: {msg}", path=paths[0]) from None
    except OSError as exc:
        raise InputError(f"cannot open as NetCDF ({exc})", path=paths[0]) from None
    return ds


def _merge_expver(da: xr.DataArray) -> xr.DataArray:
    """Legacy files mixing ERA5 and ERA5T carry an ``expver`` dimension: take the first valid."""
    if "expver" not in da.dims:
        return da
    merged = da.isel(expver=0)
    for i in range(1, da.sizes["expver"]):
        merged = merged.combine_first(da.isel(expver=i))
    return merged


def _step_hours(time: xr.DataArray) -> float:
    t = pd.DatetimeIndex(time.values)
    if t.size < 2:
        return 24.0
    return float(np.median(np.diff(t.values).astype("timedelta64[s]").astype(float)) / 3600)


def open_era5(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    grid: xr.Dataset | None = None,
) -> xr.Dataset:
    """ERA5 single levels as canonical daily predictors (lazy, dask-backed).

    Parameters
    ----------
    paths
        One or more ERA5 NetCDF files (either CDS layout) holding at least t2m, d2m, ssrd, tp.
    grid
        A dataset whose ``lat``/``lon`` the result must match (e.g. the regions dataset);
        raises :class:`~fluxbridge.errors.GridMismatchError` otherwise.

    Returns
    -------
    xr.Dataset
        dims (time, lat, lon), canonical grid, daily: ``ta`` [degC], ``vpd`` [hPa],
        ``sw_in`` [W m-2], ``precip`` [mm d-1]. Attribute ``era5_time_step_hours``.
    """
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    if not paths:
        raise InputError("no ERA5 files given", variable="meteorology")
    ds = _open(paths)
    where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    if "valid_time" in ds.dims:
        ds = ds.rename(valid_time="time")
    if "time" not in ds.dims:
        raise InputError("no time dimension", path=where, variable="valid_time/time",
                         expected="an ERA5 file with 'valid_time' or 'time'")
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputError("time axis is not decodable to dates", path=where, variable="time",
                         expected="units like 'seconds since 1970-01-01' and a standard calendar")
    index = ds.indexes["time"]
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise InputError("times duplicated or not in increasing order", path=where,
                         variable="time", expected="strictly increasing times")
    for name in REQUIRED:
        if name not in ds:
            raise InputError("variable missing", path=where, variable=name,
                             expected=f"ERA5 single levels with {', '.join(REQUIRED)}")
        units = ds[name].attrs.get("units")
        if units is None:
            raise InputError("no units attribute", path=where, variable=name,
                             expected=f"units {_UNITS[name][0]!r}")
        if units not in _UNITS[name]:
            raise InputError(f"units {units!r}", path=where, variable=name,
                             expected=f"{' or '.join(repr(u) for u in _UNITS[name])}")
    lat = "latitude" if "latitude" in ds.dims else "lat"
    lon = "longitude" if "longitude" in ds.dims else "lon"
    if float(np.abs(ds[lat]).max()) > 90.0 + 1e-6:
        raise InputError("latitudes beyond ±90", path=where, variable=lat,
                         expected="degrees north in [-90, 90]")
    fields = {n: _merge_expver(ds[n]) for n in REQUIRED}
    step = _step_hours(ds["time"])
    if step < 1.5:  # hourly: VPD on hourly values, accumulations of hours 01..24
        vpd = vpd_hpa(fields["t2m"], fields["d2m"]).resample(time="1D").mean()
        ta = fields["t2m"].resample(time="1D").mean() - 273.15
        shifted = {n: fields[n].assign_coords(time=fields[n]["time"] - np.timedelta64(1, "h"))
                   for n in ("ssrd", "tp")}
        # the days of the instant fields; a day lacking any of its 24 hours is unknown
        ssrd = shifted["ssrd"].resample(time="1D").sum(min_count=24).reindex(time=ta["time"])
        tp = shifted["tp"].resample(time="1D").sum(min_count=24).reindex(time=ta["time"])
    else:  # daily or monthly means: accumulations per day
        vpd = vpd_hpa(fields["t2m"], fields["d2m"])
        ta = fields["t2m"] - 273.15
        ssrd, tp = fields["ssrd"], fields["tp"]
    out = xr.Dataset({
        "ta": ta.assign_attrs(var_attrs("ta")),
        "vpd": vpd.assign_attrs(var_attrs("vpd")),
        "sw_in": (ssrd / SECONDS_PER_DAY).assign_attrs(var_attrs("sw_in")),
        "precip": (tp * 1000.0).clip(min=0).assign_attrs(var_attrs("precip")),
    })
    out = out.drop_vars([c for c in ("number", "expver", "step", "surface") if c in out.coords])
    out = to_canonical_grid(out, lat=lat, lon=lon)
    out.attrs = {"source": where, "era5_time_step_hours": step,
                 "vpd_method": "ECMWF Tetens over water, "
                 + ("hourly values averaged" if step < 1.5 else "from daily mean t2m and d2m")}
    if grid is not None:
        check_same_grid(out, grid, what="ERA5 grid and model grid", path=where)
        out = out.assign_coords(lat=grid["lat"].values, lon=grid["lon"].values)
    return out


def extract_at_sites(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray,
                     land: xr.DataArray | None = None) -> xr.Dataset:
    """Values at site coordinates from the nearest cell (the nearest land cell with ``land``).

    Parameters
    ----------
    ds
        Canonical gridded predictors.
    lat, lon
        Site coordinates [degree].
    land
        Land fraction (lat, lon) on the same grid; cells without land are skipped.

    Returns
    -------
    xr.Dataset
        dims (site, time) [same units as ``ds``].
    """
    from fluxbridge.features import nearest_land_cell

    grid = ds if land is None else ds.assign(land_fraction=land)
    ii, jj = nearest_land_cell(np.asarray(lat), np.asarray(lon), grid)
    out = ds.isel(lat=xr.DataArray(ii, dims="site"), lon=xr.DataArray(jj, dims="site"))
    return out.transpose("site", ...)
