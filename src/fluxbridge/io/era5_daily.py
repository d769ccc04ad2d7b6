"""Daily values from ERA5 fields: VPD, daily means and daily sums of hourly accumulations.

Hourly files: VPD (ECMWF Tetens over water) on hourly values, then daily means; accumulations
(``ssrd`` J m-2, ``tp`` m) over the hour ending at the stamp, so the daily total of day d is
hours 01..23 of d plus 00 of d+1. Each dask chunk holds whole days and is reduced on its own.
Daily and monthly-mean files store accumulations per day and are taken as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.vocabulary import attrs as var_attrs

CHUNK_VALUES = 8_000_000
"""Values per variable in one dask chunk (about 32 MB as float32): whole days of hourly data."""


def saturation_vapour_pressure(t_kelvin: xr.DataArray) -> xr.DataArray:
    """Saturation vapour pressure over water [Pa], ECMWF Tetens formula (IFS documentation)."""
    return 611.21 * np.exp(17.502 * (t_kelvin - 273.16) / (t_kelvin - 32.19))


def vpd_hpa(t2m: xr.DataArray, d2m: xr.DataArray) -> xr.DataArray:
    """Vapour pressure deficit [hPa] from 2 m temperature and dew point [K]."""
    out = (saturation_vapour_pressure(t2m) - saturation_vapour_pressure(d2m)).clip(min=0) / 100
    out.attrs = var_attrs("vpd")
    return out


def days_per_chunk(cells: int) -> int:
    """Days of hourly values of ``cells`` grid cells in one dask chunk."""
    return max(1, CHUNK_VALUES // (24 * max(cells, 1)))


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
    per_chunk = days_per_chunk(int(np.prod(da.shape[1:])))
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


def daily_fields(fields: dict[str, xr.DataArray]) -> tuple[dict[str, xr.DataArray], float]:
    """Daily ``ta`` [degC], ``vpd`` [hPa], ``ssrd`` [J m-2 d-1] and ``tp`` [m d-1].

    Parameters
    ----------
    fields
        ``t2m``, ``d2m`` [K], ``ssrd`` [J m-2], ``tp`` [m] along ``time``: hourly (accumulated
        over the hour ending at the stamp), daily or monthly means (accumulated per day).

    Returns
    -------
    tuple
        The daily fields (float64, lazy where the input is) and the input's step [h].
    """
    time = fields["t2m"]["time"]
    step = _step_hours(time)
    if step >= 1.5:  # daily or monthly means: accumulations per day
        return {"ta": fields["t2m"] - 273.15, "vpd": vpd_hpa(fields["t2m"], fields["d2m"]),
                "ssrd": fields["ssrd"], "tp": fields["tp"]}, step
    shifted = {n: fields[n].assign_coords(time=fields[n]["time"] - np.timedelta64(1, "h"))
               for n in ("ssrd", "tp")}
    if _regular_hours(time):  # per dask chunk of whole days, float32 hours summed in float64
        ta = _daily(fields["t2m"], "mean") - 273.15
        vpd = _daily(_vpd_hourly(fields["t2m"], fields["d2m"]), "mean")
        # the days of the instant fields; a day lacking any of its 24 hours is unknown
        sums = {n: _daily(shifted[n], "sum24").reindex(time=ta["time"]) for n in shifted}
    else:  # hourly with gaps: group the hours by day
        daily = {"dtype": np.float64}
        vpd = vpd_hpa(fields["t2m"], fields["d2m"]).resample(time="1D").mean(**daily)
        ta = fields["t2m"].resample(time="1D").mean(**daily) - 273.15
        sums = {n: shifted[n].resample(time="1D").sum(min_count=24, **daily)
                .reindex(time=ta["time"]) for n in shifted}
    return {"ta": ta, "vpd": vpd, **sums}, step
