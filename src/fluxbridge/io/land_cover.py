"""Land cover as IGBP classes on the model grid: MCD12-like NetCDF or GeoTIFF (MCD12C1).

A file on the model grid is taken as it is; a finer one (the 0.05° MCD12C1 GeoTIFF, say) gives
each model cell the majority land class of the finer cells whose centres it holds (water only
where none is land: a coastal cell's land is counted with its own class, not lost to the sea).
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
MAX_RASTER_CELLS = 64 * 2**20
"""Most cells of a land cover read into memory (about 67 million: MCD12C1's 0.05° global grid
has 26 million); a larger raster is refused from its header, before it is read."""
UNCLASSIFIED = 255
"""MCD12's code for unclassified cells, taken as no data like a declared fill value."""


def read_land_cover(path: str | os.PathLike[str], grid: xr.Dataset | None = None
                    ) -> xr.DataArray:
    """IGBP land cover classes (0 water, 1 ENF ... 16 BSV) on the model grid.

    The grid is checked from the file's header (coordinates, or a GeoTIFF's transform) before
    the classes are read: a raster of more than :data:`MAX_RASTER_CELLS` cells, or on a grid
    neither the model's nor finer, is refused without being loaded.

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
        ``land_cover`` (lat, lon) int64, codes 0..16 (no data becomes 0); attrs
        ``flag_values``, ``flag_meanings``, ``source`` and, when aggregated, ``aggregation``.

    Raises
    ------
    InputError
        A raster too large or on another grid (from its header), or codes outside IGBP
        0..16 other than the declared fill value and 255 (naming the codes found).
    """
    path = Path(path)
    tiff = path.suffix.lower() in TIFF_SUFFIXES
    raw, fill = _open_tiff(path) if tiff else _open_netcdf(path)  # lazily
    da = to_canonical_grid(raw, lat=spatial_dim(raw, "lat"), lon=spatial_dim(raw, "lon"))
    aggregated = _check_header(da, grid, path)
    da = _checked_codes(da.compute(), fill, path)
    n = len(IGBP_CLASSES)
    if aggregated:
        da = majority_to_grid(da, grid, n, background=0)
    else:
        da = da.where((da >= 0) & (da <= n - 1), 0).astype("int64")
    da.name = "land_cover"
    da.attrs = {**var_attrs("land_cover"), "flag_values": np.arange(n),
                "flag_meanings": " ".join(IGBP_CLASSES), "source": str(path)}
    if aggregated:
        da.attrs["aggregation"] = ("majority land class of the finer cells in each cell; "
                                   "water only where no finer cell is land")
    return da


def _check_header(da: xr.DataArray, grid: xr.Dataset | None, path: Path) -> bool:
    """Refuse a raster too large or on a grid neither the model's nor finer, from its
    coordinates only; returns whether it is finer (to be aggregated)."""
    shape = (da.sizes["lat"], da.sizes["lon"])
    if shape[0] * shape[1] > MAX_RASTER_CELLS:
        raise InputError(f"grid of {shape[0]} x {shape[1]} cells ({shape[0] * shape[1]:,}); "
                         "not read", path=path, variable=str(da.name),
                         expected=f"at most {MAX_RASTER_CELLS:,} cells (MCD12C1 at 0.05°: "
                         "3600 x 7200); aggregate it first, e.g. gdalwarp -r mode -tr 0.05 "
                         "0.05")
    if grid is None:
        return False
    if _finer(da, grid, path):
        return True
    check_same_grid(da, grid, what="land cover grid and model grid", path=str(path))
    return False


def _checked_codes(da: xr.DataArray, fill: float | None, path: Path) -> xr.DataArray:
    """The classes with no data (``fill``, :data:`UNCLASSIFIED`) as -1; codes outside IGBP
    refused, naming them."""
    values = np.asarray(da.values)
    nodata = values == UNCLASSIFIED
    if fill is not None:
        nodata |= values == fill
    bad = ~nodata & ((values < 0) | (values > len(IGBP_CLASSES) - 1))
    if bad.any():
        codes = np.unique(values[bad])
        raise InputError(f"{int(bad.sum())} cells hold codes outside IGBP: "
                         f"{[c.item() for c in codes[:10]]}", path=path, variable=str(da.name),
                         expected=f"IGBP codes 0..{len(IGBP_CLASSES) - 1}, and {UNCLASSIFIED} "
                         "or the declared fill value for no data")
    return da.copy(data=np.where(nodata, -1, values).astype(np.int64))


def _finer(da: xr.DataArray, grid: xr.Dataset, path: Path) -> bool:
    """Whether ``da`` is on a finer grid than ``grid`` (False on the same grid)."""
    try:
        check_same_grid(da, grid, what="land cover grid and model grid", path=str(path))
    except GridMismatchError:
        return (resolution_of(da["lat"].values, "lat") < resolution_of(grid["lat"].values, "lat")
                and resolution_of(da["lon"].values, "lon")
                < resolution_of(grid["lon"].values, "lon"))
    return False


def _open_netcdf(path: Path) -> tuple[xr.DataArray, float | None]:
    """The class variable, lazily, and its declared fill value."""
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
    fill = da.attrs.get("_FillValue", da.encoding.get("_FillValue"))
    return (da.isel(time=-1, drop=True) if "time" in da.dims else da), fill


def _read_band(path: Path) -> np.ndarray:
    """Band 1 of a GeoTIFF, whole."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def _open_tiff(path: Path) -> tuple[xr.DataArray, float | None]:
    """Band 1 of a GeoTIFF in longitude/latitude degrees with cell-centre coordinates, read
    when computed (its grid is checked first), and its no-data value."""
    import dask
    import dask.array
    import rasterio

    if not path.is_file():
        raise InputError("land cover file not found", path=path)
    try:
        with rasterio.open(path) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            dtype, nodata = np.dtype(src.dtypes[0]), src.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot open as GeoTIFF ({exc})", path=path) from None
    if crs is None or not crs.is_geographic or transform.b != 0 or transform.d != 0:
        raise InputError(f"grid in {crs} with transform {tuple(transform)[:6]}", path=path,
                         variable="crs",
                         expected="a north-up longitude/latitude grid (e.g. MCD12C1, EPSG:4326)")
    lon = transform.c + transform.a * (np.arange(shape[1]) + 0.5)
    lat = transform.f + transform.e * (np.arange(shape[0]) + 0.5)
    band = dask.array.from_delayed(dask.delayed(_read_band)(path), shape=shape, dtype=dtype)
    return xr.DataArray(band, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name="land_cover"), nodata
