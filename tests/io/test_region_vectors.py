"""Regions from vector files (GeoJSON, shapefile, GeoPackage) rasterised by fractional overlap."""

from __future__ import annotations

import json
import zipfile

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from fluxbridge.cli import main
from fluxbridge.constants import EARTH_RADIUS_M
from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, land_fraction, make_grid
from fluxbridge.io.inspect import inspect_file
from fluxbridge.io.region_vectors import read_region_polygons, read_region_vector
from fluxbridge.operators.operator import region_weights
from fluxbridge.regions import builtin_regions, region_names
from fluxbridge.schema import check_regions

# shapefiles written without a CRS on purpose
pytestmark = pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")


def box_area(west: float, south: float, east: float, north: float) -> float:
    """Spherical area [m2] of a longitude-latitude rectangle."""
    return EARTH_RADIUS_M**2 * np.deg2rad(east - west) * (
        np.sin(np.deg2rad(north)) - np.sin(np.deg2rad(south)))


# Central Africa: every 1° cell of 15-26°E, 0-5°N is all land (checked in the fixture)
WEST = (15.0, 0.0, 20.0, 5.0)
EAST = (20.0, 0.0, 25.0, 5.0)
HALF = (25.0, 0.0, 25.5, 1.0)  # the western half of the cell centred on 25.5°E, 0.5°N


@pytest.fixture(scope="module")
def grid():
    g = make_grid(1.0)
    g["land_fraction"] = land_fraction(g["lat"].values, g["lon"].values)
    inside = g["land_fraction"].sel(lat=slice(5, 0), lon=slice(15, 26))
    assert float(inside.min()) == 1.0, "test area must be all land"
    return g


@pytest.fixture
def rectangles(tmp_path):
    path = tmp_path / "rects.geojson"
    gpd.GeoDataFrame({"name": ["West", "East", "Half cell"], "code": [4, 9, 2]},
                     geometry=[box(*WEST), box(*EAST), box(*HALF)],
                     crs="EPSG:4326").to_file(path, driver="GeoJSON")
    return path


def test_rectangles_exact_fractions_mask_and_areas(rectangles, grid):
    ds = read_region_vector(rectangles, "name", grid=grid)
    check_regions(ds)
    check_same_grid(ds, grid)
    assert region_names(ds) == {1: "West", 2: "East", 3: "Half cell"}
    assert list(ds["region"].attrs["flag_values"]) == [1, 2, 3]
    frac = ds["region_fraction"]
    assert list(frac["region_name"].values) == ["West", "East", "Half cell"]
    # aligned with the cell edges: fractions are exactly 0 or 1, the mask is the rectangle
    west = frac.sel(region_id=1)
    assert set(np.unique(west.values)) == {0.0, 1.0}
    assert int(west.sum()) == 25 and int((ds["region"] == 1).sum()) == 25
    assert bool((ds["region"].sel(lat=slice(5, 0), lon=slice(15, 20)) == 1).all())
    assert bool((ds["region"].sel(lat=slice(5, 0), lon=slice(20, 25)) == 2).all())
    # half a cell: fraction 0.5 in that cell only, which the mask gives to the region
    half = frac.sel(region_id=3)
    assert float(half.sel(lat=0.5, lon=25.5)) == 0.5
    assert float(half.sum()) == 0.5
    assert int(ds["region"].sel(lat=0.5, lon=25.5)) == 3
    # mass conservation: fraction x cell area = polygon area; mask totals = polygon area where
    # the polygons fill their cells (all land here)
    areas = (frac * ds["cell_area"]).sum(("lat", "lon")).values
    expected = [box_area(*WEST), box_area(*EAST), box_area(*HALF)]
    np.testing.assert_allclose(areas, expected, rtol=1e-6)
    weights = region_weights(ds).sum(("lat", "lon")).values
    np.testing.assert_allclose(weights[:2], expected[:2], rtol=1e-12)
    np.testing.assert_allclose(weights[2], 2 * expected[2], rtol=1e-12)  # the whole cell
    assert ds.attrs["source"] == str(rectangles)
    assert ds.attrs["region_column"] == "name"
    assert "fractional overlap" in ds.attrs["regrid_method"]


