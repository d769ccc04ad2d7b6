"""Upscaling: apply trained models to gridded predictors chunk by chunk, on dask.

The grid is cut into chunks of whole months by latitude bands
(:func:`fluxbridge.upscaling.chunks.plan_chunks`); one function,
:func:`~fluxbridge.upscaling.chunks.predict_chunk`, turns a chunk of predictors into NEE, its
monthly means and its regional and global totals; it runs in a loop, on threads or on a
dask.distributed cluster (:mod:`fluxbridge.upscaling.cluster`).

Each finished chunk is written atomically to ``{out_dir}/{name}/.chunks/``; a rerun after a kill
skips the chunks found there. The products (:mod:`fluxbridge.outputs.products`: ``nee.nc``,
``nee_monthly.nc``, ``regional.nc`` and ``.csv``, ``global.nc`` and ``.csv``) are assembled from
the chunk files only when all are done, and ``upscale.json`` is written last: present, the
products are complete. With ``fmt="zarr"`` the two grids are Zarr stores. Peak memory is set by
the chunk size, not by the grid size or the record length.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.predictors import open_predictors
from fluxbridge.location import with_location_layers
from fluxbridge.operators.operator import region_weights
from fluxbridge.outputs.files import provenance_attrs, write_json
from fluxbridge.outputs.products import write_global, write_grid, write_regional
from fluxbridge.progress import Progress
from fluxbridge.schema import check_predictors, check_regions
from fluxbridge.timesteps import step_days
from fluxbridge.upscaling.chunks import (
    MAX_CHUNK_CELLS,
    Chunk,
    Model,
    Shipped,
    chunk_totals,
    lazy_grid,
    plan_chunks,
)
from fluxbridge.upscaling.cluster import execute, open_client

log = logging.getLogger(__name__)

MANIFEST = "upscale.json"
CHUNK_DIR = ".chunks"
CHUNK_FORMAT = 2
"""Layout of the chunk files (2: totals in Tg month-1); chunks of another layout are redone."""


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


def _members(model: Any) -> list[Model]:
    members = list(model) if isinstance(model, list | tuple) else [model]
    for m in members:
        if not callable(getattr(m, "predict_arrays", None)):
            raise InputError(f"{type(m).__name__} has no predict_arrays method",
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
        "chunk_files": CHUNK_FORMAT,
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
    resume: bool = False,
) -> dict[str, UpscaleResult]:
    """Gridded NEE, monthly means, regional and global totals of each model or ensemble.

    Parameters
    ----------
    models
        Name to a model or a list of ensemble members (each with ``predict_arrays``).
    predictors
        Canonical predictors (time, lat, lon) with static ``land_cover`` (lat, lon), lazy
        (dask-backed) or in memory, or paths for
        :func:`~fluxbridge.io.predictors.open_predictors`.
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
        Show the progress over chunks (a bar on a terminal, log lines otherwise).
    overwrite
        Replace complete products; without it (or ``resume``) they raise :class:`InputError`.
    resume
        Keep complete products made by the same models from the same predictors and chunks
        (a rerun after a failure); complete products of other models are replaced.

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
    # location layers from the whole record, before the predictors are cut into chunks
    needed = [f for m in models.values() for member in _members(m)
              for f in getattr(member, "feature_names", ())]
    predictors = with_location_layers(predictors, needed).transpose("time", "lat", "lon", ...)
    attrs = provenance_attrs(inputs, prov.pop("config", None), **prov)

    results = {}
    with contextlib.ExitStack() as stack:
        client = None  # one cluster for every model
        if scheduler not in ("synchronous", "threads"):
            client = stack.enter_context(open_client(scheduler, n_workers))
        for name, model in models.items():
            results[name] = _upscale_one(
                name, _members(model), predictors, regions, Path(out_dir) / name, attrs=attrs,
                scheduler=scheduler, n_workers=n_workers, time_chunk=time_chunk,
                max_chunk_cells=max_chunk_cells, fmt=fmt, progress=progress,
                overwrite=overwrite, resume=resume, client=client)
    return results


