"""Land cover: the real MCD12C1 GeoTIFF aggregated to model grids, NetCDF on the model grid."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.grid import make_grid
from fluxbridge.io.inspect import inspect_file
from fluxbridge.io.land_cover import read_land_cover
from fluxbridge.vocabulary import IGBP_CODE

MCD12C1 = "grids/land_cover/MCD12C1.A2019001.006.2020220162300.tif"


@pytest.fixture(scope="module")
def raw(real_data) -> np.ndarray:
    with rasterio.open(real_data / MCD12C1) as src:
        return src.read(1)  # 3600 x 7200, 0.05 degree, from 90N and 180W


def test_geotiff_majority_on_a_two_degree_grid(real_data, raw):
    lc = read_land_cover(real_data / MCD12C1, grid=make_grid(2.0))
    assert lc.sizes == {"lat": 90, "lon": 180} and lc.dtype == np.int64
    assert int(lc.min()) >= 0 and int(lc.max()) <= 16
    # by hand: the 40 x 40 block of the cell at 1N, 59W (rows from 90N, columns from 180W)
    block = raw[(90 - 2) * 20:90 * 20, (180 - 60) * 20:(180 - 58) * 20]
    counts = np.bincount(block[block <= 16].ravel(), minlength=17)
    assert int(lc.sel(lat=1.0, lon=-59.0)) == int(np.argmax(counts))
    assert int(lc.sel(lat=-3.0, lon=-61.0)) == IGBP_CODE["EBF"]  # central Amazon
    assert int(lc.sel(lat=23.0, lon=11.0)) == IGBP_CODE["BSV"]  # Sahara
    assert int(lc.sel(lat=-1.0, lon=-29.0)) == 0  # Atlantic
    assert "majority" in lc.attrs["aggregation"]


def test_geotiff_on_its_own_grid_keeps_every_cell(real_data, raw):
    lc = read_land_cover(real_data / MCD12C1)
    assert lc.sizes == {"lat": 3600, "lon": 7200}
    np.testing.assert_array_equal(lc.values, np.where(raw <= 16, raw, 0))
    assert float(lc["lat"][0]) == pytest.approx(89.975) and float(lc["lon"][0]) == -179.975


def test_land_cover_coarser_than_the_grid_is_refused(tmp_path):
    grid = make_grid(10.0)
    codes = xr.Dataset({"Majority_Land_Cover_Type_1": (("lat", "lon"),
                                                      np.ones((18, 36), dtype=np.uint8))},
                       coords={"lat": grid["lat"].values, "lon": grid["lon"].values})
    codes.to_netcdf(path := tmp_path / "lc.nc")
    np.testing.assert_array_equal(read_land_cover(path, grid=grid).values, 1)
    with pytest.raises(GridMismatchError) as err:
        read_land_cover(path, grid=make_grid(5.0))
    assert str(path) in str(err.value)
    codes.rename(Majority_Land_Cover_Type_1="classes").to_netcdf(other := tmp_path / "x.nc")
    with pytest.raises(InputError, match="land_cover"):
        read_land_cover(other)


def test_inspect_geotiff_land_cover(real_data):
    report = inspect_file(real_data / MCD12C1)
    assert report.usable and "GeoTIFF" in report.format, report.to_text()
