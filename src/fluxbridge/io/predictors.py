"""Canonical gridded predictors opened lazily from NetCDF files or a Zarr store.

The files are already on the canonical grid (see :mod:`fluxbridge.grid`) with canonical names
and units, e.g. as the pipeline writes them; :func:`fluxbridge.upscaling.upscale` opens them here
when given paths. NetCDF files get a small HDF5 chunk cache (:func:`limit_chunk_cache`), which the
upscaling workers set too before they read their chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from fluxbridge.errors import InputError

HDF5_CHUNK_CACHE = 8 * 2**20
"""Bytes of HDF5 chunk cache per open NetCDF variable. The library's default (64 MiB) fills up
with chunks that are read once, which grows a worker by 64 MiB per predictor variable."""


def limit_chunk_cache() -> None:
    """Bound the HDF5 chunk cache of NetCDF files opened from now on in this process to
    :data:`HDF5_CHUNK_CACHE` [bytes] per variable (a smaller cache is left as it is)."""
    try:
        import netCDF4
    except ImportError:  # pragma: no cover - a dependency; other engines keep their caches
        return
    size, nelems, preemption = netCDF4.get_chunk_cache()
    if size > HDF5_CHUNK_CACHE:
        netCDF4.set_chunk_cache(HDF5_CHUNK_CACHE, nelems, preemption)


def open_predictors(paths: str | Path | Sequence[str | Path]) -> xr.Dataset:
    """Open canonical predictors lazily from NetCDF files (dask for several) or a Zarr store.

    NetCDF files opened from then on in this process get a small HDF5 chunk cache
    (:data:`HDF5_CHUNK_CACHE`), as do the upscaling workers.

    Parameters
    ----------
    paths
        One or more NetCDF files (combined by coordinates) or one ``.zarr`` directory, already on
        the canonical grid (see :mod:`fluxbridge.grid`).

    Returns
    -------
    xr.Dataset
        The predictors as stored (canonical names and units, e.g. ``ta`` [degC]), lazily
        indexed for one file, dask-backed for several or a Zarr store.

    Raises
    ------
    InputError
        A path that does not exist.
    """
    items = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    missing = [p for p in items if not p.exists()]
    if missing:
        raise InputError("predictor file not found", path=missing[0],
                         expected="existing NetCDF files or a Zarr store")
    limit_chunk_cache()
    if len(items) == 1 and items[0].suffix == ".zarr":
        return xr.open_zarr(items[0])
    if len(items) == 1:  # lazily indexed: each chunk reads exactly its hyperslab
        return xr.open_dataset(items[0])
    return xr.open_mfdataset(items, chunks={}, combine="by_coords", data_vars="minimal",
                             coords="minimal", compat="override")
