"""Estimator accuracy tables and the sparse-study helpers against exact answers."""

import numpy as np
import pandas as pd
import pytest
from method_world import make_world

from fluxbridge.evaluation.estimators import estimator_accuracy, estimator_error_table
from fluxbridge.operators import totals_frame
from fluxbridge.operators.operator import regional_totals
from fluxbridge.studies.grid_totals import grid_field, regional_series


@pytest.fixture(scope="module")
def world():
    return make_world(resolution=10.0, n_sites=20, seed=3)


def test_control_variate_is_exact_when_cache_equals_field(world):
    op, f = world.operator, world.truth.astype(np.float64)
    sigma = np.ones(op.n_obs)
    acc = estimator_accuracy(op, f, sigma, kind="control_variate", K=4, draws=5,
                             rng=np.random.default_rng(0), cache=f)
    # the cache is held in float32: exact up to its rounding (totals are ~1e2..1e4 Tg)
    assert acc["bias_sigma"] == pytest.approx(0.0, abs=1e-4)
    assert acc["std_sigma"] == pytest.approx(0.0, abs=1e-4)


def test_resampled_error_shrinks_like_one_over_root_k(world):
    op, f = world.operator, world.truth.astype(np.float64)
    sigma = np.abs(op.exact(f)) * 0.1 + 1.0
    table = estimator_error_table(op, f, f * 1.05, sigma, Ks=(4, 64), kinds=("resampled",),
                                  draws=30, seed=1)
    small, large = table.set_index("K").loc[4, "std_sigma"], table.set_index("K").loc[64,
                                                                                      "std_sigma"]
    # 16 times more draws: about 4 times smaller spread (loose bounds for 30 draws)
    assert 2.5 < small / large < 6.5
    assert (table["cells_fraction"] < 1).all()


def test_fixed_estimator_has_no_step_to_step_spread(world):
    op, f = world.operator, world.truth.astype(np.float64)
    acc = estimator_accuracy(op, f, np.ones(op.n_obs), kind="fixed", K=8, draws=10,
                             rng=np.random.default_rng(2))
    assert acc["std_sigma"] == 0.0 and acc["bias_sigma"] > 0


class _Linear:
    """Stand-in model: NEE = first feature (known field)."""

    def predict_arrays(self, X, igbp, region=None, dayofyear=None):
        return np.asarray(X[:, 0], dtype=np.float32)


def test_regional_series_equals_the_exact_regional_totals(world):
    grid = world.grid
    field = grid_field(_Linear(), grid)
    np.testing.assert_array_equal(field, grid.values[:, :, 0])
    series = regional_series(_Linear(), grid, world.regions)
    full = np.zeros((grid.times.size, world.regions.sizes["lat"], world.regions.sizes["lon"]))
    full[:, grid.lat_index, grid.lon_index] = field
    import xarray as xr

    da = xr.DataArray(full, dims=("time", "lat", "lon"),
                      coords={"time": grid.times, "lat": world.regions.lat,
                              "lon": world.regions.lon})
    reference = totals_frame(regional_totals(da, world.regions))
    merged = series.merge(reference, on=["region", "time"], suffixes=("", "_ref"))
    assert len(merged) == len(reference)
    np.testing.assert_allclose(merged["nee_tgc"], merged["nee_tgc_ref"], rtol=1e-6)
    assert isinstance(series, pd.DataFrame)
