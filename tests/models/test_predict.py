"""The grid predictor with stand-in models whose NEE is known in closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.grid import sw_in_pot_daily
from fluxbridge.models.predict import predict_grid


class _Linear:
    """NEE = a × first feature + b × second feature."""

    def __init__(self, a: float, b: float = 0.0, features=("ta", "ndvi")) -> None:
        self.a, self.b, self.feature_names = a, b, list(features)

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        return (self.a * X[:, 0] + self.b * X[:, 1]).astype(np.float32)


class _Offset:
    """NEE = 100 × region + day of year: what a grid offset sees of each cell."""

    feature_names = ("ta",)
    has_grid_offset = True

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        return (100 * region + dayofyear).astype(np.float32)


@pytest.fixture
def chunk() -> xr.Dataset:
    rng = np.random.default_rng(0)
    time = pd.date_range("2020-06-01", periods=3, freq="D")
    lat, lon = np.array([40.0, 0.0, -40.0]), np.array([-60.0, 60.0])
    shape = (time.size, lat.size, lon.size)
    ds = xr.Dataset(coords={"time": time, "lat": lat, "lon": lon})
    ds["ta"] = (("time", "lat", "lon"), rng.normal(10, 5, shape).astype(np.float32))
    ndvi = rng.uniform(0, 1, shape).astype(np.float32)
    ndvi[1, 2, 1] = np.nan
    ds["ndvi"] = (("time", "lat", "lon"), ndvi)
    ds["land_cover"] = (("lat", "lon"), np.array([[0, 4], [10, 12], [1, 7]]))
    ds["region"] = (("lat", "lon"), np.array([[0, 1], [2, 2], [3, 0]]))
    return ds


def test_members_in_order_with_water_and_missing_values_nan(chunk):
    nee = predict_grid([_Linear(1.0), _Linear(2.0, 1.0)], chunk)
    assert nee.dims == ("member", "time", "lat", "lon") and nee.dtype == np.float32
    assert nee.attrs["units"] == "g m-2 d-1"
    ta, ndvi = chunk["ta"].values, chunk["ndvi"].values
    land = (chunk["land_cover"].values > 0)[None] & np.isfinite(ndvi)
    np.testing.assert_allclose(nee.values[0][land], ta[land], rtol=1e-6)
    np.testing.assert_allclose(nee.values[1][land], (2 * ta + ndvi)[land], rtol=1e-6)
    assert np.isnan(nee.values[:, :, 0, 0]).all()  # water
    assert np.isnan(nee.values[:, 1, 2, 1]).all()  # a missing feature


def test_one_model_is_one_member(chunk):
    nee = predict_grid(_Linear(3.0), chunk)
    assert nee.sizes["member"] == 1
    np.testing.assert_allclose(nee.values[0, 0, 1, 0], 3 * chunk["ta"].values[0, 1, 0],
                               rtol=1e-6)


def test_grid_offset_models_see_region_and_day_of_year(chunk):
    nee = predict_grid(_Offset(), chunk).values[0]
    doy = pd.DatetimeIndex(chunk["time"].values).day_of_year.to_numpy()
    expected = 100 * chunk["region"].values[None] + doy[:, None, None]
    land = chunk["land_cover"].values > 0
    np.testing.assert_array_equal(nee[:, land], expected[:, land])


def test_potential_radiation_computed_when_absent(chunk):
    nee = predict_grid(_Linear(1.0, features=("sw_in_pot", "ta")), chunk).values[0]
    doy = pd.DatetimeIndex(chunk["time"].values).day_of_year.to_numpy()
    lat = chunk["lat"].values
    expected = sw_in_pot_daily(lat[None, :], doy[:, None].astype(float))
    np.testing.assert_allclose(nee[:, 1, 1], expected[:, 1], rtol=1e-6)
    np.testing.assert_allclose(nee[:, 2, 0], expected[:, 2], rtol=1e-6)