def _upscale_one(name: str, members: list[Model], predictors: xr.Dataset, regions: xr.Dataset,
                 out: Path, *, attrs: dict[str, str], scheduler: str | None, n_workers: int,
                 time_chunk: int, max_chunk_cells: int, fmt: Literal["netcdf", "zarr"],
                 progress: bool, overwrite: bool, resume: bool = False, client: Any = None
                 ) -> UpscaleResult:
    time = pd.DatetimeIndex(predictors["time"].values)
    n_lat, n_lon = predictors.sizes["lat"], predictors.sizes["lon"]
    chunks = plan_chunks(time, n_lat, n_lon, time_chunk, max_chunk_cells)
    key = _run_key(members, predictors, chunks)
    manifest = out / MANIFEST
    chunk_dir = out / CHUNK_DIR
    done = _complete(manifest, key, overwrite, resume)
    if done is not None:
        return done
    days = step_days(time)
    _prepare_chunk_dir(chunk_dir, key)

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
            "block": Shipped(block),
            "weights": bands[band][0],
            "land_area": bands[band][1],
            "step_days": days[c.time],
            "path": str(path),
        }))
    log.debug("%s: %d members, %d chunks (%d to do)", name, len(members), len(chunks), len(jobs))
    with Progress(len(chunks), f"upscale {name}", unit="chunk",
                  initial=len(chunks) - len(jobs), enabled=progress) as bar:
        execute(jobs, members, scheduler, n_workers, bar, client)

    result = _assemble(name, members, chunks, chunk_dir, predictors, regions, out, attrs,
                       fmt)
    land = np.asarray(predictors["land_cover"] > 0) if "land_cover" in predictors else \
        np.asarray(regions["land_fraction"] > 0)
    result.land_samples = int(land.sum()) * time.size
    result.extra["run_key"] = key
    write_json(result.to_dict(), manifest)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return result


def _complete(manifest: Path, key: str, overwrite: bool, resume: bool
              ) -> UpscaleResult | None:
    """The complete products of a model in ``manifest``'s folder when they can stand (resume,
    same run key); otherwise None, the manifest and chunks of other products removed.

    Raises
    ------
    InputError
        If complete products exist and neither ``overwrite`` nor ``resume`` is set.
    """
    if manifest.exists() and not (overwrite or resume):
        raise InputError("upscaled products already exist", path=manifest,
                         expected="a new output directory, or overwrite=True to replace them")
    if manifest.exists() and resume and not overwrite:
        done = UpscaleResult.from_dict(json.loads(manifest.read_text()))
        if done.extra.get("run_key") == key:
            log.info("%s: complete products found, kept", done.name)
            return done
        log.warning("replacing upscaled products of other models or inputs in %s",
                    manifest.parent)
    if overwrite or manifest.exists():
        manifest.unlink(missing_ok=True)
        shutil.rmtree(manifest.parent / CHUNK_DIR, ignore_errors=True)
    return None


def _assemble(name: str, members: list[Model], chunks: list[Chunk], chunk_dir: Path,
              predictors: xr.Dataset, regions: xr.Dataset, out: Path, attrs: dict[str, str],
              fmt: Literal["netcdf", "zarr"]) -> UpscaleResult:
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

    step = "day" if bool((step_days(time) == 1).all()) else "month"  # the model's step
    for stem, period, axis, sizes in (("nee", step, time, [t.size for t in block_times]),
                                      ("nee_monthly", "month", months,
                                       [m.size for m in block_months])):
        coords = {"time": axis.values, "lat": predictors["lat"].values,
                  "lon": predictors["lon"].values}
        fields = [xr.DataArray(lazy_grid(paths, chunks, var, sizes, n_lon),
                               dims=("time", "lat", "lon"), coords=coords)
                  for var in ((stem, stem + "_spread") if ensemble else (stem,))]
        write_grid(fields[0], fields[1] if ensemble else None, regions, period, attrs,
                   len(members), out / f"{stem}{suffix}", fmt, rows)

    regional, global_ = chunk_totals(paths)
    write_regional(regional, months, regions, attrs, out / "regional.csv", out / "regional.nc")
    write_global(global_, months, attrs, out / "global.csv", out / "global.nc")
    return UpscaleResult(
        name=name, grid=out / f"nee{suffix}", grid_monthly=out / f"nee_monthly{suffix}",
        regional_csv=out / "regional.csv", regional_nc=out / "regional.nc",
        global_csv=out / "global.csv", global_nc=out / "global.nc",
        members=len(members), chunks=len(chunks), land_samples=0)