def test_integer_ids_projected_crs_reprojected(tmp_path, grid):
    # Web Mercator maps longitude-latitude rectangles to rectangles: same expected cells
    path = tmp_path / "rects.gpkg"
    gdf = gpd.GeoDataFrame({"code": [9, 4]}, geometry=[box(*EAST), box(*WEST)], crs=4326)
    gdf.to_crs(3857).to_file(path, driver="GPKG")
    ds = read_region_vector(path, "code", grid=grid)
    assert region_names(ds) == {4: "region 4", 9: "region 9"}
    assert "reprojected to EPSG:4326" in ds.attrs["crs"]
    assert int((ds["region"] == 4).sum()) == 25
    np.testing.assert_allclose(float(region_weights(ds).sel(region=9).sum()), box_area(*EAST),
                               rtol=1e-9)


def test_shapefile_without_crs_and_merged_multipart_dateline(tmp_path):
    # rows sharing a name are one region; longitudes 0..360 crossing the date line are fine
    path = tmp_path / "parts.shp"
    gpd.GeoDataFrame({"region": ["Pacific", "Pacific", "Other"]},
                     geometry=[box(170, 60, 190, 70), box(100, 60, 110, 70),
                               box(40, 60, 50, 70)]).to_file(path)
    assert not path.with_suffix(".prj").exists()
    ds = read_region_vector(path, "region", resolution_deg=2.0, land_only=False)
    assert ds.attrs["crs"].startswith("none in the file")
    assert region_names(ds) == {1: "Pacific", 2: "Other"}
    pacific = ds["region"] == 1
    assert int(pacific.sum()) == (10 + 5) * 5
    assert bool(pacific.sel(lon=-179.0, lat=65.0)) and bool(pacific.sel(lon=179.0, lat=65.0))
    assert float(ds["region_fraction"].sel(region_id=1).sum()) == pytest.approx(75.0)


def test_land_only(tmp_path, grid):
    # 10°E-10°W on the equator: the Gulf of Guinea, ocean except near the coast
    path = tmp_path / "gulf.geojson"
    gpd.GeoDataFrame({"name": ["Gulf", "Land"]}, geometry=[box(-10, -5, 8, 2), box(*WEST)],
                     crs=4326).to_file(path)
    on_land = read_region_vector(path, "name", grid=grid)
    everywhere = read_region_vector(path, "name", grid=grid, land_only=False)
    land = grid["land_fraction"].sel(lat=slice(2, -5), lon=slice(-10, 8))
    assert int((everywhere["region"] == 1).sum()) == 18 * 7
    assert int((on_land["region"] == 1).sum()) == int((land > 0).sum()) < 18 * 7
    # the fractions do not depend on land
    np.testing.assert_array_equal(on_land["region_fraction"], everywhere["region_fraction"])


def test_round_trip_of_a_builtin_mask(tmp_path):
    """Polygons made of a mask's cells give back that mask on its grid."""
    regions = builtin_regions("transcom_like", 4.0)
    names = region_names(regions)
    step = 4.0
    rows = []
    for rid, name in names.items():
        ii, jj = np.nonzero(regions["region"].values == rid)
        cells = [box(lo - step / 2, la - step / 2, lo + step / 2, la + step / 2)
                 for la, lo in zip(regions["lat"].values[ii], regions["lon"].values[jj])]
        rows.append((name, shapely.union_all(cells)))
    path = tmp_path / "transcom_like.geojson"
    gpd.GeoDataFrame({"name": [r[0] for r in rows]}, geometry=[r[1] for r in rows],
                     crs=4326).to_file(path)
    ds = read_region_vector(path, "name", grid=regions)
    back = {n: i for i, n in region_names(ds).items()}
    expected = np.vectorize(lambda i: back[names[i]] if i else 0)(regions["region"].values)
    np.testing.assert_array_equal(ds["region"].values, expected)
    np.testing.assert_allclose(region_weights(ds).sum().values,
                               region_weights(regions).sum().values, rtol=1e-12)


