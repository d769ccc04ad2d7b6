"""ERA5 single-level NetCDF as the Copernicus Climate Data Store delivers it.

Both layouts: the new CDS one (dimension ``valid_time``, scalar ``number``, string ``expver``,
float32 with NaN) and the legacy one (dimension ``time``, int16 packed with scale_factor /
add_offset, optional ``expver`` dimension when ERA5 and ERA5T are mixed). Hourly, daily or
monthly-mean files; longitudes 0..360 or -180..180; either latitude order.

Files are opened lazily in dask chunks of whole days; :mod:`fluxbridge.io.era5_daily` makes
the daily values (VPD by the ECMWF Tetens formula over water, daily sums of accumulations).
Several files may split the record in time, by variable (one variable per file), or both.
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
from fluxbridge.io.era5_daily import daily_fields, days_per_chunk
from fluxbridge.io.safefiles import read_member
from fluxbridge.schema import check_time_axis
from fluxbridge.vocabulary import attrs as var_attrs

log = logging.getLogger(__name__)

ACCUMULATED = ("ssrd", "strd", "ssr", "tp", "e", "pev")
REQUIRED = ("t2m", "d2m", "ssrd", "tp")
UNITS: dict[str, tuple[str, ...]] = {
    "t2m": ("K",),
    "d2m": ("K",),
    "ssrd": ("J m**-2", "J m-2", "J/m2", "J m^-2"),
    "tp": ("m", "m of water equivalent"),
}
"""Accepted units of each required variable, the first the usual one."""


_PACKING_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value")


def _attr_scalar(value: object) -> float:
    return float(np.asarray(value).ravel()[0])


def _unpack_block(raw: np.ndarray, zero: int, scale: np.float32, base: np.float32,
                  fills: tuple[int, ...]) -> np.ndarray:
    """Packed integers to float32, ``(raw - zero) * scale + base``, fill values as NaN.

    ``zero`` is the code nearest the value 0 and ``base`` its value (``add_offset + zero *
    scale_factor`` in float64), so that values near 0 (dry hours, night) keep their relative
    precision instead of that of ``add_offset`` in float32.
    """
    out = raw.astype(np.float32)
    out -= np.float32(zero)  # exact: integers below 2**24
    out *= scale
    out += base
    for fill in fills:
        missing = raw == fill
        if missing.any():
            out[missing] = np.nan
    return out


def _unpack_args(dtype: np.dtype, attrs: dict) -> tuple[int, np.float32, np.float32,
                                                        tuple[int, ...]]:
    scale = _attr_scalar(attrs.get("scale_factor", 1.0))
    offset = _attr_scalar(attrs.get("add_offset", 0.0))
    info = np.iinfo(dtype)
    zero = int(np.clip(np.round(-offset / scale), info.min, info.max)) if scale else 0
    fills = tuple(int(f) for k in ("_FillValue", "missing_value") if k in attrs
                  for f in np.asarray(attrs[k]).ravel())
    return zero, np.float32(scale), np.float32(offset + zero * scale), fills


def _unpack(ds: xr.Dataset) -> xr.Dataset:
    """Mask and scale the data variables of one file, packed integers straight to float32.

    xarray unpacks int16 with float64 ``scale_factor``/``add_offset`` (legacy CDS files) to
    float64; float32 holds the 16 bits of a packed value with room to spare and halves the
    memory and the arithmetic, per dask chunk. Other variables get xarray's own CF decoding.
    Each file is unpacked on its own: CDS files carry their own scale and offset.
    """
    unpacked = {}
    for name, var in ds.data_vars.items():
        attrs = var.attrs
        if (var.dtype.kind in "iu" and var.dtype.itemsize <= 2 and "_Unsigned" not in attrs
                and ("scale_factor" in attrs or "add_offset" in attrs)):
            args = _unpack_args(var.dtype, attrs)
            data = var.data
            if isinstance(data, np.ndarray):
                data = _unpack_block(data, *args)
            else:
                data = data.map_blocks(_unpack_block, *args, dtype=np.float32)
            encoding = {**var.encoding, **{k: attrs[k] for k in _PACKING_ATTRS if k in attrs}}
            unpacked[name] = xr.Variable(
                var.dims, data, {k: v for k, v in attrs.items() if k not in _PACKING_ATTRS},
                encoding=encoding)
    rest = [n for n, v in ds.data_vars.items()
            if n not in unpacked and any(k in v.attrs for k in _PACKING_ATTRS)]
    if rest:
        decoded = xr.decode_cf(ds[rest].reset_coords(drop=True), concat_characters=False,
                               decode_times=False, decode_coords=False,
                               decode_timedelta=False)
        unpacked.update({n: decoded[n].variable for n in rest})
    return ds.assign(unpacked) if unpacked else ds


def _chunked(ds: xr.Dataset) -> xr.Dataset:
    """Dask chunks of whole days along time (a few days of hourly data per chunk), unpacked.

    Accumulations are chunked an hour later (a first chunk of one record): their day d is
    hours 01..24, so their chunks hold whole days too.
    """
    dim = next((d for d in ("valid_time", "time") if d in ds.dims), None)
    if dim is None:
        return _unpack(ds)
    chunks = {}
    for name, var in ds.data_vars.items():
        if dim not in var.dims:
            continue
        size = 24 * days_per_chunk(int(np.prod([n for d, n in var.sizes.items() if d != dim])))
        first = 1 if name in ACCUMULATED and var.sizes[dim] > 1 else 0
        n = var.sizes[dim] - first
        sizes = (first,) * first + (size,) * (n // size) + ((n % size,) if n % size else ())
        chunks[name] = var.chunk({dim: sizes})
    return _unpack(ds.assign(chunks))


def _open_one(path: Path) -> xr.Dataset:
    """One NetCDF file, lazily: the backend reads a chunk's hours when dask computes it."""
    return _chunked(xr.open_dataset(path, mask_and_scale=False, cache=False))


