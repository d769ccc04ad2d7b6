"""Chunks of the grid: their plan, the chunk function and the chunk files.

The grid is cut into chunks of whole calendar months (``time_chunk`` days at most, one month at
least) by latitude bands (at most ``max_chunk_cells`` cells). One function,
:func:`predict_chunk`, turns a chunk of predictors into NEE, its monthly means and its regional
and global totals; :func:`run_chunk` writes them to a chunk file (NumPy, atomically), from which
the products are assembled lazily (:func:`lazy_grid`, :func:`chunk_totals`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.predictors import limit_chunk_cache
from fluxbridge.models.predict import predict_grid
from fluxbridge.operators.operator import monthly_totals
from fluxbridge.outputs.files import atomic_path

MAX_CHUNK_CELLS = 4_000_000
"""Default most (time x lat x lon) cells per chunk: about 300 MB of working memory per worker."""


class Model(Protocol):
    """What upscaling needs of a model (``fluxbridge.models.artifact.FittedModel`` has it):
    what :func:`fluxbridge.models.predict.predict_grid` needs, and a name."""

    name: str
    feature_names: Sequence[str]

    def predict_arrays(self, X_raw: np.ndarray, igbp: np.ndarray, device: object = None, *,
                       region: np.ndarray | None = None,
                       dayofyear: np.ndarray | None = None) -> np.ndarray:
        """NEE [g m-2 d-1] (n,) from raw features (n, n_feature) and IGBP codes (n,)."""
        ...


@dataclass(frozen=True)
class Chunk:
    """One unit of work: a block of whole months by a band of latitudes (index slices)."""

    block: int
    band: int
    time: slice
    lat: slice

    @property
    def filename(self) -> str:
        """Name of the chunk's file in the chunk directory."""
        return f"chunk_t{self.block:05d}_y{self.band:04d}.npz"