def _write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.geojson"
    if kind == "empty":
        path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    elif kind == "null_geometry":
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"name": "A"}, "geometry": None}]}))
    elif kind == "garbage":
        path.write_text('{"type": "FeatureCollection", "features": [')
    else:
        geoms = {"points": [Point(1, 1), box(0, 0, 1, 1)],
                 "lines": [LineString([(0, 0), (1, 1)]), box(0, 0, 1, 1)],
                 "overlap": [box(0, 0, 10, 10), box(5, 5, 15, 15)],
                 "no_name": [box(0, 0, 1, 1), box(2, 2, 3, 3)]}[kind]
        names = ["A", None] if kind == "no_name" else ["A", "B"]
        gpd.GeoDataFrame({"name": names}, geometry=geoms, crs=4326).to_file(path)
    return path


@pytest.mark.parametrize(("kind", "phrase"), [
    ("empty", "no geometries"),
    ("null_geometry", "no geometries"),
    ("garbage", "cannot read as a vector file"),
    ("points", "non-polygon geometries (Point"),
    ("lines", "LineString"),
    ("overlap", "overlapping regions: A / B (25.0% of the smaller)"),
    ("no_name", "without a value"),
])
def test_bad_vector_files(tmp_path, kind, phrase):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(InputError) as err:
        read_region_vector(path, "name", resolution_deg=2.0)
    assert str(path) in str(err.value)
    assert phrase in str(err.value)


def test_missing_column_lists_columns(rectangles):
    with pytest.raises(InputError) as err:
        read_region_polygons(rectangles, "NAME")
    msg = str(err.value)
    assert str(rectangles) in msg and "no column 'NAME'" in msg and "['name', 'code']" in msg


def test_projected_without_crs_and_too_small(tmp_path):
    path = tmp_path / "utm.shp"
    gpd.GeoDataFrame({"name": ["A"]}, geometry=[box(500_000, 5_000_000, 510_000, 5_010_000)]
                     ).to_file(path)
    with pytest.raises(InputError, match=r"no coordinate reference system .* projected"):
        read_region_vector(path, "name")
    tiny = tmp_path / "tiny.geojson"
    gpd.GeoDataFrame({"name": ["Big", "Dot"]}, geometry=[box(*WEST), box(20.01, 2.01, 20.02,
                                                                           2.02)],
                     crs=4326).to_file(tiny)
    with pytest.raises(InputError, match=r"\['Dot'\] have no cell on the grid") as err:
        read_region_vector(tiny, "name", resolution_deg=1.0)
    assert str(tiny) in str(err.value)


def test_invalid_polygon_repaired(tmp_path):
    # a bow tie (self-intersecting) over two cells: both triangles are kept
    path = tmp_path / "bowtie.geojson"
    bowtie = shapely.Polygon([(15, 0), (17, 2), (17, 0), (15, 2)])
    assert not bowtie.is_valid
    gpd.GeoDataFrame({"name": ["Tie"]}, geometry=[bowtie], crs=4326).to_file(path)
    polygons = read_region_polygons(path, "name")
    assert polygons.attrs["repaired"] == 1
    assert polygons.geometry.iloc[0].is_valid
    assert polygons.geometry.iloc[0].area == pytest.approx(2.0)


def test_slivers_below_tolerance_are_accepted(tmp_path):
    path = tmp_path / "sliver.geojson"
    gpd.GeoDataFrame({"name": ["A", "B"]}, geometry=[box(15, 0, 20.0001, 5), box(20, 0, 25, 5)],
                     crs=4326).to_file(path)
    assert len(read_region_polygons(path, "name")) == 2
    with pytest.raises(InputError, match="overlapping"):
        read_region_polygons(path, "name", overlap_tolerance=1e-6)


def test_inspect_vector_files(rectangles, tmp_path, capsys):
    report = inspect_file(rectangles)
    assert report.usable, report.reason
    assert report.format == "region polygons (GeoJSON)"
    text = report.to_text()
    assert "3 regions from column 'name'" in text and "Half cell" in text
    assert "West 25 cells" in text
    # a zipped shapefile as downloaded
    shp = tmp_path / "shp" / "rects.shp"
    shp.parent.mkdir()
    gpd.read_file(rectangles).to_file(shp)
    zipped = tmp_path / "rects.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for member in shp.parent.iterdir():
            zf.write(member, member.name)
    report = inspect_file(zipped)
    assert report.usable, report.reason
    assert report.format == "region polygons (shapefile) (zipped)"
    # a bad one: exit 2, one line naming the file
    bad = _write_bad(tmp_path, "overlap")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err and "overlapping regions" in err
