"""Cell areas, land fraction and longitude conventions against known answers."""

import numpy as np
import pytest
import xarray as xr

from fluxbridge.constants import EARTH_RADIUS_M, UMOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.grid import (
    cell_area,
    check_same_grid,
    land_fraction,
    majority_to_grid,
    make_grid,
    normalise_longitude,
    sw_in_pot_daily,
    to_canonical_grid,
)


@pytest.mark.parametrize("res", [10.0, 2.0, 0.5])
def test_cell_areas_sum_to_the_sphere(res):
    g = make_grid(res)
    total = float(cell_area(g.lat, g.lon).sum())
    assert total == pytest.approx(4 * np.pi * EARTH_RADIUS_M**2, rel=1e-9)


def test_equatorial_one_degree_cell_matches_formats_md():
    g = make_grid(1.0)
    a = cell_area(g.lat, g.lon).sel(lat=0.5, lon=0.5)
    assert float(a) == pytest.approx(1.23637e10, rel=1e-4)


def test_grid_convention_and_bounds():
    g = make_grid(2.0)
    assert np.all(np.diff(g.lat) < 0) and np.all(np.diff(g.lon) > 0)
    assert g.lon.min() >= -180 and g.lon.max() < 180
    assert np.allclose(g.lat_bnds[:, 0] - g.lat_bnds[:, 1], 2.0)


def test_bad_resolution_is_refused():
    with pytest.raises(InputError, match="divide 180"):
        make_grid(7.0)


def test_land_fraction_bounds_and_known_places():
    g = make_grid(5.0)
    lf = land_fraction(g.lat, g.lon)
    assert float(lf.min()) >= 0 and float(lf.max()) <= 1
    assert float(lf.sel(lat=-2.5, lon=-157.5)) == 0  # central Pacific
    assert float(lf.sel(lat=52.5, lon=92.5)) == 1  # Siberia
    area = cell_area(g.lat, g.lon)
    land_km2 = float((lf * area).sum()) / 1e6
    assert 1.40e8 < land_km2 < 1.55e8  # Earth's land area incl. Antarctica ~1.49e8 km2


def test_longitude_normalisation_and_canonical_sort():
    assert np.allclose(normalise_longitude([0, 180, 359, -190]), [0, -180, -1, 170])
    import xarray as xr

    da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("latitude", "longitude"),
                      coords={"latitude": [-10.0, 0.0, 10.0], "longitude": [0.0, 90, 180, 270]})
    out = to_canonical_grid(da, lat="latitude", lon="longitude")
    assert list(out.lat.values) == [10.0, 0.0, -10.0]
    assert list(out.lon.values) == [-180.0, -90.0, 0.0, 90.0]
    # the value at (10N, 270E) is kept at (10N, -90E)
    assert float(out.sel(lat=10.0, lon=-90.0)) == float(da.sel(latitude=10.0, longitude=270.0))


def test_grid_mismatch_names_the_coordinate():
    a, b = make_grid(2.0), make_grid(4.0)
    with pytest.raises(GridMismatchError, match="lat"):
        check_same_grid(a, b, path="mask.nc")


def test_potential_radiation_properties():
    # Polar night is dark, polar day at the solstice exceeds the equator.
    assert sw_in_pot_daily(80.0, 355) == pytest.approx(0.0, abs=1e-9)
    assert sw_in_pot_daily(80.0, 172) > sw_in_pot_daily(0.0, 172)
    # Annual mean at the equator near S0/pi (about 416-433 W m-2).
    mean = np.mean(sw_in_pot_daily(np.zeros(365), np.arange(1, 366)))
    assert 400 < mean < 440


def test_oneflux_conversion_factor():
    assert UMOL_M2_S_TO_GC_M2_D == pytest.approx(1.03772448, rel=1e-8)


def test_majority_to_grid_counts_the_finer_cells():
    fine = make_grid(1.0).sel(lat=slice(10, -10), lon=slice(-10, 10))  # 20 x 20 cells
    codes = np.full((fine.sizes["lat"], fine.sizes["lon"]), 255, dtype=np.int64)  # fill
    codes[:5, :5] = 3  # target cell (7.5, -7.5): all class 3
    codes[:5, 5:10] = 1
    codes[:2, 5:10] = 2  # target (7.5, -2.5): 15 of class 1 against 10 of class 2
    codes[:5, 10:15] = np.where(np.arange(5)[None, :] % 2 == 0, 4, 5)  # 15 of 4, 10 of 5
    codes[5:10, :5] = np.repeat([[6], [7]], [3, 2], axis=0)  # 15 of 6, 10 of 7
    codes[5:10, 5:10] = np.repeat([[8], [9]], [2, 3], axis=0)  # 10 of 8, 15 of 9
    codes[10:15, :5] = np.arange(25).reshape(5, 5) % 2 + 10  # 13 of 10, 12 of 11
    codes[15:, 15:] = [[12, 13, 255, 255, 255]] * 5  # a tie: the lower class
    da = xr.DataArray(codes, dims=("lat", "lon"),
                      coords={"lat": fine["lat"].values, "lon": fine["lon"].values})
    target = make_grid(5.0).sel(lat=slice(10, -10), lon=slice(-10, 10))
    out = majority_to_grid(da, target, n_classes=17)
    expected = np.array([[3, 1, 4, 0], [6, 9, 0, 0], [10, 0, 0, 0], [0, 0, 0, 12]])
    np.testing.assert_array_equal(out.values, expected)
    np.testing.assert_array_equal(out["lat"].values, target["lat"].values)
    shifted = da.assign_coords(lon=da["lon"].values % 360)  # 0..360 longitudes, same cells
    np.testing.assert_array_equal(majority_to_grid(shifted, target, 17).values, expected)


def test_majority_with_a_background_class_keeps_coastal_land():
    fine = make_grid(1.0).sel(lat=slice(10, 0), lon=slice(0, 10))  # 10 x 10 cells
    codes = np.zeros((10, 10), dtype=np.int64)  # water (0) everywhere...
    codes[:2, :2] = 4  # ...but 4 cells of class 4 in the target cell (7.5, 2.5)
    codes[:1, 2:5] = 2  # and 3 of class 2 in the same cell
    da = xr.DataArray(codes, dims=("lat", "lon"),
                      coords={"lat": fine["lat"].values, "lon": fine["lon"].values})
    target = make_grid(5.0).sel(lat=slice(10, 0), lon=slice(0, 10))
    np.testing.assert_array_equal(majority_to_grid(da, target, 17).values, [[0, 0], [0, 0]])
    np.testing.assert_array_equal(majority_to_grid(da, target, 17, background=0).values,
                                  [[4, 0], [0, 0]])
