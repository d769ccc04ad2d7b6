"""Upscaling: apply trained models to gridded predictors chunk by chunk, on dask.

The grid is cut into chunks of whole calendar months (``time_chunk`` days at most, one month at
least) by latitude bands (at most ``max_chunk_cells`` cells). One function,
:func:`predict_chunk`, turns a chunk of predictors into NEE, its monthly means and its regional and
global totals; it runs in a loop (``scheduler="synchronous"``), on threads (``"threads"``) or on a
dask.distributed cluster (a LocalCluster by default, or the scheduler at a given address).

Each finished chunk is written atomically to ``{out_dir}/{name}/.chunks/``; a rerun after a kill
skips the chunks found there. The products are assembled from the chunk files only when all are
done, each under a temporary name renamed on completion, and ``upscale.json`` is written last:

    {out_dir}/{name}/nee.nc          daily NEE [g m-2 d-1] (+ nee_spread), CF-1.8
    {out_dir}/{name}/nee_monthly.nc  monthly means, time = month start
    {out_dir}/{name}/regional.nc     regional monthly totals [Tg month-1] (+ members, spread)
    {out_dir}/{name}/regional.csv    region, time (YYYY-MM), nee_tgc [, nee_tgc_spread]
    {out_dir}/{name}/global.nc       global annual totals [Pg yr-1]
    {out_dir}/{name}/global.csv      year, nee_pgc [, nee_pgc_spread]
    {out_dir}/{name}/upscale.json    the result (paths, members, chunks): present = complete

With ``fmt="zarr"`` the two grids are Zarr stores (``nee.zarr``, ``nee_monthly.zarr``).
Peak memory is set by the chunk size, not by the grid size or the record length.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import dask
import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from fluxbridge.outputs import cf
from fluxbridge.aggregation import region_weights, time_step_days, totals_frame
from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.errors import InputError
from fluxbridge.outputs.files import atomic_path, provenance_attrs, write_csv, write_json, write_netcdf
from fluxbridge.regions import region_names
from fluxbridge.schema import check_predictors, check_regions

log = logging.getLogger(__name__)

MANIFEST = "upscale.json"
CHUNK_DIR = ".chunks"
MAX_CHUNK_CELLS = 4_000_000
"""Default most (time x lat x lon) cells per chunk: about 300 MB of working memory per worker."""
HDF5_CHUNK_CACHE = 8 * 2**20
"""Bytes of HDF5 chunk cache per open NetCDF variable. The library's default (64 MiB) fills up
with chunks that are read once, which grows a worker by 64 MiB per predictor variable."""


class Model(Protocol):
    """What upscaling needs of a model (``fluxbridge.models.artifact.FittedModel`` has it)."""

    name: str
    feature_names: Sequence[str]

    def predict_dataset(self, ds: xr.Dataset) -> xr.DataArray:
        """NEE (time, lat, lon) [g m-2 d-1] from a chunk of canonical predictors."""
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


@dataclass
class UpscaleResult:
    """Paths and facts of one model's upscaled products."""

    name: str
    grid: Path
    grid_monthly: Path
    regional_csv: Path
    regional_nc: Path
    global_csv: Path
    global_nc: Path
    members: int
    chunks: int
    land_samples: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UpscaleResult:
        """Inverse of :meth:`to_dict`."""
        paths = {"grid", "grid_monthly", "regional_csv", "regional_nc", "global_csv", "global_nc"}
        return cls(**{k: (Path(v) if k in paths else v) for k, v in d.items()})


# -- planning ---------------------------------------------------------------------------------
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


def _step_days(time: pd.DatetimeIndex) -> np.ndarray:
    """Days represented by each time step (1 for daily data, days in month for monthly)."""
    step = time_step_days(time) if time.size > 1 else 1.0
    if step < 1.5:
        return np.ones(time.size)
    if 27 <= step <= 32:
        return time.days_in_month.to_numpy(dtype=float)
    raise InputError(f"time step of {step:.1f} days is neither daily nor monthly",
                     variable="time", expected="daily or monthly predictors")


