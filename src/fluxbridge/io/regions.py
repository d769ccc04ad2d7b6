"""Region masks from NetCDF integer masks (TransCom-3, RECCAP-2, the twin world's) and from
vector files (GeoJSON, shapefile, GeoPackage).

The result is the canonical regions dataset of :mod:`fluxbridge.regions`: ``region`` (lat, lon)
with CF flags, ``cell_area`` [m2] (the file's own when it has one) and ``land_fraction`` [1].
Polygons read by :func:`read_region_vector` are rasterised onto the model grid by fractional
overlap and also keep that fraction (``region_fraction``, (region_id, lat, lon) [1]).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import (
    check_same_grid,
    land_fraction,
    make_grid,
    normalise_longitude,
    resolution_of,
)
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset, region_names

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

MASK_NAMES = ("region", "regions", "transcom_regions", "transcom", "mask", "land_regions")


def _find_mask(ds: xr.Dataset, variable: str | None, path: Path) -> xr.DataArray:
    if variable is not None:
        if variable not in ds:
            raise InputError("mask variable missing", path=path, variable=variable)
        return ds[variable]
    for name in MASK_NAMES:
        if name in ds and ds[name].ndim == 2:
            return ds[name]
    candidates = [n for n, v in ds.data_vars.items() if v.ndim == 2 and (
        np.issubdtype(v.dtype, np.integer) or bool(np.all(np.mod(v.fillna(0).values, 1) == 0)))]
    if len(candidates) != 1:
        raise InputError(f"cannot tell which variable is the mask (candidates {candidates})",
                         path=path, variable="region", expected="pass variable=NAME")
    return ds[candidates[0]]


def read_region_mask(
    path: str | os.PathLike[str],
    variable: str | None = None,
    grid: xr.Dataset | None = None,
    land_only: bool = True,
    regrid: bool = True,
) -> xr.Dataset:
    """An integer region mask file as a canonical regions dataset.

    Parameters
    ----------
    path
        NetCDF with a 2-D integer mask (0 or fill = no region).
    variable
        Mask variable; found by name or as the only 2-D integer variable otherwise.
    grid
        Model grid (a dataset with ``lat``/``lon``); the mask is carried onto it when it
        differs (:func:`regrid_mask`: majority of fractional overlap from a finer mask, nearest
        cell from a coarser one).
    land_only
        For TransCom-3 masks, keep the land regions 1-11 (ocean regions 12-22 become 0).
    regrid
        With False, a mask on another grid than ``grid`` raises
        :class:`~fluxbridge.errors.GridMismatchError` instead of being regridded.

    Returns
    -------
    xr.Dataset
        Canonical regions dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("region mask file not found", path=path)
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "), path=path) from None
    da = _find_mask(ds, variable, path)
    lat_name = next((d for d in da.dims if d.lower().startswith("lat")), None)
    lon_name = next((d for d in da.dims if d.lower().startswith("lon")), None)
    if lat_name is None or lon_name is None:
        raise InputError(f"mask dims {da.dims}", path=path, variable=str(da.name),
                         expected="(lat, lon)")
    lat = ds[lat_name].values.astype(float)
    lon = ds[lon_name].values.astype(float)
    if np.any(np.abs(lat) > 90) or np.any((lon < -180) | (lon > 360)):
        raise InputError("coordinates out of range", path=path, variable="lat/lon",
                         expected="latitude in [-90, 90], longitude in [-180, 360]")
    values = np.nan_to_num(da.values.astype(float), nan=0.0).astype(np.int64)
    values[values < 0] = 0
    attrs = da.attrs
    if "flag_values" in attrs and "flag_meanings" in attrs:
        ids = np.atleast_1d(attrs["flag_values"]).astype(int)
        meanings = str(attrs["flag_meanings"]).split()
        names = {int(i): m.replace("_", " ") for i, m in zip(ids, meanings, strict=True)}
    elif "transcom" in str(da.name).lower() or "TRANSCOM" in path.name.upper():
        names = dict(TRANSCOM_NAMES)
        if not land_only:
            names.update({i: f"TransCom ocean {i}" for i in range(12, 23)})
    else:
        names = {int(i): f"region {int(i)}" for i in np.unique(values) if i != 0}
    values[~np.isin(values, list(names))] = 0
    # canonical order: lat descending, lon ascending in [-180, 180)
    lon_c = normalise_longitude(lon)
    order_lon = np.argsort(lon_c)
    order_lat = np.argsort(-lat)
    values = values[np.ix_(order_lat, order_lon)] if da.dims[0] == lat_name else \
        values.T[np.ix_(order_lat, order_lon)]
    lat, lon_c = lat[order_lat], lon_c[order_lon]
    land = None
    if "land_fraction" in ds:
        land = ds["land_fraction"].transpose(lat_name, lon_name).values[np.ix_(order_lat,
                                                                             order_lon)]
        land = xr.DataArray(land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon_c},
                            name="land_fraction", attrs={"units": "1", "source": str(path)})
    out = region_dataset(values, names, lat, lon_c, land=land, region_set=path.stem)
    if "cell_area" in ds:
        area = ds["cell_area"].transpose(lat_name, lon_name).values[np.ix_(order_lat, order_lon)]
        out["cell_area"] = (("lat", "lon"), area, {**out["cell_area"].attrs,
                                                  "source": str(path)})
    empty = [names[i] for i in names if not np.any(values == i)]
    if empty:
        raise InputError(f"region(s) without any cell: {empty}", path=path,
                         variable=str(da.name), expected="every named region on the grid")
    out.attrs["source"] = str(path)
    if grid is not None:
        try:
            check_same_grid(out, grid, what="region mask and model grid", path=str(path))
        except InputError:
            if not regrid:
                raise
            out = regrid_mask(out, grid)
    return out


