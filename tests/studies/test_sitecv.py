"""Leave-site-out cross-validation: a tiny synthetic network, and real FLUXNET MM files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fluxnet_files import write_mm_file, write_site_list

from fluxbridge.errors import InputError
from fluxbridge.evaluation.metrics import site_metrics
from fluxbridge.studies.site_features import SITECV_FEATURES, add_climate_features
from fluxbridge.studies.sitecv import run_sitecv, sitecv_predictions, write_sitecv
from fluxbridge.vocabulary import attrs

torch = pytest.importorskip("torch")


def _tiny_config(seed: int = 0):
    from fluxbridge.config import parse_config

    return parse_config({"seed": seed, "constraint": {"lambda_regional": 0.0},
                         "network": {"epochs": 3, "patience": 2, "width": 16, "depth": 2,
                                     "batch_size": 256, "device": "cpu"},
                         "tuning": {"baselines": {"rf_n_estimators": 10,
                                                  "xgb_n_estimators": 20}}})


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
                              cfg=_tiny_config(), progress=False)
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


def test_small_directory_end_to_end_with_two_metadata_tables(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "MM"
    data.mkdir()
    names = [f"XX-S{i:02d}" for i in range(6)]
    for i, site in enumerate(names):
        write_mm_file(data, site, i, with_ws=i != 3)
    write_site_list(tmp_path / "first.csv", names[:4])
    write_site_list(tmp_path / "second.csv", names[3:])
    result = run_sitecv(data, metadata=[tmp_path / "first.csv", tmp_path / "second.csv"],
                        out=tmp_path / "cv", folds=3, seed=0, progress=False,
                        cfg=_tiny_config())
    assert result.predictions["site"].nunique() == 6
    assert result.predictions.groupby("site")["fold"].nunique().eq(1).all()
    csv = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    assert {"site", "time", "fold", "observed", "nn", "rf", "xgboost"} <= set(csv.columns)
    assert np.isfinite(csv[["nn", "rf", "xgboost"]].to_numpy()).all()
    metrics = pd.read_csv(tmp_path / "cv" / "metrics.csv")
    assert {"ENF", "GRA"} <= set(metrics["igbp"])


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="overwrite"):
        run_sitecv(tmp_path, metadata=tmp_path / "none.csv", out=tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("fluxbridge.io.fluxnet") is None,
                    reason="fluxbridge.io.fluxnet (the FLUXNET reader) is not available yet")
def test_real_monthly_files_end_to_end(tmp_path, real_data):
    torch.set_num_threads(1)
    result = run_sitecv(real_data / "fluxnet2015" / "MM",
                        metadata=real_data / "sites" / "FLX_AA-Flx_BIF_LATEST.csv",
                        out=tmp_path / "sitecv", folds=3, seed=0, progress=False,
                        cfg=_tiny_config(), max_sites=9)
    assert result.time_step == "MM"
    assert result.predictions["site"].nunique() == 9
    assert set(result.metrics["scale"]) >= {"all", "across_site", "seasonal", "anomaly"}
    assert (tmp_path / "sitecv" / "predictions.csv").exists()
