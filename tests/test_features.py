"""Site samples and normalisation on tiny hand-built worlds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from feature_world import tiny_world

from fluxbridge.constants import SOLAR_CONSTANT_W_M2
from fluxbridge.errors import InputError
from fluxbridge.features import (
    FEATURES,
    Normaliser,
    nearest_land_cell,
    site_samples,
    sw_in_pot,
    sw_in_pot_monthly,
)
from fluxbridge.grid import make_grid, sw_in_pot_daily
from fluxbridge.vocabulary import IGBP_CODE, attrs


@pytest.fixture
def world():
    return tiny_world()


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
    df = site_samples(sites, pred, meteo_from="grid")
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


def test_sites_without_a_usable_day_are_named_with_the_reason(world, caplog):
    pred, _, sites = world
    sites = sites.copy(deep=True)
    sites["nee"][0, :] = np.nan  # no NEE at all
    sites["ta"][1, :] = np.nan  # NEE, but never every feature
    names = [str(s) for s in sites["site"].values]
    with caplog.at_level("WARNING", logger="fluxbridge.features"):
        df = site_samples(sites, pred)
    assert df.attrs["dropped_sites"] == {names[0]: "no finite NEE",
                                         names[1]: "no day with every feature"}
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 1 and names[0] in lines[0] and names[1] in lines[0]


def test_sw_in_pot_known_answers():
    # equinox (21 March, declination ~0) at the equator: the sun is overhead at noon and up
    # 12 h, so the daily mean is S0 / pi (Earth-Sun distance 0.996 AU: within 1 %)
    equinox = pd.DatetimeIndex(["2005-03-21"])
    assert float(sw_in_pot(np.array([0.0]), equinox)[0, 0]) == pytest.approx(
        SOLAR_CONSTANT_W_M2 / np.pi, rel=0.01)
    # the north pole at the June solstice: the sun stays 23.44° high all day, at 1.016 AU
    solstice = pd.DatetimeIndex(["2005-06-21"])
    expected = SOLAR_CONSTANT_W_M2 * np.sin(np.deg2rad(23.44)) / 1.0163**2
    assert float(sw_in_pot(np.array([90.0]), solstice)[0, 0]) == pytest.approx(
        expected, rel=0.01)
    # polar night: both poles in their winter solstice get nothing
    assert float(sw_in_pot(np.array([-90.0]), solstice)[0, 0]) == pytest.approx(0.0, abs=1e-9)
    december = pd.DatetimeIndex(["2005-12-21"])
    assert float(sw_in_pot(np.array([90.0]), december)[0, 0]) == pytest.approx(0.0, abs=1e-9)


def test_sw_in_pot_monthly_is_the_mean_of_the_month_days():
    lat = np.array([80.0, 45.0, 0.0, -45.0])
    months = pd.DatetimeIndex(["2005-02-01", "2005-12-01", "2004-02-01"])
    monthly = sw_in_pot_monthly(lat, months)
    assert monthly.shape == (3, 4)
    # 80N is in polar night all of December (from about 24 October to 17 February)
    assert monthly[1, 0] == pytest.approx(0.0, abs=1e-9)
    for i, start in enumerate(months):
        days = pd.date_range(start, start + pd.offsets.MonthEnd(0), freq="D")
        by_day = np.mean([sw_in_pot(lat, pd.DatetimeIndex([d]))[0] for d in days], axis=0)
        np.testing.assert_allclose(monthly[i], by_day, rtol=1e-12)
    assert monthly[2, 2] != monthly[0, 2]  # 29 days in February 2004, 28 in 2005
    # the annual mean of the monthly means at the equator is near S0/pi (416-433 W m-2)
    year = sw_in_pot_monthly(np.array([0.0]), pd.date_range("2005-01", periods=12, freq="MS"))
    days = pd.date_range("2005-01", periods=12, freq="MS").days_in_month
    assert 410 < float(np.average(year[:, 0], weights=days)) < 435