def plan_chunks(time: pd.DatetimeIndex | np.ndarray, n_lat: int, n_lon: int,
                time_chunk: int = 31, max_chunk_cells: int = MAX_CHUNK_CELLS) -> list[Chunk]:
    """Cut (time, lat, lon) into chunks of whole calendar months by latitude bands.

    Blocks of whole months are as long as ``time_chunk`` and ``max_chunk_cells`` allow (one
    month at least); only a month that alone exceeds ``max_chunk_cells`` is cut into latitude
    bands. Whole-globe chunks read each time step of a (time, lat, lon) file once.

    Parameters
    ----------
    time
        Time coordinate (increasing).
    n_lat, n_lon
        Grid size [cells].
    time_chunk
        Most time steps per chunk [days for daily data]; a chunk holds at least one month.
    max_chunk_cells
        Most (time x lat x lon) cells per chunk; sets the block length and, where one month is
        larger, the latitude band height, the same for every block.

    Returns
    -------
    list of Chunk
        Covering every (time, lat) index exactly once, block-major.
    """
    t = pd.DatetimeIndex(time)
    if t.size == 0 or (t.size > 1 and not np.all(np.diff(t.values) > np.timedelta64(0))):
        raise InputError("time coordinate is empty or not strictly increasing",
                         variable="time", expected="increasing times")
    month = t.year * 12 + t.month
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    ends = np.r_[starts[1:], t.size]
    steps = max(1, min(time_chunk, max_chunk_cells // max(1, n_lat * n_lon)))
    blocks: list[tuple[int, int]] = []
    for s, e in zip(starts, ends, strict=True):
        if blocks and e - blocks[-1][0] <= steps:
            blocks[-1] = (blocks[-1][0], int(e))
        else:
            blocks.append((int(s), int(e)))
    longest = max(e - s for s, e in blocks)
    rows = int(max(1, min(n_lat, max_chunk_cells // max(1, longest * n_lon))))
    rows = -(-n_lat // -(-n_lat // rows))  # bands of equal height
    chunks = []
    for b, (s, e) in enumerate(blocks):
        for j, y0 in enumerate(range(0, n_lat, rows)):
            chunks.append(Chunk(b, j, slice(s, e), slice(y0, min(n_lat, y0 + rows))))
    return chunks


def predict_chunk(members: Sequence[Model], block: xr.Dataset, weights: xr.DataArray,
                  land_area: xr.DataArray, step_days: np.ndarray) -> xr.Dataset:
    """NEE of every member on one chunk, reduced to what the products need.

    Parameters
    ----------
    members
        Models (one, or the members of an ensemble).
    block
        Canonical predictors of the chunk (time, lat, lon), loaded or lazy.
    weights
        Region area weights (region, lat, lon) [m2] of the chunk's latitudes
        (:func:`fluxbridge.operators.operator.region_weights`).
    land_area
        Cell area times land fraction (lat, lon) [m2].
    step_days
        Days each time step stands for [d].

    Returns
    -------
    xr.Dataset
        ``nee`` (time, lat, lon) and ``nee_monthly`` (month, lat, lon) [g m-2 d-1], the mean over
        members, with ``nee_spread`` and ``nee_monthly_spread`` (standard deviation, ddof 1) for
        two members or more; ``regional_tgc`` (member, region, month) and ``global_tgc``
        (member, month) [Tg month-1] of carbon (:func:`fluxbridge.operators.operator.
        monthly_totals`).
    """
    stack = predict_grid(list(members), block).values  # (member, t, y, x)
    n_m, n_t, n_y, n_x = stack.shape
    time = pd.DatetimeIndex(block["time"].values)
    month_start = time.to_period("M").unique().to_timestamp()
    # reductions over the cells with a value (land) only; water cells stay NaN
    flat = stack.reshape(n_m, n_t, n_y * n_x)
    cells = np.flatnonzero(np.isfinite(flat).any(axis=(0, 1)))
    land = flat[:, :, cells]  # (member, time, cell)
    monthly = _monthly_means(land, time)

    field = xr.DataArray(land, dims=("member", "time", "cell"), coords={"time": time.values})
    w = np.asarray(weights.transpose("region", "lat", "lon"), dtype=np.float64)
    w = xr.DataArray(w.reshape(w.shape[0], -1)[:, cells], dims=("region", "cell"))
    area = xr.DataArray(np.asarray(land_area, dtype=np.float64).ravel()[cells], dims="cell")
    regional = monthly_totals(field, w, days=step_days, dim="cell")
    global_ = monthly_totals(field, area, days=step_days, dim="cell")
    del field, land

    def grid(values: np.ndarray, n: int) -> np.ndarray:
        out = np.full((n, n_y * n_x), np.nan, dtype=np.float32)
        out[:, cells] = values
        return out.reshape(n, n_y, n_x)

    dims, mdims = ("time", "lat", "lon"), ("month", "lat", "lon")
    data: dict[str, Any] = {
        "nee": (dims, stack[0] if n_m == 1 else stack.mean(axis=0)),
        "nee_monthly": (mdims, grid(monthly.mean(axis=0), month_start.size)),
    }
    if n_m > 1:
        data["nee_spread"] = (dims, stack.std(axis=0, ddof=1).astype(np.float32))
        data["nee_monthly_spread"] = (mdims, grid(monthly.std(axis=0, ddof=1),
                                                  month_start.size))
    data["regional_tgc"] = (("member", "region", "month"),
                            regional.transpose("member", "region", "time").values,
                            {"units": "Tg month-1"})
    data["global_tgc"] = (("member", "month"), global_.transpose("member", "time").values,
                          {"units": "Tg month-1"})
    return xr.Dataset(data, coords={
        "lat": block["lat"].values, "lon": block["lon"].values, "time": time.values,
        "month": month_start.values, "region": weights["region"].values})


def _monthly_means(land: np.ndarray, time: pd.DatetimeIndex) -> np.ndarray:
    """Means over each month's finite values of (member, time, cell) values, float32
    (member, month, cell); NaN where a cell has none in a month."""
    months = time.to_period("M")
    codes = pd.Index(months.unique()).get_indexer(months)
    bounds = np.r_[np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]), time.size]
    monthly = np.empty((land.shape[0], bounds.size - 1, land.shape[2]), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells with no value in a month
        for k in range(bounds.size - 1):
            monthly[:, k] = np.nanmean(land[:, bounds[k]:bounds[k + 1]], axis=1)
    return monthly


@dataclass(frozen=True)
class Shipped:
    """An xarray object (a chunk's lazy predictors, a band's weights) that schedulers ship as
    is, never as a collection to compute."""

    data: Any


def _set_torch_threads(threads: int | None) -> None:
    """Let torch (when loaded) use the worker's share of the cores."""
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def run_chunk(members: Sequence[Model], block: Shipped, weights: xr.DataArray,
              land_area: xr.DataArray, step_days: np.ndarray, path: str,
              threads: int | None = None) -> str:
    """Predict one chunk, write the chunk file atomically; returns its path.

    The features are read straight from the (lazy) block, one at a time, once for all members.
    """
    _set_torch_threads(threads)
    limit_chunk_cache()  # before this process opens the predictor files
    with dask.config.set(scheduler="synchronous"):  # lazy reads stay in this task
        out = predict_chunk(members, block.data, weights, land_area, step_days)
    # NumPy files, not NetCDF: HDF5 is not thread safe, and these files are internal
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **{k: v.values for k, v in out.data_vars.items()})
    return path


def run_chunk_shipped(members: Sequence[Model], block: Shipped, weights: Shipped,
                      land_area: Shipped, step_days: np.ndarray, path: str,
                      threads: int | None = None) -> str:
    """:func:`run_chunk` on a dask worker, with the static inputs as scattered.

    The members are the worker's own copies, shared by its task threads: networks go to
    evaluation mode once, so that no task switches a member's mode while another predicts.
    """
    for m in members:
        estimator = getattr(m, "estimator", None)
        if callable(getattr(estimator, "eval", None)) and getattr(estimator, "training", False):
            estimator.eval()
    return run_chunk(members, block, weights.data, land_area.data, step_days, path, threads)


def load_chunk(path: Path, name: str) -> np.ndarray:
    """One variable of a chunk file."""
    with np.load(path, allow_pickle=False) as f:
        return f[name]


def lazy_grid(paths: list[list[Path]], chunks: list[Chunk], name: str, n_times: list[int],
              n_lon: int) -> da.Array:
    """One variable of the chunk files as a lazy (time or month, lat, lon) array."""
    rows = []
    for b, row in enumerate(paths):
        parts = [da.from_delayed(dask.delayed(load_chunk)(p, name),
                                 shape=(n_times[b], c.lat.stop - c.lat.start, n_lon),
                                 dtype=np.float32)
                 for p, c in zip(row, [c for c in chunks if c.block == b], strict=True)]
        rows.append(da.concatenate(parts, axis=1))
    return da.concatenate(rows, axis=0)


def chunk_totals(paths: list[list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """Regional (member, region, month) and global (member, month) totals [Tg month-1] of the
    chunk files, one row of blocks of ``paths`` after the other, bands summed."""
    regional, global_ = [], []
    for row in paths:
        regional.append(sum(load_chunk(p, "regional_tgc") for p in row))
        global_.append(sum(load_chunk(p, "global_tgc") for p in row))
    return np.concatenate(regional, axis=-1), np.concatenate(global_, axis=-1)

