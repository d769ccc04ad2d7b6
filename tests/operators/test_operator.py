"""The operator H: its sparse rows and the same rows on xarray fields, against analytic
answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.operators.operator import (
    RegionalOperator,
    global_annual_totals,
    monthly_totals,
    region_weights,
    regional_totals,
)
from fluxbridge.regions import builtin_regions


def test_exact_equals_regional_totals(op, regions, times, field):
    full = np.zeros((times.size, *regions["region"].shape))
    full[:, op.lat_index, op.lon_index] = field
    da = xr.DataArray(full, dims=("time", "lat", "lon"),
                      coords={"time": times, "lat": regions["lat"], "lon": regions["lon"]})
    reference = regional_totals(da, regions)
    ours = op.to_dataarray(op.exact(field))
    ours, reference = xr.align(ours, reference, join="exact")
    np.testing.assert_allclose(ours.values, reference.values, rtol=1e-10)
    assert ours.attrs["units"] == "Tg month-1"


def test_constant_flux_integrates_to_area_times_days(op, regions):
    totals = op.to_dataarray(op.exact(np.full((op.n_time, op.n_cell), 2.0)))
    land = (regions["cell_area"] * regions["land_fraction"]).where(regions["region"] == 11)
    days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    expected = 2.0 * float(land.sum()) * days / 1e12
    np.testing.assert_allclose(totals.sel(region=11).values, expected, rtol=1e-10)


def test_partial_months_and_monthly_times(regions):
    t = pd.date_range("2001-01-15", "2001-04-30", freq="D")
    op = RegionalOperator(regions, t)
    months = pd.DatetimeIndex(op.obs_index["time"]).month
    assert set(months) == {2, 3, 4}
    monthly = RegionalOperator(regions, pd.date_range("2001-01-01", periods=3, freq="MS"))
    daily = RegionalOperator(regions, pd.date_range("2001-01-01", "2001-03-31", freq="D"))
    np.testing.assert_allclose(monthly.exact(np.ones((3, monthly.n_cell))),
                               daily.exact(np.ones((daily.n_time, daily.n_cell))), rtol=1e-12)


def test_match_targets_skips_months_outside_and_nan(op):
    idx = op.obs_index.drop_duplicates("region")
    t = pd.date_range("2000-11-01", "2001-02-01", freq="MS")
    mean = np.ones((len(idx), t.size))
    mean[0, 3] = np.nan
    targets = xr.Dataset(
        {"nee_mean": (("region", "time"), mean, {"units": "Tg month-1"}),
         "nee_spread": (("region", "time"), np.ones_like(mean), {"units": "Tg month-1"})},
        coords={"region": idx["region"].to_numpy(), "time": t})
    matched = op.match_targets(targets)
    times = pd.DatetimeIndex(op.obs_index["time"].to_numpy()[matched["obs"]])
    assert set(times.month) == {1, 2}
    assert len(matched) == 2 * len(idx) - 1


def test_bad_input_raises(op, regions):
    with pytest.raises(InputError, match="field"):
        op.exact(np.zeros((3, 3)))
    with pytest.raises(InputError, match="nee_spread"):
        op.match_targets(xr.Dataset({"nee_mean": (("region",), [1.0])}))
    with pytest.raises(InputError, match="time"):
        RegionalOperator(regions, pd.date_range("2001-01-01", periods=4, freq="7D"))


def _constant_field(regions, times, value):
    shape = (times.size, regions.lat.size, regions.lon.size)
    return xr.DataArray(np.full(shape, value), dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": regions.lat, "lon": regions.lon})


def test_regional_totals_of_a_constant_flux_are_flux_area_days(regions):
    times = pd.date_range("2003-01-01", "2003-03-31", freq="D")
    tot = regional_totals(_constant_field(regions, times, 2.0), regions)
    w = region_weights(regions).sum(("lat", "lon"))
    days = np.array([31, 28, 31])
    expected = 2.0 * w.values[:, None] * days[None, :] / 1e12
    np.testing.assert_allclose(tot.values, expected, rtol=1e-12)
    assert tot.attrs["units"] == "Tg month-1"


def test_monthly_means_and_daily_values_agree(regions):
    days = pd.date_range("2004-01-01", "2004-12-31", freq="D")
    rng = np.random.default_rng(0)
    daily = _constant_field(regions, days, 0.0) + rng.normal(size=(days.size, 1, 1))
    monthly = daily.resample(time="MS").mean()
    np.testing.assert_allclose(regional_totals(daily, regions).values,
                               regional_totals(monthly, regions).values, rtol=1e-9)


def test_lazy_field_gives_the_same_totals(regions):
    days = pd.date_range("2004-01-01", "2004-03-31", freq="D")
    rng = np.random.default_rng(1)
    field = _constant_field(regions, days, 0.0) + rng.normal(size=(days.size, 1, 1))
    lazy = regional_totals(field.chunk({"time": 10, "lat": 7}), regions)
    assert lazy.chunks is not None  # stays lazy until computed
    np.testing.assert_allclose(lazy.values, regional_totals(field, regions).values,
                               rtol=1e-12)


def test_monthly_totals_of_a_piece_take_the_days_they_are_given(regions):
    """A single monthly time is a day unless the record's step days are passed."""
    months = pd.date_range("2004-02-01", periods=1, freq="MS")
    area = region_weights(regions)
    field = _constant_field(regions, months, 1.0)
    one_day = monthly_totals(field, area)
    february = monthly_totals(field, area, days=np.array([29.0]))
    np.testing.assert_allclose(february.values, 29 * one_day.values, rtol=1e-12)


def test_global_total_is_flux_times_land_area_times_days(regions):
    days = pd.date_range("2005-01-01", "2005-12-31", freq="D")
    field = _constant_field(regions, days, 1.0)
    glob = float(global_annual_totals(field, regions.cell_area, regions.land_fraction)[0])
    land_area = float((regions.cell_area * regions.land_fraction).sum())
    assert glob == pytest.approx(land_area * 365 / 1e15, rel=1e-12)


def test_regional_totals_refuse_another_grid(regions):
    other = builtin_regions("transcom_like", 20.0)
    times = pd.date_range("2003-01-01", "2003-01-31", freq="D")
    with pytest.raises(GridMismatchError):
        regional_totals(_constant_field(other, times, 1.0), regions)
