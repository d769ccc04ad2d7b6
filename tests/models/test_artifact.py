"""Tests of fluxbridge.models.artifact: prediction paths and safe save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.features import Normaliser
from fluxbridge.grid_features import feature_matrix
from fluxbridge.models.artifact import SCHEMA_VERSION, FittedModel, load_model
from fluxbridge.models.baselines import fit_random_forest, fit_xgboost
from fluxbridge.models.network import NEENet
from fluxbridge.vocabulary import attrs

FEATS = ["ta", "sw_in_pot", "ndvi"]


def _samples(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "ta": rng.normal(10, 8, n).astype(np.float32),
        "sw_in_pot": rng.uniform(0, 450, n).astype(np.float32),
        "ndvi": rng.uniform(0, 0.9, n).astype(np.float32),
        "igbp_code": rng.integers(1, 17, n),
    })
    df.loc[::11, "ndvi"] = np.nan
    df["nee"] = (0.1 * df["ta"] - 4 * df["ndvi"].fillna(0.4) + 0.01 * df["sw_in_pot"]
                 + 0.01 * df["igbp_code"])
    return df


def _model(kind: str) -> FittedModel:
    df = _samples()
    X = df[FEATS].to_numpy(dtype=np.float32, na_value=np.nan)
    y, igbp = df["nee"].to_numpy(), df["igbp_code"].to_numpy()
    cfg = {"lambda": 0.5, "nested": {"a": [1, 2]}}
    prov = {"seed": 3, "data": "tiny"}
    if kind == "nn":
        torch.manual_seed(0)
        net = NEENet(len(FEATS), width=8, depth=2)
        net.set_target_scaling(float(y.mean()), float(y.std()))
        return FittedModel("nn", FEATS, Normaliser.fit(df, FEATS), net, cfg, prov, "dual")
    fit = fit_random_forest if kind == "rf" else fit_xgboost
    est = fit(X, y, None, igbp, seed=0, n_estimators=15)
    return FittedModel(kind, FEATS, None, est, cfg, prov, kind)


@pytest.fixture(params=["nn", "rf", "xgboost"])
def model(request) -> FittedModel:
    return _model(request.param)


def _chunk(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    lat = np.array([45.0, 15.0, -15.0])
    lon = np.array([-150.0, -90.0, -30.0, 30.0])
    time = pd.date_range("2020-06-01", periods=4, freq="D")
    shape = (time.size, lat.size, lon.size)
    ds = xr.Dataset(coords={"time": time, "lat": lat, "lon": lon})
    ds["ta"] = (("time", "lat", "lon"), rng.normal(10, 8, shape).astype(np.float32), attrs("ta"))
    ndvi = rng.uniform(0, 0.9, shape).astype(np.float32)
    ndvi[1, 2, 3] = np.nan
    ds["ndvi"] = (("time", "lat", "lon"), ndvi, attrs("ndvi"))
    lc = rng.integers(1, 17, (lat.size, lon.size))
    lc[0, 0] = 0
    ds["land_cover"] = (("lat", "lon"), lc, attrs("land_cover"))
    return ds


def test_save_load_round_trip_identical(model, tmp_path):
    df = _samples(120, seed=5)
    before = model.predict_frame(df)
    assert before.dtype == np.float32 and np.isfinite(before).all()
    path = model.save(tmp_path / "m.pt")
    assert not list(tmp_path.glob(".*tmp"))
    loaded = load_model(path)
    assert loaded.kind == model.kind and loaded.name == model.name
    assert loaded.feature_names == FEATS
    assert loaded.config == model.config and loaded.provenance == model.provenance
    np.testing.assert_array_equal(loaded.predict_frame(df), before)
    ds = _chunk()
    xr.testing.assert_identical(loaded.predict_dataset(ds), model.predict_dataset(ds))


def test_saved_file_is_plain_data(tmp_path):
    path = _model("rf").save(tmp_path / "rf.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["schema_version"] == SCHEMA_VERSION
    assert payload["units"]["nee"] == "g m-2 d-1"
    assert payload["units"]["ta"] == "degC"
    assert len(payload["baseline"]["trees"]) == 15


def test_predict_dataset_matches_flat_predictions(model):
    ds = _chunk()
    nee = model.predict_dataset(ds)
    assert nee.dims == ("time", "lat", "lon")
    assert nee.attrs["units"] == "g m-2 d-1"
    assert "carbon" in nee.attrs["long_name"] and "upward" in nee.attrs["long_name"]
    X, igbp, valid = feature_matrix(ds, FEATS)
    flat = nee.values.ravel()
    np.testing.assert_array_equal(flat[valid], model.predict_arrays(X[valid], igbp[valid]))
    assert np.isnan(flat[~valid]).all()
    assert np.isnan(nee.values[:, 0, 0]).all()  # water
    assert np.isnan(nee.values[1, 2, 3])  # missing ndvi
    assert np.isfinite(nee.values[0, 2, 3])
    # sw_in_pot was computed from latitude and day of year, so latitude rows differ
    same = ds.copy()
    same["ta"][:] = 5.0
    same["ndvi"][:] = 0.5
    same["land_cover"][:] = 4
    out = model.predict_dataset(same).values
    assert np.all(out[:, :, 0] == out[:, :, 1])
    assert not np.allclose(out[:, 0, :], out[:, 2, :])


def test_predict_arrays_checks_shape(model):
    with pytest.raises(InputError, match="feature array"):
        model.predict_arrays(np.zeros((3, 2)), np.zeros(3))
    assert model.predict_arrays(np.zeros((0, 3)), np.zeros(0)).shape == (0,)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_load_refuses_tampered_files(tmp_path):
    good = _model("nn").save(tmp_path / "good.pt")
    payload = torch.load(good, weights_only=True)

    payload_v = dict(payload, schema_version=SCHEMA_VERSION + 1)
    torch.save(payload_v, tmp_path / "version.pt")
    with pytest.raises(InputError, match=r"version\.pt.*schema"):
        load_model(tmp_path / "version.pt")

    torch.save(dict(payload, extra=_Evil()), tmp_path / "evil.pt")
    with pytest.raises(InputError, match=r"evil\.pt"):
        load_model(tmp_path / "evil.pt")

    raw = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut\.pt"):
        load_model(tmp_path / "cut.pt")

    broken = dict(payload)
    broken["state_dict"] = {k: v for k, v in payload["state_dict"].items() if k != "y_scale"}
    torch.save(broken, tmp_path / "partial.pt")
    with pytest.raises(InputError, match=r"partial\.pt"):
        load_model(tmp_path / "partial.pt")

    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "absent.pt")


def test_network_needs_normaliser_and_known_kind():
    with pytest.raises(InputError, match="normaliser"):
        FittedModel("nn", FEATS, None, NEENet(3))
    with pytest.raises(InputError, match="kind"):
        FittedModel("svm", FEATS, None, object())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
def test_network_predicts_the_same_on_gpu_and_cpu():
    model = _model("nn")
    df = _samples(500, seed=7)
    X = df[FEATS].to_numpy(dtype=np.float32, na_value=np.nan)
    igbp = df["igbp_code"].to_numpy()
    np.testing.assert_allclose(model.predict_arrays(X, igbp, device="cuda"),
                               model.predict_arrays(X, igbp, device="cpu"), rtol=1e-4, atol=1e-5)
