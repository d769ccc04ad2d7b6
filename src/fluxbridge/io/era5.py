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


_PACKING_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value")
_CHUNK_VALUES = 8_000_000
"""Values per variable in one dask chunk (about 32 MB as float32): whole days of hourly data."""


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


def _days_per_chunk(cells: int) -> int:
    return max(1, _CHUNK_VALUES // (24 * max(cells, 1)))


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
        size = 24 * _days_per_chunk(int(np.prod([n for d, n in var.sizes.items() if d != dim])))
        first = 1 if name in ACCUMULATED and var.sizes[dim] > 1 else 0
        n = var.sizes[dim] - first
        sizes = (first,) * first + (size,) * (n // size) + ((n % size,) if n % size else ())
        chunks[name] = var.chunk({dim: sizes})
    return _unpack(ds.assign(chunks))


def _open_one(path: Path) -> xr.Dataset:
    """One NetCDF file, lazily: the backend reads a chunk's hours when dask computes it."""
    return _chunked(xr.open_dataset(path, mask_and_scale=False, cache=False))


def _esat_inplace(t: np.ndarray) -> np.ndarray:
    """:func:`saturation_vapour_pressure` of a numpy array, the same operations in place."""
    out = t - 273.16
    out *= 17.502
    out /= t - 32.19
    np.exp(out, out=out)
    out *= 611.21
    return out


def _vpd_block(t2m: np.ndarray, d2m: np.ndarray) -> np.ndarray:
    """:func:`vpd_hpa` on one chunk of numpy arrays, without its temporaries."""
    out = _esat_inplace(t2m)
    out -= _esat_inplace(d2m)
    np.maximum(out, 0, out=out, where=~np.isnan(out))
    out /= 100
    return out


def _vpd_hourly(t2m: xr.DataArray, d2m: xr.DataArray) -> xr.DataArray:
    return xr.apply_ufunc(_vpd_block, t2m, d2m, dask="parallelized",
                          output_dtypes=[np.result_type(t2m.dtype, d2m.dtype)])


def _open_zip(path: Path) -> xr.Dataset:
    """A CDS zip of ``data_stream-*_stepType-{instant,accum}.nc`` members, merged.

    Each member is read from memory (its compressed bytes) and decoded a chunk at a time.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".nc")]
            if not members:
                raise InputError(f"no NetCDF member in the zip ({zf.namelist()[:5]})",
                                 path=path, expected="data_stream-*_stepType-*.nc members")
            parts = []
            for m in members:
                nc = netCDF4.Dataset(m, memory=zf.read(m))
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


def _step_hours(time: xr.DataArray) -> float:
    t = pd.DatetimeIndex(time.values)
    if t.size < 2:
        return 24.0
    return float(np.median(np.diff(t.values).astype("timedelta64[s]").astype(float)) / 3600)


def _daily_block(block: np.ndarray, lengths: Sequence[int], how: str) -> np.ndarray:
    """Days of one chunk of hourly values (time first): ``lengths`` hours per day.

    ``mean``: mean of the valid hours (NaN if none); ``sum24``: sum of exactly 24 valid hours,
    else NaN. Sums accumulate in float64.
    """
    n = lengths[0]
    if all(k == n for k in lengths):
        parts = block.reshape(len(lengths), n, *block.shape[1:])
        total = parts.sum(axis=1, dtype=np.float64)
    else:  # a partial day at the start or end of the record
        parts = None
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
        total = np.add.reduceat(block.astype(np.float64), starts, axis=0)
    shape = (len(lengths),) + (1,) * (block.ndim - 1)
    hours = np.asarray(lengths, dtype=np.float64).reshape(shape)
    if how == "sum24":
        return np.where(hours == 24, total, np.nan)
    if not np.isnan(total).any():
        return total / hours
    valid = ~np.isnan(block)
    filled = np.where(valid, block, 0)
    if parts is not None:
        total = filled.reshape(parts.shape).sum(axis=1, dtype=np.float64)
        count = valid.reshape(parts.shape).sum(axis=1)
    else:
        total = np.add.reduceat(filled.astype(np.float64), starts, axis=0)
        count = np.add.reduceat(valid.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _daily(da: xr.DataArray, how: str) -> xr.DataArray:
    """Daily ``mean`` or ``sum24`` of regular hourly values, one dask task per chunk of days.

    The same result as ``resample(time="1D").mean()`` (``sum(min_count=24)``) without a
    group-by over the hours: each chunk (re-cut at day boundaries where needed) is reshaped to
    (day, hour, ...) and reduced along the hours.
    """
    import dask.array
    import dask.base

    da = da.transpose("time", ...)
    days = da["time"].values.astype("datetime64[D]")
    labels, lengths = np.unique(days, return_counts=True)
    per_chunk = _days_per_chunk(int(np.prod(da.shape[1:])))
    full = np.flatnonzero(lengths == 24)
    j0 = int(full[0]) if full.size else 0
    groups: list[list[int]] = [[int(k)] for k in lengths[:j0]]
    for start in range(j0, labels.size, per_chunk):
        groups.append([int(k) for k in lengths[start:start + per_chunk]])
    data = da.data if isinstance(da.data, dask.array.Array) else dask.array.from_array(da.data)
    data = data.rechunk({0: tuple(sum(g) for g in groups)})
    out = data.map_blocks(
        lambda block, block_id=None: _daily_block(block, groups[block_id[0]], how),
        chunks=(tuple(len(g) for g in groups), *data.chunks[1:]), dtype=np.float64,
        name="era5-daily-" + how + "-" + dask.base.tokenize(data, groups))
    coords = {k: v for k, v in da.coords.items() if "time" not in v.dims}
    return xr.DataArray(out, dims=da.dims, coords={**coords, "time": labels.astype(
        "datetime64[ns]")}, attrs=da.attrs)


def _regular_hours(time: xr.DataArray) -> bool:
    t = time.values
    return t.size > 1 and bool(np.all(np.diff(t) == np.timedelta64(1, "h")))


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
    if step < 1.5 and _regular_hours(ds["time"]):  # hourly: VPD on hourly values,
        # accumulations of hours 01..24; per dask chunk of whole days, float32 hours summed
        # in float64
        vpd = _daily(_vpd_hourly(fields["t2m"], fields["d2m"]), "mean")
        ta = _daily(fields["t2m"], "mean") - 273.15
        shifted = {n: fields[n].assign_coords(time=fields[n]["time"] - np.timedelta64(1, "h"))
                   for n in ("ssrd", "tp")}
        # the days of the instant fields; a day lacking any of its 24 hours is unknown
        ssrd, tp = (_daily(shifted[n], "sum24").reindex(time=ta["time"])
                    for n in ("ssrd", "tp"))
    elif step < 1.5:  # hourly with gaps: group the hours by day
        daily = {"dtype": np.float64}
        vpd = vpd_hpa(fields["t2m"], fields["d2m"]).resample(time="1D").mean(**daily)
        ta = fields["t2m"].resample(time="1D").mean(**daily) - 273.15
        shifted = {n: fields[n].assign_coords(time=fields[n]["time"] - np.timedelta64(1, "h"))
                   for n in ("ssrd", "tp")}
        ssrd, tp = (shifted[n].resample(time="1D").sum(min_count=24, **daily)
                    .reindex(time=ta["time"]) for n in ("ssrd", "tp"))
    else:  # daily or monthly means: accumulations per day
        vpd = vpd_hpa(fields["t2m"], fields["d2m"])
        ta = fields["t2m"] - 273.15
        ssrd, tp = fields["ssrd"], fields["tp"]
    out = xr.Dataset({
        "ta": ta.astype(np.float32).assign_attrs(var_attrs("ta")),
        "vpd": vpd.astype(np.float32).assign_attrs(var_attrs("vpd")),
        "sw_in": (ssrd / SECONDS_PER_DAY).astype(np.float32).assign_attrs(var_attrs("sw_in")),
        "precip": (tp * 1000.0).clip(min=0).astype(np.float32).assign_attrs(
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
