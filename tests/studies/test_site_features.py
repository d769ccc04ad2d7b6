"""Site predictors from each site's own meteorology: climate, seasonal cycle, water."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.studies.site_features import (
    CLIMATE_FEATURES,
    DEFAULT_FEATURES,
    MSC_FEATURES,
    SITECV_FEATURES,
    add_site_features,
    site_meteo_features,
    water_availability,
)


def test_site_features_come_from_each_sites_own_meteorology(two_sites_read):
    from fluxbridge.features import site_samples

    sites, a, _ = two_sites_read
    features = site_meteo_features(sites)
    assert set(CLIMATE_FEATURES) | set(MSC_FEATURES) <= set(features.columns)
    fa = features[features["site"] == "XX-Aaa"].set_index("time")
    # climate over the whole record, months without NEE included
    assert fa["ta_site_mean"].nunique() == 1
    assert fa["ta_site_mean"].iloc[0] == pytest.approx(a["TA_F"].mean(), abs=1e-3)
    assert fa["precip_site_mean"].iloc[0] == pytest.approx(a["P_F"].mean(), abs=1e-3)
    # mean seasonal cycle: the mean of the same calendar month over both years
    march = a["TA_F"].iloc[[2, 14]].mean()
    assert fa.loc["2004-03-01", "ta_msc"] == pytest.approx(march, abs=1e-3)
    assert fa.loc["2005-03-01", "ta_msc"] == pytest.approx(march, abs=1e-3)

    # the features are predictors only: other NEE gives the same features
    changed = sites.copy(deep=True)
    changed["nee"] = changed["nee"] * 3 + 1
    pd.testing.assert_frame_equal(site_meteo_features(changed), features)

    samples = site_samples(sites, None, features=SITECV_FEATURES)
    joined = add_site_features(samples, features)
    assert len(joined) == len(samples) == 48 - 4
    assert list(joined.index) == list(samples.index)
    assert set(DEFAULT_FEATURES) <= set(joined.columns)
    row = joined[(joined["site"] == "XX-Aaa") & (joined["time"] == "2004-05-01")].iloc[0]
    assert row["lw_in"] == pytest.approx(a.loc[4, "LW_IN_F"], abs=1e-3)
    assert joined.attrs["units"]["ta_msc"] == "degC"


def test_water_availability_fills_with_rain_and_empties_without():
    time = pd.date_range("2004-01-01", periods=36, freq="MS")
    dims = ("site", "time")
    ta = np.full((3, 36), 15.0)
    sw = np.full((3, 36), 200.0)
    precip = np.stack([np.full(36, 20.0), np.zeros(36), np.r_[np.zeros(12), np.full(24, 8.0)]])
    ta[2, 30:] = np.nan  # no meteorology: no value
    sites = xr.Dataset({"ta": (dims, ta), "sw_in": (dims, sw), "precip": (dims, precip)},
                       coords={"site": ["wet", "dry", "rains"], "time": time})
    wai = water_availability(sites).to_numpy()
    assert np.nanmin(wai) >= 0 and np.nanmax(wai) <= 1
    np.testing.assert_allclose(wai[0], 1.0)  # rain far above the evaporative demand
    assert np.all(np.diff(wai[1]) <= 0) and wai[1, -1] < 0.05  # a drying bucket
    assert wai[2, 11] < 0.05 and wai[2, 12] > 0.9  # empty after a dry year, refills with rain
    assert np.isnan(wai[2, 30:]).all() and np.isfinite(wai[2, :30]).all()