# -- the chunk function -----------------------------------------------------------------------
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
        (:func:`fluxbridge.aggregation.region_weights`).
    land_area
        Cell area times land fraction (lat, lon) [m2].
    step_days
        Days each time step stands for [d].

    Returns
    -------
    xr.Dataset
        ``nee`` (time, lat, lon) and ``nee_monthly`` (month, lat, lon) [g m-2 d-1], the mean over
        members, with ``nee_spread`` and ``nee_monthly_spread`` (standard deviation, ddof 1) for
        two members or more; ``regional_g`` (member, region, month) [g] and ``global_g``
        (member, month) [g] of carbon.
    """
    fields = [np.asarray(m.predict_dataset(block).transpose("time", "lat", "lon").values,
                         dtype=np.float32) for m in members]
    stack = fields[0][None] if len(fields) == 1 else np.stack(fields)  # (member, t, y, x)
    del fields
    n_m, n_t, n_y, n_x = stack.shape
    time = pd.DatetimeIndex(block["time"].values)
    months = time.to_period("M")
    month_start = months.unique().to_timestamp()
    codes = pd.Index(months.unique()).get_indexer(months)
    bounds = np.r_[np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]), n_t]

    # reductions over the cells with a value (land) only; water cells stay NaN
    flat = stack.reshape(n_m, n_t, n_y * n_x)
    cells = np.flatnonzero(np.isfinite(flat).any(axis=(0, 1)))
    land = flat[:, :, cells]  # (member, time, cell)
    monthly = np.empty((n_m, month_start.size, cells.size), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells with no value in a month
        for k in range(month_start.size):
            monthly[:, k] = np.nanmean(land[:, bounds[k]:bounds[k + 1]], axis=1)

    filled = np.nan_to_num(land, nan=0.0).astype(np.float64)
    del land
    w = np.asarray(weights.transpose("region", "lat", "lon"), dtype=np.float64)
    w = w.reshape(w.shape[0], -1)[:, cells]
    area = np.asarray(land_area, dtype=np.float64).ravel()[cells]
    per_time_region = filled @ w.T  # (member, time, region) g d-1
    per_time_global = filled @ area  # (member, time) g d-1
    del filled
    onehot = (codes[:, None] == np.arange(month_start.size)[None, :]) * step_days[:, None]
    regional = np.einsum("mtr,tk->mrk", per_time_region, onehot)
    global_ = per_time_global @ onehot

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
    data["regional_g"] = (("member", "region", "month"), regional, {"units": "g"})
    data["global_g"] = (("member", "month"), global_, {"units": "g"})
    return xr.Dataset(data, coords={
        "lat": block["lat"].values, "lon": block["lon"].values, "time": time.values,
        "month": month_start.values, "region": weights["region"].values})


@dataclass(frozen=True)
class _Block:
    """An xarray object (a chunk's lazy predictors, a band's weights) that schedulers ship as
    is, never as a collection to compute."""

    data: Any


def _set_torch_threads(threads: int | None) -> None:
    """Let torch (when loaded) use the worker's share of the cores."""
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _limit_chunk_cache() -> None:
    """Bound the HDF5 chunk cache of NetCDF files opened from now on in this process."""
    try:
        import netCDF4
    except ImportError:  # pragma: no cover - a dependency; other engines keep their caches
        return
    size, nelems, preemption = netCDF4.get_chunk_cache()
    if size > HDF5_CHUNK_CACHE:
        netCDF4.set_chunk_cache(HDF5_CHUNK_CACHE, nelems, preemption)


def _run_chunk(members: Sequence[Model], block: _Block, weights: xr.DataArray,
               land_area: xr.DataArray, step_days: np.ndarray, path: str,
               threads: int | None = None) -> str:
    """Predict one chunk, write the chunk file atomically; returns its path.

    A single model reads its features straight from the (lazy) block, one at a time; the
    members of an ensemble share one read of the block.
    """
    _set_torch_threads(threads)
    _limit_chunk_cache()  # before this process opens the predictor files
    data = block.data
    with dask.config.set(scheduler="synchronous"):  # lazy reads stay in this task
        if len(members) > 1:
            data = data.copy()
            for name in data.variables:  # one variable at a time bounds the memory of the read
                data[name] = data[name].load()
        out = predict_chunk(members, data, weights, land_area, step_days)
    # NumPy files, not NetCDF: HDF5 is not thread safe, and these files are internal
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **{k: v.values for k, v in out.data_vars.items()})
    return path


