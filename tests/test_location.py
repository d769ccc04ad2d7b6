"""Location features: each predictor's mean over the record and mean seasonal cycle, computed
once on the grid and taken alike by the towers and the upscaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_world import tiny_predictors, tiny_regions, tiny_sites

from fluxbridge.config import parse_config
from fluxbridge.errors import InputError
from fluxbridge.features import feature_units, nearest_land_cell, site_samples
from fluxbridge.grid_features import GridFeatures, feature_matrix
from fluxbridge.location import at_times, location_source, with_location_layers

MONTH_VALUE = np.arange(1, 13) * 10.0  # f(month)


@pytest.fixture
def year():
    """One year of daily predictors whose ``ta`` is f(month) + g(cell) exactly."""
    pred = tiny_predictors(n_time=366)
    pred = pred.assign_coords(time=pd.date_range("2020-01-01", periods=366, freq="D"))
    month = pd.DatetimeIndex(pred["time"].values).month.to_numpy()
    cell = np.arange(pred.sizes["lat"] * pred.sizes["lon"], dtype=float).reshape(
        pred.sizes["lat"], pred.sizes["lon"])
    pred["ta"] = pred["ta"].copy(data=(MONTH_VALUE[month - 1][:, None, None] + cell[None])
                                 .astype(np.float32))
    return pred, cell, month


def test_location_source_names():
    assert location_source("ta_msc") == ("ta", "msc")
    assert location_source("lst_day_site_mean") == ("lst_day", "site_mean")
    assert location_source("ta") is None
    assert location_source("_msc") is None


def test_layers_have_known_values(year):
    pred, cell, month = year
    out = with_location_layers(pred, ["ta", "ta_msc", "ta_site_mean"])
    assert out["ta_msc"].dims == ("month", "lat", "lon")
    expected_msc = MONTH_VALUE[:, None, None] + cell[None]
    np.testing.assert_allclose(out["ta_msc"].values, expected_msc, rtol=1e-6)
    days_weighted = MONTH_VALUE[month - 1].mean()  # 2020: months weighted by their days
    np.testing.assert_allclose(out["ta_site_mean"].values, days_weighted + cell, rtol=1e-6)
    assert out["ta_msc"].attrs["units"] == pred["ta"].attrs["units"] == feature_units("ta_msc")
    assert out["ta_site_mean"].attrs["period"] == "2020-01-01/2020-12-31"


def test_at_times_takes_each_times_month_and_repeats_static_layers(year):
    pred, cell, _ = year
    out = with_location_layers(pred, ["ta_msc", "ta_site_mean"])
    times = pd.DatetimeIndex(["2031-02-10", "2031-07-01", "2031-02-28"])
    msc = at_times(out["ta_msc"], times)
    assert msc.dims == ("time", "lat", "lon")
    np.testing.assert_allclose(msc.values[:, 0, 0], [20.0, 70.0, 20.0])
    static = at_times(out["ta_site_mean"], times)
    assert static.shape == (3, *cell.shape)
    np.testing.assert_array_equal(static.values[0], static.values[2])


def test_towers_take_their_cells_layers(year):
    pred, cell, _ = year
    names = ("ta", "ta_msc", "ta_site_mean")
    pred = with_location_layers(pred, names)
    sites = tiny_sites(pred).drop_vars("ta")
    sites = sites.assign_coords(time=pd.date_range("2020-05-30", periods=4, freq="D"))
    df = site_samples(sites, pred, features=names, meteo_from="grid")
    ilat, ilon = nearest_land_cell(sites["lat"].values, sites["lon"].values, pred)
    for i, site in enumerate(sites["site"].values):
        rows = df[df["site"] == site]
        month = pd.DatetimeIndex(rows["time"]).month.to_numpy()
        np.testing.assert_allclose(rows["ta_msc"], MONTH_VALUE[month - 1] + cell[ilat[i], ilon[i]])
        np.testing.assert_allclose(rows["ta_site_mean"],
                                   pred["ta_site_mean"].values[ilat[i], ilon[i]])


def test_a_chunk_of_time_sees_the_whole_records_layers(year):
    """Upscaling cuts the predictors into chunks: a layer must not be recomputed on a chunk."""
    pred, _, _ = year
    names = ["ta", "ta_msc", "ta_site_mean", "sw_in_pot_site_mean"]
    pred = with_location_layers(pred, names)
    full, _, _ = feature_matrix(pred, names)
    part, _, _ = feature_matrix(pred.isel(time=slice(40, 80)), names)
    n_cell = pred.sizes["lat"] * pred.sizes["lon"]
    np.testing.assert_array_equal(part, full[40 * n_cell:80 * n_cell])


def test_grid_features_carry_the_layers(year):
    pred, cell, month = year
    names = ["ta_msc"]
    pred = with_location_layers(pred, names)
    grid = GridFeatures.from_dataset(pred, tiny_regions(pred), features=names)
    expected = MONTH_VALUE[month - 1][:, None] + cell[grid.lat_index, grid.lon_index][None]
    np.testing.assert_allclose(grid.values[:, :, 0], expected, rtol=1e-6)


def test_config_accepts_location_features_of_known_variables():
    cfg = parse_config({"name": "x", "inputs": {"sites": "s"},
                        "features": ["ta", "ta_msc", "ndvi_site_mean"]})
    assert cfg.input_options()["features"] == ("ta", "ta_msc", "ndvi_site_mean")
    with pytest.raises(ValueError, match="foo_msc"):
        parse_config({"name": "x", "inputs": {"sites": "s"}, "features": ["ta", "foo_msc"]})


def test_samples_and_grid_compute_missing_layers_from_the_whole_record(year):
    pred, _, _ = year
    names = ("ta", "ta_msc", "ta_site_mean")
    sites = tiny_sites(pred).drop_vars("ta")
    sites = sites.assign_coords(time=pd.date_range("2020-05-30", periods=4, freq="D"))
    with_layers = with_location_layers(pred, names)
    assert "ta_msc" not in pred
    pd.testing.assert_frame_equal(site_samples(sites, pred, features=names, meteo_from="grid"),
                                  site_samples(sites, with_layers, features=names,
                                               meteo_from="grid"))
    regions = tiny_regions(pred)
    np.testing.assert_array_equal(
        GridFeatures.from_dataset(pred, regions, features=names).values,
        GridFeatures.from_dataset(with_layers, regions, features=names).values)


def test_a_location_feature_of_a_missing_predictor_is_refused_in_one_line(year):
    pred, _, _ = year
    with pytest.raises(InputError, match="foo"):
        with_location_layers(pred.drop_vars("ta"), ["foo_msc"])
    with pytest.raises(InputError, match="land_cover"):
        with_location_layers(pred, ["land_cover_site_mean"])
