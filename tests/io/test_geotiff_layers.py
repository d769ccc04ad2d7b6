"""GeoTIFF layers aggregated by area: known answers on crafted rasters, then the real layers."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area, make_grid
from fluxbridge.io import geotiff_layers
from fluxbridge.io.area_weights import regrid_mean
from fluxbridge.io.geotiff_layers import (
    KOPPEN_GEIGER,
    read_class_fractions,
    read_layer_mean,
)
from fluxbridge.vocabulary import IGBP_CODE

GRIDS = "grids"


def write_tiff(path, values: np.ndarray, res: float, nodata: float | None = None,
               west: float = -180.0, north: float = 90.0, crs: str = "EPSG:4326"):
    """A single-band GeoTIFF with its first row at ``north`` and first column at ``west``."""
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0],
                       width=values.shape[1], count=1, dtype=values.dtype, crs=crs,
                       transform=from_origin(west, north, res, res), nodata=nodata) as dst:
        dst.write(values, 1)
    return path


def blocks(codes: np.ndarray, size: int) -> np.ndarray:
    """Each value of ``codes`` repeated as a size x size block."""
    return np.kron(codes, np.ones((size, size), dtype=codes.dtype))


@pytest.fixture
def small_strips(monkeypatch):
    """Read crafted rasters a few rows at a time, as a global raster is."""
    monkeypatch.setattr(geotiff_layers, "STRIP_PIXELS", 1000)


def test_constant_blocks_aggregate_to_their_constants(tmp_path, small_strips):
    # 10° cells made of 1° pixels, one code per cell; fill (255) over the last row of cells
    grid = make_grid(10.0)
    codes = (np.arange(18 * 36).reshape(18, 36) % 17).astype(np.uint8)
    codes[-1] = 255
    path = write_tiff(tmp_path / "lc.tif", blocks(codes, 10), 1.0, nodata=255)
    ds = read_class_fractions(path, grid)
    expected_major = np.where(codes == 255, 0, codes)
    np.testing.assert_array_equal(ds["land_cover"].values, expected_major)
    frac = ds["land_cover_fraction"].values
    # exactly one class covers each cell; the fill row counts as nothing
    np.testing.assert_allclose(frac.max(axis=0)[:-1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(frac.sum(axis=0)[-1], 0.0, atol=1e-12)
    land = (codes >= 1) & (codes <= 16)
    np.testing.assert_allclose(ds["land_fraction"].values, land.astype(float), atol=1e-6)
    assert list(ds["class"].values[:3]) == ["WAT", "ENF", "EBF"]


def test_mixed_cell_shares_are_areas_on_the_sphere(tmp_path, small_strips):
    # one 10° cell, 0-10N: the northern half (5-10N) forest, the southern half water
    pixels = np.zeros((180, 360), dtype=np.uint8)
    pixels[80:85, 180:190] = IGBP_CODE["EBF"]
    path = write_tiff(tmp_path / "lc.tif", pixels, 1.0)
    ds = read_class_fractions(path, make_grid(10.0)).sel(lat=5.0, lon=5.0)
    north = np.sin(np.deg2rad(10)) - np.sin(np.deg2rad(5))
    share = north / np.sin(np.deg2rad(10))  # < 1/2: cells shrink toward the pole
    assert float(ds["land_cover_fraction"].sel(**{"class": "EBF"})) == pytest.approx(share)
    assert float(ds["land_fraction"]) == pytest.approx(share)
    assert float(ds["land_cover_fraction"].sum("class")) == pytest.approx(1.0)
    assert int(ds["land_cover"]) == 0  # water covers more of the cell than the forest


def test_majority_where_a_class_dominates_and_fractions_sum_to_land(tmp_path, small_strips):
    # 2° cells of 0.5° pixels (4 x 4): in one cell 9 GRA, 5 CRO, 2 water
    rng = np.random.default_rng(3)
    cell = np.array([IGBP_CODE["GRA"]] * 9 + [IGBP_CODE["CRO"]] * 5 + [0, 0], dtype=np.uint8)
    pixels = np.zeros((360, 720), dtype=np.uint8)
    pixels[176:180, 360:364] = rng.permutation(cell).reshape(4, 4)  # the cell at 1N, 1E
    ds = read_class_fractions(write_tiff(tmp_path / "lc.tif", pixels, 0.5),
                              make_grid(2.0)).sel(lat=1.0, lon=1.0)
    assert int(ds["land_cover"]) == IGBP_CODE["GRA"]
    land = ds["land_cover_fraction"].where(ds["code"] > 0).sum("class")
    assert float(land) == pytest.approx(float(ds["land_fraction"]))
    assert float(ds["land_fraction"]) == pytest.approx(14 / 16, rel=1e-3)  # near equator


def test_grids_that_do_not_nest_and_the_date_line(tmp_path, small_strips):
    # 1° C4 percentages, 100 west of 0° and 0 east; on a 2.5° grid lon 0..357.5 (cells
    # centred on 0° straddle it, the cell on 180° straddles the date line)
    values = np.zeros((180, 360), dtype=np.float32)
    values[:, :180] = 100.0
    path = write_tiff(tmp_path / "c4.tif", values, 1.0, nodata=-99.0)
    lat = np.arange(88.75, -90, -2.5)
    grid = xr.Dataset(coords={"lat": lat, "lon": np.arange(0.0, 360.0, 2.5)})
    ds = read_layer_mean(path, grid, "c4_fraction", scale=0.01)
    c4 = ds["c4_fraction"]
    assert c4.attrs["units"] == "1"
    np.testing.assert_allclose(c4.sel(lon=0.0), 0.5, rtol=1e-6)  # half west, half east
    np.testing.assert_allclose(c4.sel(lon=180.0), 0.5, rtol=1e-6)
    np.testing.assert_allclose(c4.sel(lon=90.0), 0.0, atol=1e-7)
    np.testing.assert_allclose(c4.sel(lon=270.0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ds["c4_fraction_coverage"], 1.0, rtol=1e-6)


def test_area_mean_leaves_nodata_out_and_reports_coverage(tmp_path, small_strips):
    values = np.full((18, 36), -3000.0, dtype=np.float32)  # 10° pixels, nodata
    values[8, 18] = 0.8  # 0-10N, 0-10E
    values[8, 19] = np.nan  # NaN counts as missing too
    path = write_tiff(tmp_path / "ndvi.tif", values, 10.0, nodata=-3000.0)
    ds = read_layer_mean(path, make_grid(20.0), "ndvi_max")
    cell = ds.sel(lat=0.0, lon=10.0)  # 10S-10N, 0-20E holds the one valid pixel
    assert float(cell["ndvi_max"]) == pytest.approx(0.8, rel=1e-6)
    assert float(cell["ndvi_max_coverage"]) == pytest.approx(0.25)  # its north-east quarter
    assert int(ds["ndvi_max"].notnull().sum()) == 1


def test_projected_raster_is_refused(tmp_path):
    path = write_tiff(tmp_path / "utm.tif", np.zeros((4, 4), np.uint8), 1000.0, west=500000,
                      north=5e6, crs="EPSG:32633")
    with pytest.raises(InputError, match="longitude/latitude"):
        read_class_fractions(path, make_grid(10.0))


def test_regrid_mean_conserves_the_area_integral():
    rng = np.random.default_rng(0)
    src = make_grid(2.5)
    da = xr.DataArray(rng.random((2, src.sizes["lat"], src.sizes["lon"])),
                      dims=("month", "lat", "lon"),
                      coords={"month": [1, 2], "lat": src["lat"], "lon": src["lon"]})
    out = regrid_mean(da, make_grid(2.0))
    area_src = cell_area(src["lat"], src["lon"])
    area_out = cell_area(out["lat"], out["lon"])
    # exact spherical overlaps conserve the area integral of every field
    np.testing.assert_allclose((out * area_out).sum(("lat", "lon")),
                               (da * area_src).sum(("lat", "lon")), rtol=1e-9)


# --- the real files ---------------------------------------------------------------------

@pytest.mark.slow
def test_real_land_cover_fractions_on_two_degrees(real_data):
    path = real_data / GRIDS / "land_cover/MCD12C1.A2019001.006.2020220162300.tif"
    ds = read_class_fractions(path, make_grid(2.0))
    total = ds["land_cover_fraction"].sum("class")
    np.testing.assert_allclose(total, 1.0, atol=1e-5)  # MCD12C1 has no fill pixel
    land = ds["land_cover_fraction"].where(ds["code"] > 0).sum("class")
    np.testing.assert_allclose(land, ds["land_fraction"], atol=1e-6)
    assert int(ds["land_cover"].sel(lat=-3.0, lon=-61.0)) == IGBP_CODE["EBF"]  # Amazon
    assert int(ds["land_cover"].sel(lat=23.0, lon=11.0)) == IGBP_CODE["BSV"]  # Sahara
    assert float(ds["land_fraction"].sel(lat=-1.0, lon=-29.0)) == 0.0  # Atlantic
    # land is 29 % of the Earth's surface (MODIS counts Antarctica and inland water apart)
    weights = np.cos(np.deg2rad(ds["lat"]))
    assert 0.25 < float(ds["land_fraction"].weighted(weights).mean()) < 0.31


@pytest.mark.slow
def test_real_koppen_zones_on_two_degrees(real_data):
    path = real_data / GRIDS / "climate_zones/KG_simplified_uint8.tif"
    ds = read_class_fractions(path, make_grid(2.0), KOPPEN_GEIGER)
    assert list(ds["class"].values) == ["A", "B", "C", "D", "E"]
    np.testing.assert_allclose(ds["climate_zone_fraction"].sum("class"), ds["land_fraction"],
                               atol=1e-6)
    assert int(ds["climate_zone"].sel(lat=-3.0, lon=-61.0)) == 1  # Amazon: tropical
    assert int(ds["climate_zone"].sel(lat=23.0, lon=11.0)) == 2  # Sahara: arid
    assert int(ds["climate_zone"].sel(lat=-79.0, lon=1.0)) == 5  # Antarctica: polar
    assert int(ds["climate_zone"].sel(lat=-1.0, lon=-29.0)) == 0  # Atlantic: none


def test_real_vegetation_means(real_data):
    veg = real_data / GRIDS / "vegetation"
    grid = make_grid(2.0)
    ndvi = read_layer_mean(veg / "NDVI_maximum.tif", grid, "ndvi_max")
    assert float(ndvi["ndvi_max"].sel(lat=-3.0, lon=-61.0)) > 0.8  # Amazon
    assert float(ndvi["ndvi_max"].sel(lat=23.0, lon=11.0)) < 0.15  # Sahara
    assert np.isnan(float(ndvi["ndvi_max"].sel(lat=-1.0, lon=-29.0)))  # ocean: no pixel
    c4 = read_layer_mean(veg / "C4_fraction.tif", grid, "c4_fraction", scale=0.01)
    assert float(c4["c4_fraction"].max()) <= 1.0 and float(c4["c4_fraction"].min()) >= 0.0
    # 1° nests in 2°: each cell is the area mean of its four pixels
    with rasterio.open(veg / "C4_fraction.tif") as src:
        pixels = src.read(1)[88:90, 120:122]  # 0-2N, 60-58W
    weights = np.diff(np.sin(np.deg2rad([2.0, 1.0, 0.0])))[:, None] * np.ones((1, 2))
    expected = 0.01 * float((pixels * weights).sum() / weights.sum())
    assert float(c4["c4_fraction"].sel(lat=1.0, lon=-59.0)) == pytest.approx(expected, rel=1e-5)