def _run_chunk_shipped(members: Sequence[Model], block: _Block, weights: _Block,
                      land_area: _Block, step_days: np.ndarray, path: str,
                      threads: int | None = None) -> str:
    """:func:`_run_chunk` on a dask worker, with the static inputs as scattered.

    The members are the worker's own copies, shared by its task threads: networks go to
    evaluation mode once, so that no task switches a member's mode while another predicts.
    """
    for m in members:
        estimator = getattr(m, "estimator", None)
        if callable(getattr(estimator, "eval", None)) and getattr(estimator, "training", False):
            estimator.eval()
    return _run_chunk(members, block, weights.data, land_area.data, step_days, path, threads)


# -- execution --------------------------------------------------------------------------------
def _worker_threads(n_workers: int) -> int:
    """Task threads of each LocalCluster worker: its share of the cores."""
    return max(1, _cpu_count() // n_workers)


def _cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _quiet_cluster_logs() -> Iterator[None]:
    """Raise dask.distributed's loggers to WARNING, unless fluxbridge logs at DEBUG (--debug).

    The scheduler and nannies of a LocalCluster run in this process and log their start,
    connections and shutdown at INFO through the root logger's handlers.
    """
    if logging.getLogger("fluxbridge").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("distributed", "bokeh", "tornado")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A dask.distributed client: the given address or a LocalCluster, closed on exit.

    A LocalCluster has ``n_workers`` processes sharing the cores as task threads, each task's
    forward pass on one torch thread: two chunks in flight overlap one's reading and writing
    with the other's forward pass, which one chunk on two torch threads cannot.
    """
    from dask.distributed import Client, LocalCluster

    with _quiet_cluster_logs():
        if scheduler is None:
            with LocalCluster(n_workers=n_workers, threads_per_worker=_worker_threads(n_workers),
                              processes=True,
                              dashboard_address=None, silence_logs=logging.WARNING) as cluster, \
                    Client(cluster) as client:
                yield client
        else:
            with Client(scheduler) as client:
                yield client


def _execute(jobs: list[tuple[Chunk, dict[str, Any]]], members: Sequence[Model],
             scheduler: str | None, n_workers: int, bar: Any, client: Any = None) -> None:
    """Run :func:`_run_chunk` for every job on the chosen scheduler (or the given client)."""
    if not jobs:
        return
    if scheduler == "synchronous":
        for _, kw in jobs:
            _run_chunk(members, **kw)
            bar.update()
        return
    if scheduler == "threads":
        with concurrent.futures.ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(_run_chunk, members, **kw) for _, kw in jobs]
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
                bar.update()
        return
    from dask.distributed import as_completed

    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(_client(scheduler, n_workers))
        log.info("upscaling on dask.distributed at %s", client.scheduler.address)
        # our LocalCluster's tasks share this machine's cores; a remote cluster's are its own
        threads = 1 if scheduler is None else None
        shipped = client.scatter(list(members), broadcast=True)
        statics: dict[int, Any] = {}  # band weights and areas: scattered once, not per task

        def submit(kw: dict[str, Any]) -> Any:
            kw = dict(kw)
            for key in ("weights", "land_area"):
                if id(kw[key]) not in statics:
                    statics[id(kw[key])] = client.scatter(_Block(kw[key]))
                kw[key] = statics[id(kw[key])]
            with warnings.catch_warnings():
                # predictors held in memory travel inside their chunk's task; a file-backed
                # chunk travels as its file name and indices
                warnings.filterwarnings("ignore", message="Sending large graph")
                return client.submit(_run_chunk_shipped, shipped, pure=False, threads=threads,
                                     **kw)

        # a few tasks in flight at a time: what waits at the scheduler does not grow with the
        # record length
        todo = iter(kw for _, kw in jobs)
        slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        window = 2 * max(n_workers, slots) + 1
        running = as_completed([submit(kw) for kw in itertools.islice(todo, window)])
        for fut in running:
            fut.result()
            bar.update()
            nxt = next(todo, None)
            if nxt is not None:
                running.add(submit(nxt))


# -- assembly ---------------------------------------------------------------------------------
def _load_chunk(path: Path, name: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as f:
        return f[name]


def _lazy_grid(paths: list[list[Path]], chunks: list[Chunk], name: str, n_times: list[int],
               n_lon: int) -> dask.array.Array:
    """One variable of the chunk files as a lazy (time or month, lat, lon) array."""
    import dask.array as da

    rows = []
    for b, row in enumerate(paths):
        parts = [da.from_delayed(dask.delayed(_load_chunk)(p, name),
                                 shape=(n_times[b], c.lat.stop - c.lat.start, n_lon),
                                 dtype=np.float32)
                 for p, c in zip(row, [c for c in chunks if c.block == b], strict=True)]
        rows.append(da.concatenate(parts, axis=1))
    return da.concatenate(rows, axis=0)


def _totals(paths: list[list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """Regional (member, region, month) and global (member, month) totals [g]."""
    regional, global_ = [], []
    for row in paths:
        regional.append(sum(_load_chunk(p, "regional_g") for p in row))
        global_.append(sum(_load_chunk(p, "global_g") for p in row))
    return np.concatenate(regional, axis=-1), np.concatenate(global_, axis=-1)


def _mean_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    return x.mean(axis=0), (x.std(axis=0, ddof=1) if x.shape[0] > 1 else None)


def _write_grid(ds: xr.Dataset, path: Path, fmt: str, chunk_rows: int) -> None:
    enc = cf.encoding(ds, chunk_rows, fmt)  # type: ignore[arg-type]
    with dask.config.set(scheduler="synchronous"):
        if fmt == "netcdf":
            write_netcdf(ds, path, encoding=enc, engine="netcdf4")
        else:
            with atomic_path(path) as tmp:
                ds.to_zarr(tmp, encoding=enc, mode="w", consolidated=True)


def _regional_outputs(regional_g: np.ndarray, months: pd.DatetimeIndex, regions: xr.Dataset,
                      attrs: dict[str, str], csv: Path, nc: Path) -> None:
    names = region_names(regions)
    ids = np.array(sorted(names), dtype=int)
    tgc = regional_g / G_PER_TG
    mean, spread = _mean_spread(tgc)
    units, what = "Tg month-1", "regional total of net ecosystem exchange of carbon per month, " \
                                "positive to the atmosphere"
    coords = {"region": ids, "region_name": ("region", [names[i] for i in ids]),
              "time": months.values}
    ds = xr.Dataset(coords=coords)
    ds["nee_tgc"] = (("region", "time"), mean, {"units": units, "long_name": what})
    if spread is not None:
        ds["nee_tgc_spread"] = (("region", "time"), spread, {
            "units": units, "long_name": "standard deviation across ensemble members of the "
                                         + what})
        ds["nee_tgc_member"] = (("member", "region", "time"), tgc, {
            "units": units, "long_name": what + ", each ensemble member"})
    ds["region"].attrs = {"long_name": "region id", **{k: v for k, v in
                          regions["region"].attrs.items() if k.startswith("flag")}}
    ds["time"].attrs = {"long_name": "month start", "standard_name": "time"}
    ds.attrs = {**cf.GLOBAL_ATTRS, **attrs, "title": "fluxbridge regional NEE totals"}
    write_netcdf(ds, nc, encoding={"time": {"units": cf.TIME_UNITS, "calendar": cf.CALENDAR}})
    df = totals_frame(ds["nee_tgc"])
    if spread is not None:
        df["nee_tgc_spread"] = totals_frame(ds["nee_tgc_spread"], "s")["s"].to_numpy()
    write_csv(df, csv)


def _global_outputs(global_g: np.ndarray, months: pd.DatetimeIndex, attrs: dict[str, str],
                    csv: Path, nc: Path) -> None:
    years = np.unique(months.year)
    yearly = np.stack([global_g[:, months.year == y].sum(axis=1) for y in years], axis=1)
    pgc = yearly / G_PER_PG
    mean, spread = _mean_spread(pgc)
    what = "global land net ecosystem exchange of carbon per year, positive to the atmosphere"
    ds = xr.Dataset(coords={"year": ("year", years.astype(np.int32), {"long_name": "year"})})
    ds["nee_pgc"] = ("year", mean, {"units": "Pg yr-1", "long_name": what,
                                    "comment": "sum over the months present in the record"})
    if spread is not None:
        ds["nee_pgc_spread"] = ("year", spread, {"units": "Pg yr-1", "long_name":
                                                 "standard deviation across ensemble members of "
                                                 "the " + what})
    ds.attrs = {**cf.GLOBAL_ATTRS, **attrs, "title": "fluxbridge global NEE totals"}
    write_netcdf(ds, nc)
    df = pd.DataFrame({"year": years.astype(int), "nee_pgc": mean})
    if spread is not None:
        df["nee_pgc_spread"] = spread
    write_csv(df, csv)


# -- the workflow -----------------------------------------------------------------------------
def open_predictors(paths: str | Path | Sequence[str | Path]) -> xr.Dataset:
    """Open canonical predictors lazily from NetCDF files (dask for several) or a Zarr store.

    NetCDF files opened from then on in this process get a small HDF5 chunk cache
    (:data:`HDF5_CHUNK_CACHE`), as do the upscaling workers.

    Parameters
    ----------
    paths
        One or more NetCDF files (combined by coordinates) or one ``.zarr`` directory, already on
        the canonical grid (see :mod:`fluxbridge.grid`).
    """
    items = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    missing = [p for p in items if not p.exists()]
    if missing:
        raise InputError("predictor file not found", path=missing[0],
                         expected="existing NetCDF files or a Zarr store")
    _limit_chunk_cache()
    if len(items) == 1 and items[0].suffix == ".zarr":
        return xr.open_zarr(items[0])
    if len(items) == 1:  # lazily indexed: each chunk reads exactly its hyperslab
        return xr.open_dataset(items[0])
    return xr.open_mfdataset(items, chunks={}, combine="by_coords", data_vars="minimal",
                             coords="minimal", compat="override")


def _members(model: Any) -> list[Model]:
    members = list(model) if isinstance(model, list | tuple) else [model]
    for m in members:
        if not callable(getattr(m, "predict_dataset", None)):
            raise InputError(f"{type(m).__name__} has no predict_dataset method",
                             variable="models", expected="FittedModel objects or lists of them")
    if not members:
        raise InputError("an ensemble without members", variable="models",
                         expected="at least one FittedModel")
    return members


def _fingerprint(model: Model) -> str:
    """Digest of a network's weights, so that a retrained model does not reuse old chunks."""
    state = getattr(getattr(model, "estimator", None), "state_dict", None)
    if not callable(state):
        return ""
    h = hashlib.sha256()
    for name, tensor in sorted(state().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _run_key(members: Sequence[Model], predictors: xr.Dataset, chunks: list[Chunk]) -> str:
    """Identity of a run: a rerun with the same key may reuse finished chunks."""
    desc = {
        "members": [[getattr(m, "name", ""), list(getattr(m, "feature_names", [])),
                     _fingerprint(m)] for m in members],
        "time": [str(predictors["time"].values[0]), str(predictors["time"].values[-1]),
                 int(predictors.sizes["time"])],
        "lat": [float(predictors["lat"][0]), float(predictors["lat"][-1]),
                int(predictors.sizes["lat"])],
        "lon": [float(predictors["lon"][0]), float(predictors["lon"][-1]),
                int(predictors.sizes["lon"])],
        "chunks": [[c.time.start, c.time.stop, c.lat.start, c.lat.stop] for c in chunks],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def _prepare_chunk_dir(chunk_dir: Path, key: str) -> None:
    """Keep finished chunks of the same run; discard those of a different one."""
    stamp = chunk_dir / "run_key"
    if chunk_dir.exists() and (not stamp.exists() or stamp.read_text().strip() != key):
        log.warning("discarding chunks of a different run in %s", chunk_dir)
        shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        stamp.write_text(key + "\n")


def upscale(
    models: Mapping[str, Model | Sequence[Model]],
    predictors: xr.Dataset | str | Path | Sequence[str | Path],
    regions: xr.Dataset,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    n_workers: int = 1,
    time_chunk: int = 31,
    max_chunk_cells: int = MAX_CHUNK_CELLS,
    provenance: Mapping[str, Any] | None = None,
    fmt: Literal["netcdf", "zarr"] = "netcdf",
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, UpscaleResult]:
    """Gridded NEE, monthly means, regional and global totals of each model or ensemble.

    Parameters
    ----------
    models
        Name to a model or a list of ensemble members (each with ``predict_dataset``).
    predictors
        Canonical predictors (time, lat, lon) with static ``land_cover`` (lat, lon), lazy
        (dask-backed) or in memory, or paths for :func:`open_predictors`.
    regions
        Canonical regions dataset on the same grid.
    out_dir
        Directory; each model's products go to ``out_dir/name/``.
    scheduler
        None: a dask LocalCluster of ``n_workers`` processes; an address (``"tcp://..."``): an
        existing dask.distributed scheduler; ``"synchronous"`` or ``"threads"`` (``n_workers``
        threads): in this process, for tests and small grids.
    n_workers
        Workers of the LocalCluster or threads.
    time_chunk
        Most time steps [days] per chunk; chunks hold whole months.
    max_chunk_cells
        Most (time x lat x lon) cells per chunk; bounds the memory of a worker.
    provenance
        ``config`` (dict), ``inputs`` (paths) and any further items (e.g. ``corrections``),
        recorded in the products' attributes.
    fmt
        ``"netcdf"`` or ``"zarr"`` for the gridded products.
    progress
        Show a progress bar over chunks.
    overwrite
        Replace complete products; without it they raise :class:`InputError`.

    Returns
    -------
    dict of str to UpscaleResult
        One result per model name.
    """
    if fmt not in ("netcdf", "zarr"):
        raise InputError(f"unknown format {fmt!r}", variable="fmt", expected="netcdf or zarr")
    if time_chunk < 1 or max_chunk_cells < 1 or n_workers < 1:
        raise InputError("time_chunk, max_chunk_cells and n_workers must be positive",
                         variable="upscaling", expected="positive integers")
    prov = dict(provenance or {})
    inputs = [str(p) for p in prov.pop("inputs", [])]
    if not isinstance(predictors, xr.Dataset):
        paths = [predictors] if isinstance(predictors, str | Path) else list(predictors)
        inputs += [str(p) for p in paths]
        predictors = open_predictors(paths)
    check_regions(regions)
    check_predictors(predictors, regions)
    predictors = predictors.transpose("time", "lat", "lon", ...)
    attrs = provenance_attrs(inputs, prov.pop("config", None), **prov)

    results = {}
    with contextlib.ExitStack() as stack:
        client = None  # one cluster for every model
        if scheduler not in ("synchronous", "threads"):
            client = stack.enter_context(_client(scheduler, n_workers))
        for name, model in models.items():
            results[name] = _upscale_one(
                name, _members(model), predictors, regions, Path(out_dir) / name, attrs=attrs,
                scheduler=scheduler, n_workers=n_workers, time_chunk=time_chunk,
                max_chunk_cells=max_chunk_cells, fmt=fmt, progress=progress,
                overwrite=overwrite, client=client)
    return results


def _upscale_one(name: str, members: list[Model], predictors: xr.Dataset, regions: xr.Dataset,
                 out: Path, *, attrs: dict[str, str], scheduler: str | None, n_workers: int,
                 time_chunk: int, max_chunk_cells: int, fmt: str, progress: bool,
                 overwrite: bool, client: Any = None) -> UpscaleResult:
    manifest = out / MANIFEST
    if manifest.exists() and not overwrite:
        raise InputError("upscaled products already exist", path=manifest,
                         expected="a new output directory, or overwrite=True to replace them")
    chunk_dir = out / CHUNK_DIR
    if overwrite:
        for p in (manifest, chunk_dir):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    time = pd.DatetimeIndex(predictors["time"].values)
    n_lat, n_lon = predictors.sizes["lat"], predictors.sizes["lon"]
    chunks = plan_chunks(time, n_lat, n_lon, time_chunk, max_chunk_cells)
    step_days = _step_days(time)
    _prepare_chunk_dir(chunk_dir, _run_key(members, predictors, chunks))

    land_area = (regions["cell_area"] * regions["land_fraction"]).fillna(0.0)
    bands: dict[tuple[int, int], tuple[xr.DataArray, xr.DataArray]] = {}
    jobs = []
    for c in chunks:
        path = chunk_dir / c.filename
        if path.exists():
            continue
        block = predictors.isel(time=c.time, lat=c.lat)
        if any(v.chunks is not None for v in block.data_vars.values()):
            (block,) = dask.optimize(block)
        band = (c.lat.start, c.lat.stop)  # static inputs: one object per band, shipped once
        if band not in bands:
            bands[band] = (region_weights(regions.isel(lat=c.lat)), land_area.isel(lat=c.lat))
        jobs.append((c, {
            "block": _Block(block),
            "weights": bands[band][0],
            "land_area": bands[band][1],
            "step_days": step_days[c.time],
            "path": str(path),
        }))
    log.info("%s: %d members, %d chunks (%d to do)", name, len(members), len(chunks), len(jobs))
    with tqdm(total=len(chunks), initial=len(chunks) - len(jobs), disable=not progress,
              desc=f"upscale {name}", unit="chunk") as bar:
        _execute(jobs, members, scheduler, n_workers, bar, client)

    result = _assemble(name, members, chunks, chunk_dir, predictors, regions, out, attrs,
                       fmt)
    land = np.asarray(predictors["land_cover"] > 0) if "land_cover" in predictors else \
        np.asarray(regions["land_fraction"] > 0)
    result.land_samples = int(land.sum()) * time.size
    write_json(result.to_dict(), manifest)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return result


def _assemble(name: str, members: list[Model], chunks: list[Chunk], chunk_dir: Path,
              predictors: xr.Dataset, regions: xr.Dataset, out: Path, attrs: dict[str, str],
              fmt: str) -> UpscaleResult:
    """Write the products from the chunk files, each atomically; the grid stays lazy."""
    n_blocks = max(c.block for c in chunks) + 1
    paths: list[list[Path]] = [[] for _ in range(n_blocks)]
    for c in chunks:
        paths[c.block].append(chunk_dir / c.filename)
    time = pd.DatetimeIndex(predictors["time"].values)
    block_times = [time[next(c.time for c in chunks if c.block == b)] for b in range(n_blocks)]
    block_months = [t.to_period("M").unique().to_timestamp() for t in block_times]
    months = pd.DatetimeIndex(np.concatenate([m.values for m in block_months]))
    rows = max(c.lat.stop - c.lat.start for c in chunks)
    n_lon = predictors.sizes["lon"]
    ensemble = len(members) > 1
    attrs = {**attrs, "model_name": name, "ensemble_members": str(len(members))}
    suffix = ".nc" if fmt == "netcdf" else ".zarr"

    for stem, period, axis, sizes in (("nee", "day", time, [t.size for t in block_times]),
                                      ("nee_monthly", "month", months,
                                       [m.size for m in block_months])):
        coords = {"time": axis.values, "lat": predictors["lat"].values,
                  "lon": predictors["lon"].values}
        fields = [xr.DataArray(_lazy_grid(paths, chunks, var, sizes, n_lon),
                               dims=("time", "lat", "lon"), coords=coords)
                  for var in ((stem, stem + "_spread") if ensemble else (stem,))]
        grid = cf.gridded_dataset(fields[0], fields[1] if ensemble else None,
                                  regions["cell_area"], regions["land_fraction"],
                                  period, attrs, n_members=len(members))
        _write_grid(grid, out / f"{stem}{suffix}", fmt, rows)

    regional_g, global_g = _totals(paths)
    _regional_outputs(regional_g, months, regions, attrs, out / "regional.csv",
                      out / "regional.nc")
    _global_outputs(global_g, months, attrs, out / "global.csv", out / "global.nc")
    return UpscaleResult(
        name=name, grid=out / f"nee{suffix}", grid_monthly=out / f"nee_monthly{suffix}",
        regional_csv=out / "regional.csv", regional_nc=out / "regional.nc",
        global_csv=out / "global.csv", global_nc=out / "global.nc",
        members=len(members), chunks=len(chunks), land_samples=0)
