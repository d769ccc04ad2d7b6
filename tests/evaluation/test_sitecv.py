"""Leave-site-out cross-validation: a tiny synthetic network, and real FLUXNET MM files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.evaluation.metrics import site_metrics
from fluxbridge.evaluation.sitecv import (
    CLIMATE_FEATURES,
    DEFAULT_FEATURES,
    EXTRA_METEO_COLUMNS,
    MSC_FEATURES,
    SITECV_FEATURES,
    add_climate_features,
    add_site_features,
    find_site_files,
    read_extra_meteo,
    run_sitecv,
    site_meteo_features,
    sitecv_predictions,
    water_availability,
    write_sitecv,
)
from fluxbridge.vocabulary import attrs

torch = pytest.importorskip("torch")


def _tiny_settings(seed: int = 0):
    from fluxbridge.training import TrainSettings

    return TrainSettings(seed=seed, epochs=3, patience=2, width=16, depth=2, batch_size=256,
                         rf_n_estimators=10, xgb_n_estimators=20, device="cpu")


def _sites(n_sites: int = 6, years: int = 2, seed: int = 0) -> xr.Dataset:
    """Monthly sites whose NEE is a known function of temperature and radiation."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2004-01-01", periods=12 * years, freq="MS")
    lat = rng.uniform(-40, 60, n_sites)
    season = np.cos(2 * np.pi * (time.month.values - 7) / 12)
    ta = 10 + 12 * season[None, :] * np.sign(lat)[:, None] + rng.normal(0, 1, (n_sites, time.size))
    sw = 180 + 90 * season[None, :] * np.sign(lat)[:, None]
    vpd = np.clip(ta / 3, 0.1, None)
    precip = rng.gamma(2, 1.5, (n_sites, time.size))
    nee = 0.8 - 0.012 * sw + 0.05 * ta + rng.normal(0, 0.1, ta.shape)
    dims = ("site", "time")
    ds = xr.Dataset(
        {"nee": (dims, nee, attrs("nee")),
         "nee_weight": (dims, np.ones_like(nee), attrs("nee_weight")),
         "ta": (dims, ta, attrs("ta")), "sw_in": (dims, sw, attrs("sw_in")),
         "vpd": (dims, vpd, attrs("vpd")), "precip": (dims, precip, attrs("precip"))},
        coords={"site": [f"XX-S{i:02d}" for i in range(n_sites)], "time": time,
                "lat": ("site", lat), "lon": ("site", rng.uniform(-120, 120, n_sites)),
                "igbp": ("site", ["ENF", "GRA"] * (n_sites // 2))},
        attrs={"time_step": "MM"},
    )
    ds["nee"][0, :3] = np.nan  # gaps
    return ds


def test_cross_validation_writes_recomputable_outputs(tmp_path):
    from fluxbridge.features import site_samples

    torch.set_num_threads(1)
    samples = add_climate_features(site_samples(_sites(), None, features=SITECV_FEATURES))
    assert samples.groupby("site")["ta_site_mean"].nunique().eq(1).all()
    models = ("nn", "rf", "xgboost")
    pred = sitecv_predictions(samples, folds=3, seed=0, models=models,
                              settings=_tiny_settings(), progress=False)
    assert len(pred) == len(samples)
    # grouped by site: every site in exactly one fold, every model predicted every row
    assert pred.groupby("site")["fold"].nunique().eq(1).all()
    assert pred["fold"].nunique() == 3
    assert np.isfinite(pred[list(models)].to_numpy()).all()

    result = write_sitecv(pred, models, tmp_path / "cv", "MM")
    csv = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    assert list(csv.columns[:4]) == ["site", "time", "fold", "igbp"]
    assert {"observed", *models} <= set(csv.columns)
    assert csv["time"].str.fullmatch(r"\d{4}-\d{2}").all()
    recomputed = site_metrics(csv, models)
    assert np.allclose(recomputed["r2"], result.metrics["r2"], atol=1e-4, equal_nan=True)
    assert (tmp_path / "cv" / "report.html").stat().st_size > 1000
    summary = result.summary()
    assert "r2_rf" in summary and "across_site" in summary and "fluxcom_r2" in summary
    # the tree models learn this near-linear NEE well enough to beat the site-mean climatology
    rf_all = result.metrics.query("model == 'rf' and scale == 'all'").r2.iloc[0]
    assert rf_all > 0.3


def _write_mm_file(folder, site: str, seed: int, *, with_ws: bool = True,
                   nee_missing: tuple[int, ...] = ()) -> pd.DataFrame:
    """A small FLUXNET2015 SUBSET MM file of two years; returns what it holds (NaN = -9999)."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2004-01-01", periods=24, freq="MS")
    season = np.cos(2 * np.pi * (months.month.to_numpy() - 7) / 12)
    table = pd.DataFrame({
        "TIMESTAMP": months.strftime("%Y%m"),
        "TA_F": 8 + 10 * season + rng.normal(0, 1, 24),
        "SW_IN_POT": 280 + 150 * season,
        "SW_IN_F": 150 + 90 * season + rng.normal(0, 5, 24),
        "LW_IN_F": 300 + 30 * season + rng.normal(0, 3, 24),
        "VPD_F": 4 + 3 * season + rng.uniform(0, 1, 24),
        "PA_F": 95 + rng.normal(0, 0.3, 24),
        "P_F": rng.gamma(2, 1, 24),
        "WS_F": rng.uniform(1, 4, 24),
        "NEE_VUT_REF": -1 - 2 * season + rng.normal(0, 0.3, 24),
        "NEE_VUT_REF_QC": rng.uniform(0.8, 1, 24),
    })
    if not with_ws:
        table = table.drop(columns="WS_F")
    table.loc[list(nee_missing), ["NEE_VUT_REF", "NEE_VUT_REF_QC"]] = np.nan
    table.fillna(-9999).to_csv(folder / f"FLX_{site}_FLUXNET2015_SUBSET_MM_2004-2005_1-4.csv",
                               index=False, float_format="%.4f")
    return table


def _write_site_list(path, sites: list[str]) -> None:
    rows = [f"{s},CC-BY-4.0,{45 + i},{5 + i},,{('ENF', 'GRA')[i % 2]},," for i, s in
            enumerate(sites)]
    path.write_text("id,license,latitude,longitude,altitude,IGBP,MAT,MAP\n" + "\n".join(rows)
                    + "\n")


def test_site_features_come_from_each_sites_own_meteorology(tmp_path):
    from fluxbridge.features import site_samples
    from fluxbridge.io.fluxnet import read_sites
    from fluxbridge.io.sitemeta import read_site_metadata

    data = tmp_path / "MM"
    data.mkdir()
    a = _write_mm_file(data, "XX-Aaa", 1, nee_missing=(0, 1, 2, 13))
    b = _write_mm_file(data, "XX-Bbb", 2, with_ws=False)
    _write_site_list(tmp_path / "sites.csv", ["XX-Aaa", "XX-Bbb"])
    paths, step = find_site_files(data)
    sites = read_sites(paths, read_site_metadata(tmp_path / "sites.csv"), time_step=step)
    sites = read_extra_meteo(paths, sites)
    assert set(EXTRA_METEO_COLUMNS) <= set(sites.data_vars)
    np.testing.assert_allclose(sites["lw_in"].sel(site="XX-Aaa"), a["LW_IN_F"], atol=1e-4)
    np.testing.assert_allclose(sites["pa"].sel(site="XX-Bbb"), b["PA_F"], atol=1e-4)
    assert sites["ws"].sel(site="XX-Bbb").isnull().all()  # the file lacks WS_F

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


def test_small_directory_end_to_end_with_two_metadata_tables(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "MM"
    data.mkdir()
    names = [f"XX-S{i:02d}" for i in range(6)]
    for i, site in enumerate(names):
        _write_mm_file(data, site, i, with_ws=i != 3)
    _write_site_list(tmp_path / "first.csv", names[:4])
    _write_site_list(tmp_path / "second.csv", names[3:])
    result = run_sitecv(data, metadata=[tmp_path / "first.csv", tmp_path / "second.csv"],
                        out=tmp_path / "cv", folds=3, seed=0, progress=False,
                        settings=_tiny_settings())
    assert result.predictions["site"].nunique() == 6
    assert result.predictions.groupby("site")["fold"].nunique().eq(1).all()
    csv = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    assert {"site", "time", "fold", "observed", "nn", "rf", "xgboost"} <= set(csv.columns)
    assert np.isfinite(csv[["nn", "rf", "xgboost"]].to_numpy()).all()
    metrics = pd.read_csv(tmp_path / "cv" / "metrics.csv")
    assert {"ENF", "GRA"} <= set(metrics["igbp"])


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


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="overwrite"):
        run_sitecv(tmp_path, metadata=tmp_path / "none.csv", out=tmp_path)


def test_find_site_files_picks_one_resolution(tmp_path, real_data):
    paths, step = find_site_files(real_data / "fluxnet2015" / "MM")
    assert step == "MM" and len(paths) == 206
    assert len({p.name.split("_")[1] for p in paths}) == 206
    (tmp_path / "FLX_XX-Aaa_FLUXNET2015_SUBSET_MM_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    (tmp_path / "FLX_XX-Bbb_FLUXNET2015_SUBSET_DD_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    with pytest.raises(InputError, match="one of MM or DD"):
        find_site_files(tmp_path)
    assert find_site_files(tmp_path, "DD")[0][0].name.startswith("FLX_XX-Bbb")
    with pytest.raises(InputError, match="directory"):
        find_site_files(tmp_path / "missing")


@pytest.mark.skipif(importlib.util.find_spec("fluxbridge.io.fluxnet") is None,
                    reason="fluxbridge.io.fluxnet (the FLUXNET reader) is not available yet")
def test_real_monthly_files_end_to_end(tmp_path, real_data):
    torch.set_num_threads(1)
    result = run_sitecv(real_data / "fluxnet2015" / "MM",
                        metadata=real_data / "sites" / "FLX_AA-Flx_BIF_LATEST.csv",
                        out=tmp_path / "sitecv", folds=3, seed=0, progress=False,
                        settings=_tiny_settings(), max_sites=9)
    assert result.time_step == "MM"
    assert result.predictions["site"].nunique() == 9
    assert set(result.metrics["scale"]) >= {"all", "across_site", "seasonal", "anomaly"}
    assert (tmp_path / "sitecv" / "predictions.csv").exists()
