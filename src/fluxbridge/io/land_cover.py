"""Land cover as IGBP classes on the model grid: MCD12-like NetCDF or GeoTIFF (MCD12C1).

A file on the model grid is taken as it is; a finer one (the 0.05° MCD12C1 GeoTIFF, say) gives
each model cell the majority class of the finer cells whose centres it holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.grid import (
    check_same_grid,
    majority_to_grid,
    resolution_of,
    spatial_dim,
    to_canonical_grid,
)
from fluxbridge.vocabulary import IGBP_CLASSES
from fluxbridge.vocabulary import attrs as var_attrs

LAND_COVER_NAMES = ("Majority_Land_Cover_Type_1", "LC_Type1", "land_cover")
"""Names of the IGBP class variable in MCD12-like NetCDF files."""
TIFF_SUFFIXES = (".tif", ".tiff")


def read_land_cover(path: str | os.PathLike[str], grid: xr.Dataset | None = None
                    ) -> xr.DataArray:
    """IGBP land cover classes (0 water, 1 ENF ... 16 BSV) on the model grid.

    Parameters
    ----------
    path
        MCD12-like NetCDF (a variable of :data:`LAND_COVER_NAMES`; the last time if it has
        several) or a single-band GeoTIFF of IGBP codes in longitude/latitude (MCD12C1).
    grid
        Model grid (a dataset with ``lat``/``lon``). A file on another, finer grid is
        aggregated to it by majority; a coarser one is refused.

    Returns
    -------
    xr.DataArray
        ``land_cover`` (lat, lon) int64, codes 0..16 (fill and unknown codes become 0); attrs
        ``flag_values``, ``flag_meanings``, ``source`` and, when aggregated, ``aggregation``.
    """
    path = Path(path)
    raw = _read_tiff(path) if path.suffix.lower() in TIFF_SUFFIXES else _read_netcdf(path)
    da = to_canonical_grid(raw, lat=spatial_dim(raw, "lat"), lon=spatial_dim(raw, "lon"))
    da = da.astype("int64")
    n = len(IGBP_CLASSES)
    aggregated = grid is not None and _finer(da, grid, path)
    if aggregated:
        da = majority_to_grid(da.load(), grid, n)
    else:
        da = da.where((da >= 0) & (da <= n - 1), 0).load()
        if grid is not None:
            check_same_grid(da, grid, what="land cover grid and model grid", path=str(path))
    da.name = "land_cover"
    da.attrs = {**var_attrs("land_cover"), "flag_values": np.arange(n),
                "flag_meanings": " ".join(IGBP_CLASSES), "source": str(path)}
    if aggregated:
        da.attrs["aggregation"] = "majority class of the finer cells in each cell"
    return da


def _finer(da: xr.DataArray, grid: xr.Dataset, path: Path) -> bool:
    """Whether ``da`` is on a finer grid than ``grid`` (False on the same grid)."""
    try:
        check_same_grid(da, grid, what="land cover grid and model grid", path=str(path))
    except GridMismatchError:
        return (resolution_of(da["lat"].values, "lat") < resolution_of(grid["lat"].values, "lat")
                and resolution_of(da["lon"].values, "lon")
                < resolution_of(grid["lon"].values, "lon"))
    return False


def _read_netcdf(path: Path) -> xr.DataArray:
    if not path.is_file():
        raise InputError("land cover file not found", path=path)
    try:
        ds = xr.open_dataset(path, mask_and_scale=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "), path=path) from None
    name = next((n for n in LAND_COVER_NAMES if n in ds), None)
    if name is None:
        raise InputError("no land cover variable", path=path, variable="land_cover",
                         expected=" or ".join(LAND_COVER_NAMES))
    da = ds[name]
    return da.isel(time=-1, drop=True) if "time" in da.dims else da


def _read_tiff(path: Path) -> xr.DataArray:
    """Band 1 of a GeoTIFF in longitude/latitude degrees, with cell-centre coordinates."""
    import rasterio

    if not path.is_file():
        raise InputError("land cover file not found", path=path)
    try:
        with rasterio.open(path) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            codes = src.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot open as GeoTIFF ({exc})", path=path) from None
    if crs is None or not crs.is_geographic or transform.b != 0 or transform.d != 0:
        raise InputError(f"grid in {crs} with transform {tuple(transform)[:6]}", path=path,
                         variable="crs",
                         expected="a north-up longitude/latitude grid (e.g. MCD12C1, EPSG:4326)")
    lon = transform.c + transform.a * (np.arange(shape[1]) + 0.5)
    lat = transform.f + transform.e * (np.arange(shape[0]) + 0.5)
    return xr.DataArray(codes, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name="land_cover")
