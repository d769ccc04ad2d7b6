"""Gridded features: the land cells held in memory and flattened chunks, on a tiny world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_world import tiny_world

from fluxbridge.errors import InputError
from fluxbridge.grid import sw_in_pot_daily
from fluxbridge.grid_features import GridFeatures, feature_matrix


@pytest.fixture
def world():
    return tiny_world()


def test_grid_features_take_exact_values(world):
    pred, regions, _ = world
    pred = pred.drop_vars("precip")  # sw_in_pot computed, precip left out of this feature set
    feats = ("ta", "sw_in_pot", "ndvi", "lst_night")
    gf = GridFeatures.from_dataset(pred, regions, feats)
    lc = pred["land_cover"].values
    frac = regions["land_fraction"].values
    expected_cells = (lc > 0) & (frac > 0)
    assert gf.n_cell == int(expected_cells.sum())
    assert expected_cells[gf.lat_index, gf.lon_index].all()
    np.testing.assert_array_equal(gf.cell_ids, gf.lat_index * pred.sizes["lon"] + gf.lon_index)
    assert gf.resolution_deg == pytest.approx(abs(float(pred["lat"][1] - pred["lat"][0])))
    np.testing.assert_array_equal(gf.region,
                                  regions["region"].values[gf.lat_index, gf.lon_index])
    rng = np.random.default_rng(2)
    ti = rng.integers(0, pred.sizes["time"], 50)
    ci = rng.integers(0, gf.n_cell, 50)
    X, igbp = gf.take(ti, ci)
    assert X.shape == (50, len(feats)) and X.dtype == np.float32
    ilat, ilon = gf.lat_index[ci], gf.lon_index[ci]
    for j, name in enumerate(feats):
        if name == "sw_in_pot":
            doy = pd.DatetimeIndex(pred["time"].values)[ti].day_of_year
            ref = sw_in_pot_daily(pred["lat"].values[ilat], doy).astype(np.float32)
        else:
            ref = pred[name].values[ti, ilat, ilon]
        np.testing.assert_array_equal(X[:, j], ref)
    np.testing.assert_array_equal(igbp, lc[ilat, ilon])
    # flat rows t * n_cell + c (the operator's numbering) give the same features, no copy
    rows = gf.rows()
    assert rows.shape == (gf.values.shape[0] * gf.n_cell, len(feats))
    np.testing.assert_array_equal(rows[ti * gf.n_cell + ci], X)
    assert np.shares_memory(rows, gf.values)


def test_grid_features_valid_matches_feature_matrix(world):
    pred, regions, _ = world
    pred = pred.copy()
    pred["ndvi"][1, 2, 4] = np.nan
    feats = ("ta", "ndvi")
    gf = GridFeatures.from_dataset(pred, regions, feats)
    _, _, valid = feature_matrix(pred, feats)
    grid_valid = valid.reshape(pred.sizes["time"], -1)[:, gf.cell_ids]
    np.testing.assert_array_equal(gf.valid(), grid_valid)
    assert not gf.valid().all()


def test_grid_features_refuses_other_grid(world):
    pred, regions, _ = world
    with pytest.raises(InputError):
        GridFeatures.from_dataset(pred.isel(lon=slice(1, None)), regions, ("ta",))


def test_feature_matrix_order_and_validity(world):
    pred, _, _ = world
    pred = pred.copy()
    pred["ndvi"][2, 3, 4] = np.nan
    X, igbp, valid = feature_matrix(pred, ("ta", "ndvi"))
    n = pred["ta"].size
    assert X.shape == (n, 2)
    np.testing.assert_array_equal(X[:, 0], pred["ta"].values.ravel())
    np.testing.assert_array_equal(X[:, 1], pred["ndvi"].values.ravel())
    lc = np.broadcast_to(pred["land_cover"].values, pred["ta"].shape).ravel()
    np.testing.assert_array_equal(igbp, lc)
    expected = (lc > 0) & np.isfinite(pred["ndvi"].values.ravel())
    np.testing.assert_array_equal(valid, expected)
    with pytest.raises(InputError, match="land_cover"):
        feature_matrix(pred.drop_vars("land_cover"), ("ta",))


def test_grid_features_only_regions(world):
    pred, regions, _ = world
    regions = regions.copy()
    regions["region"][2, :] = 0
    full = GridFeatures.from_dataset(pred, regions, ("ta",))
    inside = GridFeatures.from_dataset(pred, regions, ("ta",), only_regions=True)
    assert (inside.region != 0).all()
    assert inside.n_cell == int((full.region != 0).sum()) < full.n_cell
    assert set(inside.cell_ids) <= set(full.cell_ids)