def _edges(centres: np.ndarray, name: str, limit: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper cell edges [degree] of regular cell centres (any order)."""
    step = resolution_of(centres, name)
    lo, hi = centres - step / 2, centres + step / 2
    if limit is not None:
        lo, hi = np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)
    return lo, hi


def _overlap(target: tuple[np.ndarray, np.ndarray], source: tuple[np.ndarray, np.ndarray],
             period: float | None = None) -> np.ndarray:
    """Length shared by each target and each source interval (target, source)."""
    shifts = (-period, 0.0, period) if period else (0.0,)
    out = np.zeros((target[0].size, source[0].size))
    for shift in shifts:
        lo = np.maximum(target[0][:, None], source[0][None, :] + shift)
        hi = np.minimum(target[1][:, None], source[1][None, :] + shift)
        out += np.clip(hi - lo, 0.0, None)
    return out


def region_fractions(regions: xr.Dataset, grid: xr.Dataset) -> xr.DataArray:
    """Area fraction of each target cell covered by each region of a finer mask.

    Parameters
    ----------
    regions
        Canonical regions dataset (the source mask).
    grid
        Dataset with the target ``lat``/``lon`` (regular).

    Returns
    -------
    xr.DataArray
        (region, lat, lon) [1], the share of each target cell's area that the source mask gives
        to each region (spherical areas: latitudes weighted by the sine).
    """
    names = region_names(regions)
    ids = np.array(sorted(names))
    s_lat, s_lon = regions["lat"].values, regions["lon"].values
    t_lat, t_lon = grid["lat"].values, grid["lon"].values
    sin = np.sin
    s_lo, s_hi = (np.deg2rad(e) for e in _edges(s_lat, "lat", 90.0))
    t_lo, t_hi = (np.deg2rad(e) for e in _edges(t_lat, "lat", 90.0))
    w_lat = _overlap((sin(t_lo), sin(t_hi)), (sin(s_lo), sin(s_hi)))
    w_lon = _overlap(_edges(t_lon, "lon", None), _edges(s_lon, "lon", None), period=360.0)
    target_area = (sin(t_hi) - sin(t_lo))[:, None] * (_edges(t_lon, "lon", None)[1]
                                                      - _edges(t_lon, "lon", None)[0])[None, :]
    mask = regions["region"].values
    frac = np.stack([w_lat @ (mask == r).astype(float) @ w_lon.T / target_area for r in ids])
    return xr.DataArray(frac, dims=("region", "lat", "lon"),
                        coords={"region": ids, "lat": t_lat, "lon": t_lon,
                                "region_name": ("region", [names[i] for i in ids])},
                        attrs={"units": "1", "long_name": "fraction of the cell in the region"})


def regrid_mask(regions: xr.Dataset, grid: xr.Dataset, method: str = "auto") -> xr.Dataset:
    """Carry a regions dataset onto another regular grid.

    From a finer mask each target cell takes the region covering most of its area (fractional
    overlap, majority among regions; cells no region touches stay 0); from a coarser or equal
    one, the region of the nearest source cell. Target cells without land are 0. Land fraction
    comes from ``grid`` when it has one, else from the land mask; cell area is recomputed.

    Parameters
    ----------
    regions
        Canonical regions dataset.
    grid
        Dataset with the target ``lat``/``lon`` (and optionally ``land_fraction``).
    method
        ``"auto"``, ``"majority"`` or ``"nearest"``.

    Raises
    ------
    InputError
        A region that loses every cell.
    """
    lat, lon = grid["lat"].values, grid["lon"].values
    if method == "auto":
        finer = (resolution_of(regions["lat"].values, "lat") < resolution_of(lat, "lat")
                 or resolution_of(regions["lon"].values, "lon") < resolution_of(lon, "lon"))
        method = "majority" if finer else "nearest"
    names = region_names(regions)
    if method == "majority":
        frac = region_fractions(regions, grid)
        best = frac.argmax("region").values
        mask = np.where(frac.max("region").values > 0, frac["region"].values[best], 0)
    elif method == "nearest":
        mask = regions["region"].sel(lat=xr.DataArray(lat, dims="lat"),
                                     lon=xr.DataArray(normalise_longitude(lon), dims="lon"),
                                     method="nearest").values
    else:
        raise InputError(f"unknown regrid method {method!r}", variable="method",
                         expected="auto, majority or nearest")
    land = grid["land_fraction"] if "land_fraction" in grid else land_fraction(lat, lon)
    values = np.where(np.asarray(land) > 0, mask, 0)
    lost = [n for i, n in names.items() if not np.any(values == i)]
    if lost:
        raise InputError(f"region(s) {lost} have no cell on the target grid",
                         path=regions.attrs.get("source"), variable="region",
                         expected="a target grid fine enough for every region")
    out = region_dataset(values, names, lat, lon, land=xr.DataArray(
        np.asarray(land), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}),
        region_set=regions.attrs.get("region_set", "regridded"))
    out.attrs["regridded_from"] = str(regions.attrs.get("source", "memory"))
    out.attrs["regrid_method"] = method
    return out


# ------------------------------------------------------------------------------ vector files

VECTOR_SUFFIXES = (".geojson", ".json", ".shp", ".gpkg")
"""File types :func:`read_region_vector` reads (a zipped shapefile as ``.zip`` too)."""

FRACTION_SAMPLES = 10
"""Sample points per cell side of :meth:`regionmask.Regions.mask_3D_frac_approx`."""


def _geographic(gdf: gpd.GeoDataFrame, path: Path) -> tuple[gpd.GeoDataFrame, str]:
    """The polygons in longitude/latitude degrees (EPSG:4326) and a note on the CRS."""
    if gdf.crs is None:
        minx, miny, maxx, maxy = gdf.total_bounds
        if minx < -180 or maxx > 360 or miny < -90 or maxy > 90:
            raise InputError(f"no coordinate reference system and coordinates beyond degrees "
                             f"(bounds {minx:.4g}, {miny:.4g}, {maxx:.4g}, {maxy:.4g}): "
                             "projected?", path=path, variable="crs",
                             expected="a CRS in the file (e.g. the shapefile's .prj)")
        log.warning("%s: no CRS; taken as longitude/latitude degrees (EPSG:4326)", path)
        return gdf.set_crs(4326), "none in the file; taken as EPSG:4326"
    crs = gdf.crs
    note = crs.to_string()
    if crs.to_epsg() != 4326:
        try:
            gdf = gdf.to_crs(4326)
        except Exception as exc:  # pyproj raises its own errors; any is a bad input here
            raise InputError(f"cannot reproject from {note} to EPSG:4326 ({exc})", path=path,
                             variable="crs", expected="a CRS that pyproj can transform") from None
        note += ", reprojected to EPSG:4326"
    return gdf, note


def read_region_polygons(
    path: str | os.PathLike[str],
    column: str,
    land_only: bool = True,
    overlap_tolerance: float = 1e-3,
) -> gpd.GeoDataFrame:
    """The regions of a vector file as validated polygons in EPSG:4326, one row per region.

    Parameters
    ----------
    path
        GeoJSON, ESRI shapefile (or a zip of one), GeoPackage, or anything else
        :func:`geopandas.read_file` reads.
    column
        Attribute column that tells the regions apart: names (text), or integer ids (> 0).
        Rows sharing a value are one region (their polygons are merged).
    land_only
        For TransCom-3 ids (integer column, "transcom" in the file or column name), keep the
        land regions 1-11.
    overlap_tolerance
        Two regions whose polygons share more than this fraction of the smaller one's area
        (in the longitude-latitude plane) are refused; smaller slivers from digitising are
        accepted.

    Returns
    -------
    geopandas.GeoDataFrame
        Index ``region_id`` (int, ascending); columns ``name`` and ``geometry`` (Polygon or
        MultiPolygon); attrs ``source``, ``column``, ``crs`` (what the file said and what was
        done), ``repaired`` (invalid polygons fixed).

    Raises
    ------
    InputError
        Naming the file: unreadable, missing column (listing the columns), no geometries,
        non-polygon geometries, a projected file without CRS, missing names, overlapping
        regions.
    """
    import geopandas as gpd
    import shapely

    path = Path(path)
    if not path.is_file():
        raise InputError("region vector file not found", path=path)
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio/fiona raise their own error types; report them all
        msg = " ".join(str(exc).split())
        raise InputError(f"cannot read as a vector file ({type(exc).__name__}: {msg})",
                         path=path, expected="GeoJSON, shapefile or GeoPackage") from None
    geoms = gdf.geometry
    present = ~(geoms.isna() | geoms.is_empty)
    if not present.any():
        raise InputError(f"no geometries ({len(gdf)} features)", path=path,
                         variable="geometry", expected="polygons of the regions")
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    if column not in columns:
        raise InputError(f"no column {column!r}; the file has {columns}", path=path,
                         variable=column, expected="a column naming or numbering the regions")
    if not present.all():
        log.warning("%s: %d feature(s) without geometry ignored", path, int((~present).sum()))
        gdf = gdf[present]
    kinds = gdf.geometry.geom_type
    bad = ~kinds.isin(["Polygon", "MultiPolygon"])
    if bad.any():
        first = [str(v) for v in gdf.loc[bad, column].head(3)]
        raise InputError(f"{int(bad.sum())} non-polygon geometries "
                         f"({', '.join(sorted(set(kinds[bad])))}; e.g. {column} = {first})",
                         path=path, variable="geometry", expected="Polygon or MultiPolygon")
    gdf, crs_note = _geographic(gdf, path)
    _, miny, _, maxy = gdf.total_bounds
    if miny < -90 - 1e-9 or maxy > 90 + 1e-9:
        raise InputError(f"latitudes {miny:.4g}..{maxy:.4g} beyond ±90", path=path,
                         variable="geometry", expected="longitude/latitude degrees")
    values = gdf[column]
    if values.isna().any():
        raise InputError(f"{int(values.isna().sum())} feature(s) without a value", path=path,
                         variable=column, expected="a name or id for every polygon")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        numbers = values.to_numpy(dtype=float)
        if not np.all(np.mod(numbers, 1) == 0) or numbers.min() < 1 or numbers.max() > 32767:
            raise InputError(f"numeric values {sorted(set(numbers))[:5]} are not region ids",
                             path=path, variable=column,
                             expected="integers 1..32767 (or a text column of names)")
        ids = numbers.astype(int)
        if "transcom" in f"{path.name} {column}".lower():
            names = {**TRANSCOM_NAMES, **{i: f"TransCom ocean {i}" for i in range(12, 23)}}
            if land_only:
                keep = ids <= 11
                gdf, ids = gdf[keep], ids[keep]
        else:
            names = {}
        names = {int(i): names.get(int(i), f"region {int(i)}") for i in ids}
    else:
        labels = values.astype(str).str.strip()
        if (labels == "").any():
            raise InputError("empty region name(s)", path=path, variable=column,
                             expected="a name for every polygon")
        order = list(dict.fromkeys(labels))  # first appearance in the file
        lookup = {name: k + 1 for k, name in enumerate(order)}
        ids = labels.map(lookup).to_numpy(dtype=int)
        names = {k + 1: name for k, name in enumerate(order)}
    geometry = gdf.geometry.to_numpy()
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        log.warning("%s: %d invalid polygon(s) repaired (shapely.make_valid)", path,
                    int(invalid.sum()))
        geometry = geometry.copy()
        for k in np.flatnonzero(invalid):  # keep the polygonal parts of the repaired shape
            parts = shapely.get_parts(shapely.make_valid(geometry[k]))
            geometry[k] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
    out_ids = np.array(sorted(set(ids.tolist())), dtype=int)
    merged = [shapely.union_all(geometry[ids == i]) for i in out_ids]
    result = gpd.GeoDataFrame({"name": [names[int(i)] for i in out_ids]},
                              geometry=merged, crs=4326,
                              index=pd.Index(out_ids, name="region_id"))
    _check_overlaps(result, path, overlap_tolerance)
    result.attrs.update(source=str(path), column=column, crs=crs_note,
                        repaired=int(invalid.sum()))
    return result


def _check_overlaps(regions: gpd.GeoDataFrame, path: Path, tolerance: float) -> None:
    import shapely

    geoms = regions.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    pairs = tree.query(geoms, predicate="intersects")
    clashes = []
    for i, j in pairs.T:
        if i >= j:
            continue
        shared = shapely.intersection(geoms[i], geoms[j]).area
        smaller = min(geoms[i].area, geoms[j].area)
        if smaller > 0 and shared > tolerance * smaller:
            clashes.append(f"{regions['name'].iloc[i]} / {regions['name'].iloc[j]} "
                           f"({100 * shared / smaller:.1f}% of the smaller)")
    if clashes:
        raise InputError(f"overlapping regions: {'; '.join(clashes[:5])}"
                         + (f" and {len(clashes) - 5} more pairs" if len(clashes) > 5 else ""),
                         path=path, variable="geometry",
                         expected="regions that do not overlap (each cell area counted once)")


def polygon_fractions(regions: gpd.GeoDataFrame, lat: np.ndarray, lon: np.ndarray
                      ) -> np.ndarray:
    """Share of each cell's area inside each region's polygons.

    :meth:`regionmask.Regions.mask_3D_frac_approx` (10 × 10 sample points per cell, so
    multiples of 0.01, exact for edges on tenths of a cell), one region at a time on the rows of
    the grid its polygons reach, so memory stays small for many regions on fine grids.

    Parameters
    ----------
    regions
        As :func:`read_region_polygons` returns them (EPSG:4326).
    lat, lon
        Regular cell-centre coordinates [degree] (any order; longitudes either convention).

    Returns
    -------
    numpy.ndarray
        (region, lat, lon) float32 [1], regions in the order of ``regions``.
    """
    import regionmask

    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    step = resolution_of(lat, "lat")
    resolution_of(lon, "lon")
    out = np.zeros((len(regions), lat.size, lon.size), dtype=np.float32)
    for k, geom in enumerate(regions.geometry):
        _, south, _, north = geom.bounds
        rows = np.flatnonzero((lat + step / 2 > south) & (lat - step / 2 < north))
        if rows.size == 0:
            continue
        first, last = max(rows.min() - 1, 0), min(rows.max() + 1, lat.size - 1)
        window = slice(first, last + 1)
        one = regionmask.Regions([geom], numbers=[0], names=["r"], abbrevs=["r"],
                                 overlap=False)
        with warnings.catch_warnings():  # "no gridpoint", affine's deprecation of `*`
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            frac = one.mask_3D_frac_approx(lon, lat[window], drop=False)
        out[k, window] = frac.transpose("region", "lat", "lon").values[0]
    return out


def read_region_vector(
    path: str | os.PathLike[str],
    column: str,
    grid: xr.Dataset | None = None,
    resolution_deg: float = 0.5,
    land_only: bool = True,
    fractions: bool = True,
    overlap_tolerance: float = 1e-3,
) -> xr.Dataset:
    """Region polygons of a vector file rasterised onto the model grid.

    Each cell gets the share of its area inside each region (fractional overlap,
    :func:`polygon_fractions`). The integer mask ``region`` gives a cell to the region covering
    most of it, as :func:`regrid_mask` does from a finer mask: cells no polygon touches, and with
    ``land_only`` cells without land, are 0. Regional totals from the mask weight each cell by
    ``cell_area × land_fraction``; ``region_fraction × cell_area`` gives the polygons' own areas.

    Parameters
    ----------
    path
        GeoJSON, shapefile (or a zip of one) or GeoPackage with the regions' polygons. Files
        without a CRS are taken as longitude/latitude degrees (EPSG:4326) when their coordinates
        fit; other CRSs are reprojected to EPSG:4326.
    column
        Attribute column naming (text) or numbering (integers > 0) the regions; rows sharing a
        value form one region. Names are numbered 1, 2, ... in order of first appearance.
    grid
        Model grid (a dataset with regular ``lat``/``lon`` and optionally ``land_fraction``);
        by default the global grid of ``resolution_deg``.
    resolution_deg
        Grid spacing [degree] when ``grid`` is not given.
    land_only
        Cells without land belong to no region; TransCom-3 ocean regions (12-22) are dropped.
    fractions
        Keep ``region_fraction`` (region_id, lat, lon) [1] in the result.
    overlap_tolerance
        See :func:`read_region_polygons`.

    Returns
    -------
    xr.Dataset
        Canonical regions dataset (``region``, ``cell_area``, ``land_fraction``) plus
        ``region_fraction``; attrs ``source``, ``region_set`` (file stem), ``region_column``,
        ``crs``, ``regrid_method``.

    Raises
    ------
    InputError
        Naming the file: see :func:`read_region_polygons`; also a region with no cell on the
        grid (too small for it, or without land).
    """
    regions = read_region_polygons(path, column, land_only=land_only,
                                   overlap_tolerance=overlap_tolerance)
    path = Path(path)
    if grid is None:
        grid = make_grid(resolution_deg)
    lat, lon = grid["lat"].values.astype(float), grid["lon"].values.astype(float)
    frac = polygon_fractions(regions, lat, lon)
    ids = regions.index.to_numpy(dtype=int)
    names = dict(zip(ids.tolist(), regions["name"], strict=True))
    land = grid["land_fraction"] if "land_fraction" in grid else land_fraction(lat, lon)
    land = np.asarray(land, dtype=float)
    covered = frac.max(axis=0) > 0
    if land_only:
        covered &= land > 0
    values = np.where(covered, ids[frac.argmax(axis=0)], 0)
    lost = [names[i] for i in ids if not np.any(values == i)]
    if lost:
        raise InputError(f"region(s) {lost} have no cell on the grid (of "
                         f"{resolution_of(lat, 'lat'):g} degrees"
                         + (", with land" if land_only else "") + ")", path=path,
                         variable=column, expected="regions larger than a cell, over land")
    out = region_dataset(values, names, lat, lon, land=xr.DataArray(
        land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="land_fraction",
        attrs={"units": "1", "standard_name": "land_area_fraction"}), region_set=path.stem)
    if fractions:
        out["region_fraction"] = (("region_id", "lat", "lon"), frac, {
            "units": "1", "long_name": "fraction of the cell's area inside the region's polygons",
            "comment": f"{FRACTION_SAMPLES} x {FRACTION_SAMPLES} sample points per cell"})
        out = out.assign_coords(region_id=("region_id", ids),
                                region_name=("region_id", [names[i] for i in ids]))
    out.attrs.update(source=str(path), region_column=column, crs=regions.attrs["crs"],
                     regrid_method="fractional overlap (regionmask mask_3D_frac_approx, "
                     f"{FRACTION_SAMPLES}x{FRACTION_SAMPLES} samples per cell); region = "
                     "largest overlap" + (", land cells only" if land_only else ""))
    if regions.attrs["repaired"]:
        out.attrs["repaired_polygons"] = regions.attrs["repaired"]
    return out
