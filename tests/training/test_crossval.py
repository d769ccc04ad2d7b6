"""Cross-validation: the network and the baselines on identical folds; the baselines alone."""

from __future__ import annotations

import numpy as np
import pytest

from fluxbridge.errors import InputError
from fluxbridge.training import cross_validate, crossval, ensemble, make_folds, train_baseline


def test_cross_validation_uses_identical_folds(world, configure, monkeypatch):
    seen: dict[tuple[str, int], set[str]] = {}
    real_network, real_baseline = ensemble.train_network, crossval.train_baseline

    def spy_network(samples, cfg, *, train_sites, val_sites=None, name="nn", **kw):
        fold = int(name.split(" fold ")[1].split("/")[0]) - 1  # "site_only fold 2/3"
        seen[("nn", fold)] = set(train_sites) | set(val_sites or [])
        return real_network(samples, cfg, train_sites=train_sites, val_sites=val_sites,
                            name=name, **kw)

    def spy_baseline(kind, samples, cfg, *, train_sites, **kw):
        fold = len([k for k in seen if k[0] == kind])
        seen[(kind, fold)] = set(train_sites)
        return real_baseline(kind, samples, cfg, train_sites=train_sites, **kw)

    monkeypatch.setattr(ensemble, "train_network", spy_network)
    monkeypatch.setattr(crossval, "train_baseline", spy_baseline)
    folds = make_folds(world.samples, 3, "site", seed=0)
    cfg = configure(network={"epochs": 1},
                    tuning={"baselines": {"rf_n_estimators": 5, "xgb_n_estimators": 5}})
    out = cross_validate(world.samples, cfg, kinds=("nn", "rf", "xgboost"), folds=folds,
                         progress=False)
    for f in range(3):
        held_out = set(folds.index[folds == f])
        assert seen[("nn", f)] == seen[("rf", f)] == seen[("xgboost", f)]
        assert not seen[("nn", f)] & held_out
        assert seen[("nn", f)] | held_out == set(folds.index)
    assert out[["nn", "rf", "xgboost"]].notna().all().all()
    assert (out["fold"].to_numpy() == folds.loc[out["site"]].to_numpy()).all()
    assert len(out) == int(np.isfinite(world.samples["nee"]).sum())


def test_cross_validation_folds_default_to_validation_folds(world, configure):
    """Without folds, ``validation.folds`` site folds of the configuration's seed."""
    cfg = configure(validation={"folds": 4},
                    tuning={"baselines": {"rf_n_estimators": 2, "n_jobs": 1}})
    out = cross_validate(world.samples, cfg, kinds=("rf",), progress=False)
    expected = make_folds(world.samples, 4, "site", cfg.seed)
    assert (out["fold"].to_numpy() == expected.loc[out["site"]].to_numpy()).all()
    assert out["rf"].notna().all()


def test_baseline_predicts_site_nee(world, sites, small, configure):
    model = train_baseline("xgboost", world.samples,
                           configure(tuning={"baselines": {"xgb_n_estimators": 30}}),
                           train_sites=sites)
    pred = model.predict_frame(world.samples)
    r = np.corrcoef(pred, world.samples["nee"])[0, 1]
    assert r > 0.8
    with pytest.raises(InputError, match="baseline"):
        train_baseline("svm", world.samples, small, train_sites=sites)


def test_network_column_is_the_mean_of_the_ensemble_members(world, configure, monkeypatch):
    """Each fold's network prediction is the average of its members' own predictions."""
    members: dict[int, list] = {}
    real_network = ensemble.train_network

    def spy_network(samples, cfg, *, name="nn", **kw):
        model = real_network(samples, cfg, name=name, **kw)
        members.setdefault(int(name.split(" fold ")[1].split("/")[0]) - 1, []).append(model)
        return model

    monkeypatch.setattr(ensemble, "train_network", spy_network)
    folds = make_folds(world.samples, 2, "site", seed=0)
    cfg = configure(network={"epochs": 1, "n_ensemble": 3})
    out = cross_validate(world.samples, cfg, kinds=("nn",), folds=folds, progress=False)
    data = world.samples[np.isfinite(world.samples["nee"])].reset_index(drop=True)
    for f, fitted in members.items():
        assert len(fitted) == 3
        test = (out["fold"] == f).to_numpy()
        each = np.array([m.predict_frame(data[test]) for m in fitted])
        assert np.ptp(each, axis=0).max() > 0  # members differ, so the mean is a real test
        np.testing.assert_allclose(out.loc[test, "nn"], each.mean(axis=0), rtol=1e-6)


def test_cost_per_fold_is_recorded_by_model(world, configure, monkeypatch):
    """Each model's mean seconds per fold, the network under its run name (site_only)."""
    import itertools
    import types

    clock = itertools.count(step=2.5)  # every reading 2.5 s after the last
    monkeypatch.setattr(crossval, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    folds = make_folds(world.samples, 2, "site", seed=0)
    cfg = configure(network={"epochs": 1}, tuning={"baselines": {"rf_n_estimators": 5}})
    out = cross_validate(world.samples, cfg, kinds=("nn", "rf"), folds=folds, progress=False)
    assert out.attrs["seconds_per_fold"] == {"site_only": 2.5, "rf": 2.5}
