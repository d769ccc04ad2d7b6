"""Region polygons from vector files (GeoJSON, shapefile, GeoPackage), rasterised onto a grid.

:func:`read_region_polygons` validates the polygons; :func:`read_region_vector` rasterises them
onto the model grid by fractional overlap and returns the canonical regions dataset of
:mod:`fluxbridge.regions`, keeping that fraction (``region_fraction``, (region_id, lat, lon) [1]).
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
from fluxbridge.grid import land_fraction, make_grid, resolution_of
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

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
    gdf = _polygon_features(path, column)
    gdf, crs_note = _geographic(gdf, path)
    _, miny, _, maxy = gdf.total_bounds
    if miny < -90 - 1e-9 or maxy > 90 + 1e-9:
        raise InputError(f"latitudes {miny:.4g}..{maxy:.4g} beyond ±90", path=path,
                         variable="geometry", expected="longitude/latitude degrees")
    gdf, ids, names = _region_ids(gdf, path, column, land_only)
    geometry, n_repaired = _repaired(gdf.geometry.to_numpy(), path)
    out_ids = np.array(sorted(set(ids.tolist())), dtype=int)
    merged = [shapely.union_all(geometry[ids == i]) for i in out_ids]
    result = gpd.GeoDataFrame({"name": [names[int(i)] for i in out_ids]},
                              geometry=merged, crs=4326,
                              index=pd.Index(out_ids, name="region_id"))
    _check_overlaps(result, path, overlap_tolerance)
    result.attrs.update(source=str(path), column=column, crs=crs_note, repaired=n_repaired)
    return result


def _polygon_features(path: Path, column: str) -> gpd.GeoDataFrame:
    """The features of a vector file that have a geometry, all polygons, with ``column``."""
    import geopandas as gpd

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
    return gdf


def _region_ids(gdf: gpd.GeoDataFrame, path: Path, column: str, land_only: bool
                ) -> tuple[gpd.GeoDataFrame, np.ndarray, dict[int, str]]:
    """Each feature's region id, and id → name: integer ids as they are, names numbered in
    order of first appearance."""
    values = gdf[column]
    if values.isna().any():
        raise InputError(f"{int(values.isna().sum())} feature(s) without a value", path=path,
                         variable=column, expected="a name or id for every polygon")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        if not np.all(np.mod(numbers, 1) == 0) or numbers.min() < 1 or numbers.max() > 32767:
            raise InputError(f"numeric values {sorted(set(numbers))[:5]} are not region ids",
                             path=path, variable=column,
                             expected="integers 1..32767 (or a text column of names)")
        ids = numbers.astype(int)
        known: dict[int, str] = {}
        if "transcom" in f"{path.name} {column}".lower():
            known = {**TRANSCOM_NAMES, **{i: f"TransCom ocean {i}" for i in range(12, 23)}}
            if land_only:
                keep = ids <= 11
                gdf, ids = gdf[keep], ids[keep]
        return gdf, ids, {int(i): known.get(int(i), f"region {int(i)}") for i in ids}
    labels = values.astype(str).str.strip()
    if (labels == "").any():
        raise InputError("empty region name(s)", path=path, variable=column,
                         expected="a name for every polygon")
    order = list(dict.fromkeys(labels))  # first appearance in the file
    lookup = {name: k + 1 for k, name in enumerate(order)}
    return gdf, labels.map(lookup).to_numpy(dtype=int), {k + 1: n for k, n in enumerate(order)}


def _repaired(geometry: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """Polygons with the invalid ones repaired (their polygonal parts kept), and their count."""
    import shapely

    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        log.warning("%s: %d invalid polygon(s) repaired (shapely.make_valid)", path,
                    int(invalid.sum()))
        geometry = geometry.copy()
        for k in np.flatnonzero(invalid):
            parts = shapely.get_parts(shapely.make_valid(geometry[k]))
            geometry[k] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
    return geometry, int(invalid.sum())


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