def _open_zip(path: Path) -> xr.Dataset:
    """A CDS zip of ``data_stream-*_stepType-{instant,accum}.nc`` members, merged.

    Each member is read from memory (its compressed bytes) and decoded a chunk at a time;
    a member larger than :data:`~fluxbridge.io.safefiles.MAX_MEMBER_BYTES` is refused by its
    declared size before it is read.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".nc")]
            if not members:
                raise InputError(f"no NetCDF member in the zip ({zf.namelist()[:5]})",
                                 path=path, expected="data_stream-*_stepType-*.nc members")
            parts = []
            for m in members:
                nc = netCDF4.Dataset(m, memory=read_member(zf, m, path))
                store = xr.backends.NetCDF4DataStore(nc)
                parts.append(_chunked(xr.open_dataset(store, mask_and_scale=False,
                                                      cache=False)))
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
            ds = _open_one(paths[0])
        else:
            ds = xr.combine_by_coords([_open_one(p) for p in paths], data_vars="minimal",
                                      coords="minimal", compat="override", join="outer",
                                      combine_attrs="override")
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
        dims (time, lat, lon), canonical grid, daily, float32: ``ta`` [degC], ``vpd`` [hPa],
        ``sw_in`` [W m-2], ``precip`` [mm d-1]. Attribute ``era5_time_step_hours``.

    Notes
    -----
    Nothing is read until the result is computed; then the files are read in dask chunks of
    whole days (a few days of hourly data per variable, about 32 MB as float32), so memory
    holds a few chunks and the daily result, not the hourly record. Packed int16 values are
    unpacked to float32 (about 1e-5 K or hPa from float64 unpacking, far below the packing step);
    daily sums and means accumulate in float64.
    """
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    if not paths:
        raise InputError("no ERA5 files given", variable="meteorology")
    ds = _open(paths)
    where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    if "valid_time" in ds.dims:
        ds = ds.rename(valid_time="time")
    lat, lon = _check_era5(ds, where)
    daily, step = daily_fields({n: _merge_expver(ds[n]) for n in REQUIRED})
    out = xr.Dataset({
        "ta": daily["ta"].astype(np.float32).assign_attrs(var_attrs("ta")),
        "vpd": daily["vpd"].astype(np.float32).assign_attrs(var_attrs("vpd")),
        "sw_in": (daily["ssrd"] / SECONDS_PER_DAY).astype(np.float32).assign_attrs(
            var_attrs("sw_in")),
        "precip": (daily["tp"] * 1000.0).clip(min=0).astype(np.float32).assign_attrs(
            var_attrs("precip")),
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


def _check_gaps(index: pd.DatetimeIndex, where: str) -> None:
    """Refuse a record with whole days (months, for monthly means) missing between its first
    and last time, named by their extent; hours missing within a day leave that day's sums
    unknown instead (:func:`~fluxbridge.io.era5_daily.daily_fields`)."""
    if index.size < 3:
        return
    monthly = np.median(np.diff(index.asi8)) >= 28 * 86400e9
    freq = "M" if monthly else "D"
    found = index.to_period(freq).unique()
    missing = pd.period_range(found[0], found[-1], freq=freq).difference(found)
    if missing.size:
        unit = "month" if monthly else "day"
        raise InputError(f"{missing.size} {unit}(s) missing within {missing[0]}..{missing[-1]}",
                         path=where, variable="time", expected="a record without gaps (add "
                         f"the missing {unit}s' files, or cut the record before the gap)")


def _check_era5(ds: xr.Dataset, where: str) -> tuple[str, str]:
    """Check the time axis, the variables and their units; the names of lat and lon."""
    check_time_axis(ds, where, variable="valid_time/time", dims="an ERA5 file with "
                    "'valid_time' or 'time'", units="seconds since 1970-01-01")
    index = ds.indexes["time"]
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise InputError("times duplicated or not in increasing order", path=where,
                         variable="time", expected="strictly increasing times")
    _check_gaps(pd.DatetimeIndex(index), where)
    for name in REQUIRED:
        if name not in ds:
            raise InputError("variable missing", path=where, variable=name,
                             expected=f"ERA5 single levels with {', '.join(REQUIRED)}")
        units = ds[name].attrs.get("units")
        if units is None:
            raise InputError("no units attribute", path=where, variable=name,
                             expected=f"units {UNITS[name][0]!r}")
        if units not in UNITS[name]:
            raise InputError(f"units {units!r}", path=where, variable=name,
                             expected=f"{' or '.join(repr(u) for u in UNITS[name])}")
    lat = "latitude" if "latitude" in ds.dims else "lat"
    lon = "longitude" if "longitude" in ds.dims else "lon"
    if float(np.abs(ds[lat]).max()) > 90.0 + 1e-6:
        raise InputError("latitudes beyond ±90", path=where, variable=lat,
                         expected="degrees north in [-90, 90]")
    return lat, lon
