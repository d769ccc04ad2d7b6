"""Global GeoTIFF layers aggregated to the model grid by area, a strip of rows at a time.

Categorical layers (IGBP land cover of MCD12C1, Köppen-Geiger zones) give the share of each
model cell's area covered by each class, the majority class and the land fraction; continuous
layers (annual NDVI maximum and minimum, C4 fraction) give the area mean over the valid pixels
and the share of the cell those cover. Shares are exact spherical overlaps
(:mod:`fluxbridge.io.area_weights`), so they hold for any pair of regular grids, nested or not.

The raster is opened lazily with rioxarray and read in windows of whole rows
(:data:`STRIP_PIXELS` pixels, a few MB), so a 0.05° or 1 km global raster never sits in
memory whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.area_weights import AreaWeights, area_weights
from fluxbridge.vocabulary import IGBP_CLASSES
from fluxbridge.vocabulary import attrs as var_attrs

STRIP_PIXELS = 4_000_000
"""Pixels read at once (whole rows): 4 MB of uint8, 16 MB of float32."""
GDAL_CACHE_MB = 32
"""GDAL block cache [MB] while a layer is read."""


@dataclass(frozen=True)
class Classes:
    """The classes of a categorical layer.

    Attributes
    ----------
    variable
        Canonical name of the majority class variable.
    names
        Code → short class name; codes not listed (fill) are not counted.
    land
        Codes that are land, whose shares add up to the land fraction.
    """

    variable: str
    names: Mapping[int, str]
    land: frozenset[int]


IGBP = Classes("land_cover", dict(enumerate(IGBP_CLASSES)), frozenset(range(1, 17)))
"""MODIS MCD12 LC_Type1: 0 water, 1..16 ENF..BSV (255 fill, not counted)."""

KOPPEN_GEIGER = Classes("climate_zone", {1: "A", 2: "B", 3: "C", 4: "D", 5: "E"},
                        frozenset(range(1, 6)))
"""Köppen-Geiger main groups (Beck et al. 2018): 1 A tropical ... 5 E polar; 0 is no data
(sea), not counted."""


def open_layer(path: str | os.PathLike[str]) -> xr.DataArray:
    """Band 1 of a single-band GeoTIFF in longitude/latitude, lazily (nothing read yet).

    Parameters
    ----------
    path
        GeoTIFF on a north-up regular longitude/latitude grid.

    Returns
    -------
    xr.DataArray
        (y, x) in the file's own values and type (no masking); rioxarray's ``rio`` accessor
        gives ``nodata`` and ``transform``.
    """
    import rasterio
    import rioxarray

    path = Path(path)
    if not path.is_file():
        raise InputError("GeoTIFF not found", path=path)
    try:
        da = rioxarray.open_rasterio(path, cache=False, masked=False)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot open as GeoTIFF ({exc})", path=path) from None
    crs, t = da.rio.crs, da.rio.transform()
    if crs is None or not crs.is_geographic or t.b != 0 or t.d != 0 or t.e >= 0:
        raise InputError(f"grid in {crs} with transform {tuple(t)[:6]}", path=path,
                         variable="crs", expected="a north-up longitude/latitude grid "
                         "(EPSG:4326 or another geographic CRS, as MODIS CMG files)")
    return da.isel(band=0, drop=True)


def _weights(layer: xr.DataArray, grid: xr.Dataset | xr.DataArray) -> AreaWeights:
    t = layer.rio.transform()
    x = t.c + t.a * np.arange(layer.sizes["x"] + 1)
    y = t.f + t.e * np.arange(layer.sizes["y"] + 1)
    return area_weights((y[1:], y[:-1]), (x[:-1], x[1:]), grid)


def _strips(layer: xr.DataArray) -> Iterator[tuple[int, int, np.ndarray]]:
    """(first row, end row, values) of consecutive windows of whole rows.

    GDAL's block cache is held to :data:`GDAL_CACHE_MB` meanwhile: by default it may grow to
    5 % of the machine's memory with blocks that are read once.
    """
    import rasterio

    n_rows = max(1, STRIP_PIXELS // layer.sizes["x"])
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        for start in range(0, layer.sizes["y"], n_rows):
            stop = min(start + n_rows, layer.sizes["y"])
            yield start, stop, np.asarray(layer.isel(y=slice(start, stop)).values)


def _grid_coords(grid: xr.Dataset | xr.DataArray) -> dict[str, xr.DataArray]:
    return {"lat": grid["lat"].copy(), "lon": grid["lon"].copy()}


def read_class_fractions(path: str | os.PathLike[str], grid: xr.Dataset | xr.DataArray,
                         classes: Classes = IGBP) -> xr.Dataset:
    """Shares of each class, majority class and land fraction of a categorical GeoTIFF.

    Parameters
    ----------
    path
        Single-band GeoTIFF of class codes on a regular longitude/latitude grid
        (MCD12C1 LC_Type1 at 0.05°, Köppen-Geiger at 1 km, ...).
    grid
        Model grid: a dataset with regular ``lat``/``lon`` cell centres [degree] (a regions
        dataset, :func:`fluxbridge.grid.make_grid`).
    classes
        The layer's classes (:data:`IGBP`, :data:`KOPPEN_GEIGER`).

    Returns
    -------
    xr.Dataset
        On ``grid``: ``<variable>_fraction`` (class, lat, lon) [1], the share of the cell's
        area covered by each class (coordinate ``class`` holds the names, ``code`` the
        codes); ``<variable>`` (lat, lon) int64, the code covering most of the cell's area
        (the lower code on ties; 0 where no class is counted); ``land_fraction`` (lat, lon)
        [1], the sum of the land classes' shares.
    """
    layer = open_layer(path)
    w = _weights(layer, grid)
    codes = np.array(sorted(classes.names), dtype=np.int64)
    area = np.zeros((codes.size, *w.target_area.shape))
    for start, stop, block in _strips(layer):
        for k, code in enumerate(codes):
            hit = block == code
            if hit.any():
                area[k] += w.rows(start, stop, hit)
    fraction = area / w.target_area
    counted = fraction.sum(axis=0) > 0
    majority = np.where(counted, codes[np.argmax(fraction, axis=0)], 0)
    land = fraction[np.isin(codes, list(classes.land))].sum(axis=0)
    dims = ("lat", "lon")
    var = classes.variable
    ds = xr.Dataset(
        {f"{var}_fraction": (("class", *dims), fraction.astype(np.float32),
                             {"units": "1", "long_name": f"share of the cell's area in each "
                              f"{var.replace('_', ' ')} class"}),
         var: (dims, majority, {**var_attrs(var), "flag_values": codes,
                                "flag_meanings": " ".join(classes.names[c] for c in codes)}),
         "land_fraction": (dims, land.astype(np.float32), var_attrs("land_fraction"))},
        coords={**_grid_coords(grid), "class": [classes.names[c] for c in codes],
                "code": ("class", codes)})
    ds.attrs = {"source": str(path), "aggregation": "exact spherical overlap area of the "
                "source pixels with each cell; majority = class of largest area"}
    return ds


def read_layer_mean(path: str | os.PathLike[str], grid: xr.Dataset | xr.DataArray,
                    name: str, scale: float = 1.0) -> xr.Dataset:
    """Area mean of a continuous GeoTIFF layer on the model grid.

    Parameters
    ----------
    path
        Single-band GeoTIFF on a regular longitude/latitude grid; its nodata value and NaN
        are left out.
    grid
        Model grid (regular ``lat``/``lon`` cell centres [degree]).
    name
        Canonical variable name (:mod:`fluxbridge.vocabulary`), e.g. ``ndvi_max``,
        ``c4_fraction``.
    scale
        Factor from the file's values to the variable's units (0.01 for a percentage given
        as a fraction [1]).

    Returns
    -------
    xr.Dataset
        On ``grid``: ``<name>`` (lat, lon) float32, the mean over the valid pixels weighted by
        their overlap area, in the variable's units, NaN where the cell has none;
        ``<name>_coverage`` (lat, lon) [1], the share of the cell's area with valid pixels.
    """
    layer = open_layer(path)
    nodata = layer.rio.nodata
    w = _weights(layer, grid)
    total = np.zeros(w.target_area.shape)
    covered = np.zeros(w.target_area.shape)
    for start, stop, block in _strips(layer):
        valid = np.isfinite(block)
        if nodata is not None and np.isfinite(nodata):
            valid &= block != nodata
        total += w.rows(start, stop, np.where(valid, block, 0.0))
        covered += w.rows(start, stop, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(covered > 0, scale * total / covered, np.nan)
    dims = ("lat", "lon")
    ds = xr.Dataset(
        {name: (dims, mean.astype(np.float32), var_attrs(name)),
         f"{name}_coverage": (dims, (covered / w.target_area).astype(np.float32),
                              {"units": "1", "long_name": "share of the cell's area with "
                               f"valid {name} pixels"})},
        coords=_grid_coords(grid))
    ds.attrs = {"source": str(path), "aggregation": "mean of the valid source pixels weighted "
                "by their exact spherical overlap area with each cell"}
    return ds
