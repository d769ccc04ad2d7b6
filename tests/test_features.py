"""Tests of fluxbridge.features on tiny hand-built worlds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.features import (
    FEATURES,
    GridFeatures,
    Normaliser,
    feature_matrix,
    nearest_land_cell,
    site_samples,
)
from fluxbridge.grid import make_grid, sw_in_pot_daily
from fluxbridge.regions import region_dataset
from fluxbridge.vocabulary import IGBP_CODE, attrs

RS = ("ndvi", "evi", "nirv", "lst_day", "lst_night")
METEO = ("ta", "vpd", "sw_in", "precip")


def tiny_predictors(n_time: int = 6, resolution: float = 30.0, seed: int = 0) -> xr.Dataset:
    """Predictors on a coarse grid; every value distinct; cell (1, 2) is water."""
    grid = make_grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    time = pd.date_range("2020-03-01", periods=n_time, freq="D")
    rng = np.random.default_rng(seed)
    ds = xr.Dataset(coords={"time": time, "lat": lat, "lon": lon})
    for name in METEO + RS:
        ds[name] = (("time", "lat", "lon"),
                    rng.normal(size=(n_time, lat.size, lon.size)).astype(np.float32),
                    attrs(name))
    lc = rng.integers(1, 17, size=(lat.size, lon.size)).astype(np.int16)
    lc[1, 2] = 0
    lc[:, 0] = 0  # a column of sea
    ds["land_cover"] = (("lat", "lon"), lc, attrs("land_cover"))
    return ds


def tiny_regions(ds: xr.Dataset) -> xr.Dataset:
    lat, lon = ds["lat"].values, ds["lon"].values
    frac = np.ones((lat.size, lon.size))
    frac[:, 0] = 0.0
    frac[0, 3] = 0.0  # no land fraction although the land cover says land
    mask = np.where(frac > 0, 1 + (np.arange(lat.size)[:, None] % 2), 0) * np.ones_like(frac)
    land = xr.DataArray(frac, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        attrs=attrs("land_fraction"))
    return region_dataset(mask.astype(int), {1: "A", 2: "B"}, lat, lon, land=land)


def tiny_sites(pred: xr.Dataset) -> xr.Dataset:
    """Two sites: one at the water cell (1, 2), one at the centre of cell (3, 5)."""
    lat = np.array([pred["lat"].values[1], pred["lat"].values[3] + 1.0])
    lon = np.array([pred["lon"].values[2], pred["lon"].values[5] - 2.0])
    time = pd.date_range("2020-03-02", periods=4, freq="D")
    nee = np.array([[1.0, np.nan, 2.0, 3.0], [-1.0, -2.0, np.nan, np.nan]])
    weight = np.where(np.isfinite(nee), 0.5, np.nan)
    ds = xr.Dataset(coords={"site": ["AA-One", "BB-Two"], "time": time,
                            "lat": ("site", lat), "lon": ("site", lon),
                            "igbp": ("site", ["ENF", "GRA"])})
    ds["nee"] = (("site", "time"), nee, attrs("nee"))
    ds["nee_weight"] = (("site", "time"), weight, attrs("nee_weight"))
    ds["ta"] = (("site", "time"), np.arange(8.0).reshape(2, 4) + 100.0, attrs("ta"))
    return ds


@pytest.fixture
def world():
    pred = tiny_predictors()
    return pred, tiny_regions(pred), tiny_sites(pred)


def test_nearest_land_cell_skips_water(world):
    pred, _, sites = world
    ilat, ilon = nearest_land_cell(sites["lat"].values, sites["lon"].values, pred)
    assert pred["land_cover"].values[ilat, ilon].min() > 0
    # site 0 sits on the water cell (1, 2): its nearest land cell is a neighbour
    assert (ilat[0], ilon[0]) != (1, 2)
    assert abs(ilat[0] - 1) <= 1 and abs(ilon[0] - 2) <= 1
    assert (ilat[1], ilon[1]) == (3, 5)


def test_site_samples_meteo_from_site(world):
    pred, _, sites = world
    df = site_samples(sites, pred)
    nee = sites["nee"].values
    assert len(df) == int(np.isfinite(nee).sum())
    assert list(df.columns[:6]) == ["site", "time", "igbp", "igbp_code", "lat", "lon"]
    for name in FEATURES:
        assert df[name].dtype == np.float32
    ilat, ilon = nearest_land_cell(sites["lat"].values, sites["lon"].values, pred)
    for _, row in df.iterrows():
        s = list(sites["site"].values).index(row["site"])
        t = list(pd.DatetimeIndex(sites["time"].values)).index(row["time"])
        assert row["nee"] == nee[s, t]
        assert row["weight"] == 0.5
        assert row["igbp_code"] == IGBP_CODE[row["igbp"]]
        # site meteorology used where the site has it
        assert row["ta"] == np.float32(sites["ta"].values[s, t])
        # remote sensing and absent site meteorology from the nearest land cell, same day
        for name in ("ndvi", "vpd"):
            assert row[name] == pred[name].sel(time=row["time"]).values[ilat[s], ilon[s]]
        doy = row["time"].day_of_year
        assert row["sw_in_pot"] == pytest.approx(
            float(sw_in_pot_daily(sites["lat"].values[s], doy)), rel=1e-6)
    assert df.attrs["units"]["nee"] == "g m-2 d-1"
    assert df.attrs["units"]["ta"] == "degC"


def test_site_samples_meteo_from_predictors(world):
    pred, _, sites = world
    df = site_samples(sites, pred, meteo_from="predictors")
    ilat, ilon = nearest_land_cell(sites["lat"].values, sites["lon"].values, pred)
    sid = list(sites["site"].values)
    for _, row in df.iterrows():
        s = sid.index(row["site"])
        expected = pred["ta"].sel(time=row["time"]).values[ilat[s], ilon[s]]
        assert row["ta"] == expected
        cell_lat = pred["lat"].values[ilat[s]]
        assert row["sw_in_pot"] == pytest.approx(
            float(sw_in_pot_daily(cell_lat, row["time"].day_of_year)), rel=1e-6)


def test_site_samples_missing_times_and_features(world):
    pred, _, sites = world
    short = pred.isel(time=slice(0, 3))  # covers 2020-03-02 and -03 only
    df = site_samples(sites, short)
    late = df["time"] > pd.Timestamp("2020-03-03")
    assert late.any()
    assert df.loc[late, "ndvi"].isna().all()
    assert df.loc[~late, "ndvi"].notna().all()
    with pytest.raises(InputError, match="ndvi"):
        site_samples(sites, pred.drop_vars("ndvi"))
    with pytest.raises(InputError, match="vpd"):
        site_samples(sites, None)
    only_site = site_samples(sites, None, features=("ta", "sw_in_pot"))
    assert only_site["ta"].notna().all()


def test_site_samples_refuses_unknown_class(world):
    pred, _, sites = world
    bad = sites.assign_coords(igbp=("site", ["ENF", "XYZ"]))
    with pytest.raises(InputError, match="XYZ"):
        site_samples(bad, pred)


def test_normaliser_fit_on_subset_and_round_trip():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"ta": rng.normal(10, 5, 200), "vpd": rng.normal(3, 2, 200)})
    df.loc[3, "ta"] = np.nan
    train = df.iloc[:120]
    norm = Normaliser.fit(train, ["ta", "vpd"])
    Z = norm.transform(train.to_numpy())
    assert Z.dtype == np.float32
    finite = train.notna().to_numpy()
    np.testing.assert_allclose(Z[finite[:, 0], 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(Z[finite[:, 0], 0].std(), 1, atol=1e-4)
    np.testing.assert_allclose(Z[:, 1].mean(), 0, atol=1e-5)
    assert Z[3, 0] == 0.0  # NaN becomes the mean
    # statistics come only from the given rows: the held-out rows are not centred exactly
    Z_test = norm.transform(df.iloc[120:].to_numpy())
    assert abs(Z_test[:, 0].mean()) > 1e-4
    again = Normaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.transform(df.to_numpy()), norm.transform(df.to_numpy()))
    assert again.feature_names == ["ta", "vpd"]


def test_normaliser_constant_feature_and_bad_shape():
    df = pd.DataFrame({"a": [2.0, 2.0, 2.0], "b": [np.nan] * 3})
    norm = Normaliser.fit(df, ["a", "b"])
    np.testing.assert_array_equal(norm.transform(df.to_numpy()), np.zeros((3, 2)))
    with pytest.raises(InputError):
        norm.transform(np.zeros((3, 3)))
    with pytest.raises(InputError):
        Normaliser.fit(df, ["a", "missing"])


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


def test_real_site_list_maps_to_own_land_cell(real_data):
    """All FLUXNET2015 sites: IGBP classes known, each site in its own cell when it has land."""
    table = pd.read_csv(real_data / "sites" / "fluxnet2015_site_list.csv")
    grid = make_grid(10.0)
    lat, lon = grid["lat"].values, grid["lon"].values
    from fluxbridge.grid import land_fraction

    frac = land_fraction(lat, lon, subsamples=8).values
    time = pd.date_range("2010-07-01", periods=2, freq="D")
    pred = xr.Dataset(coords={"time": time, "lat": lat, "lon": lon})
    cell_value = np.arange(lat.size * lon.size, dtype=np.float32).reshape(lat.size, lon.size)
    pred["ndvi"] = (("time", "lat", "lon"), np.broadcast_to(cell_value, (2, *cell_value.shape)),
                    attrs("ndvi"))
    pred["land_cover"] = (("lat", "lon"), np.where(frac > 0, 10, 0), attrs("land_cover"))
    n = len(table)
    sites = xr.Dataset(coords={"site": table["id"].to_numpy(dtype=str), "time": time,
                               "lat": ("site", table["latitude"].to_numpy(float)),
                               "lon": ("site", table["longitude"].to_numpy(float)),
                               "igbp": ("site", table["IGBP"].to_numpy(dtype=str))})
    sites["nee"] = (("site", "time"), np.ones((n, 2)), attrs("nee"))
    sites["nee_weight"] = (("site", "time"), np.ones((n, 2)), attrs("nee_weight"))
    df = site_samples(sites, pred, features=("ndvi",))
    assert len(df) == 2 * n
    own_lat = np.floor((90 - table["latitude"].to_numpy()) / 10).astype(int)
    own_lon = np.floor((table["longitude"].to_numpy() + 180) / 10).astype(int) % lon.size
    own_has_land = frac[own_lat, own_lon] > 0
    assert own_has_land.mean() > 0.95
    first = df.groupby("site", sort=False)["ndvi"].first().reindex(sites["site"].values)
    np.testing.assert_array_equal(first.to_numpy()[own_has_land],
                                  cell_value[own_lat, own_lon][own_has_land])
