"""Training: the regional term helps, λ = 0 changes nothing, resume, folds, identical CV folds."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from method_world import World, make_world

from fluxbridge import training
from fluxbridge.errors import InputError
from fluxbridge.operators import squared_error
from fluxbridge.operators.cache import GROUP_SIZE_AT_2DEG, default_group_size
from fluxbridge.training import (
    TrainingInterrupted,
    TrainSettings,
    cross_validate,
    make_folds,
    train_baseline,
    train_ensemble,
    train_network,
)

SMALL = TrainSettings(width=16, depth=2, embed_dim=3, epochs=12, batch_size=512, lr=5e-3,
                      patience=100, K=16, obs_per_step=16, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def sites(world) -> list[str]:
    return sorted(world.samples["site"].unique())


def _regional_rmse(world: World, model) -> float:
    from fluxbridge.studies.grid_totals import grid_field

    pred = grid_field(model, world.grid).astype(np.float64)  # grid offsets included
    diff = world.operator.exact(pred) - world.operator.exact(world.truth)
    return float(np.sqrt(np.mean(diff**2)))


def _weights(model) -> dict[str, torch.Tensor]:
    return model.estimator.state_dict()


def _fit(world, sites, settings, **kw):
    return train_network(world.samples, settings, train_sites=sites, grid=world.grid,
                         targets=world.targets, regions=world.regions, progress=False, **kw)


@pytest.mark.parametrize(("estimator", "grid_offset"), [
    ("control_variate", True), ("resampled", True), ("control_variate", False)])
def test_regional_term_reduces_regional_error(world, sites, estimator, grid_offset):
    site_only = _fit(world, sites, SMALL)
    dual = _fit(world, sites, dataclasses.replace(SMALL, lambda_regional=1.0,
                                                  estimator=estimator, grid_offset=grid_offset))
    assert _regional_rmse(world, dual) < 0.5 * _regional_rmse(world, site_only)


def test_grid_offset_applies_to_grid_cells_only(world, sites):
    dual = _fit(world, sites, dataclasses.replace(SMALL, lambda_regional=1.0, epochs=4))
    net = dual.estimator
    assert net.offset is not None and float(net.offset.weight.abs().sum()) > 0
    X = world.grid.values[:3].reshape(-1, world.grid.values.shape[-1])
    codes = np.tile(world.grid.igbp_code, 3)
    towers = dual.predict_arrays(X, codes)
    region = np.tile(world.grid.region, 3)
    doy = np.repeat(np.arange(1, 4), world.grid.values.shape[1])
    cells = dual.predict_arrays(X, codes, region=region, dayofyear=doy)
    expected = net.grid_offset(torch.as_tensor(region), torch.as_tensor(doy)).detach().numpy()
    np.testing.assert_allclose(cells - towers, expected, atol=1e-5)
    assert np.any(np.abs(expected) > 0)


def test_lambda_zero_changes_nothing(world, sites):
    with_operator = _fit(world, sites, dataclasses.replace(SMALL, epochs=3))
    without = train_network(world.samples, dataclasses.replace(SMALL, epochs=3),
                            train_sites=sites, progress=False)
    for key, value in _weights(with_operator).items():
        torch.testing.assert_close(value, _weights(without)[key], rtol=0, atol=0)


@pytest.mark.parametrize("refresh_std", [0.0, 1e-9])
def test_resume_after_interruption_gives_same_weights(world, sites, tmp_path, refresh_std):
    """Also with the control variate's cache refreshed within epochs (refresh_std tiny and a
    daily cache of small groups without dropout: its spread grows after each refresh from
    the floor measured at the refresh, which the history records)."""
    settings = dataclasses.replace(SMALL, epochs=5, lambda_regional=1.0, refresh_every=2,
                                   estimator="control_variate",
                                   dropout=0.0 if refresh_std else 0.1,
                                   refresh_std=refresh_std, batch_size=128,
                                   cache_features="daily" if refresh_std else "monthly",
                                   cache_group_size=4 if refresh_std else 1)
    fit, val = sites[:-5], sites[-5:]
    reference = _fit(world, fit, settings, val_sites=val)
    with pytest.raises(TrainingInterrupted):
        _fit(world, fit, settings, val_sites=val, checkpoint_dir=tmp_path, stop_after_epochs=3)
    assert (tmp_path / training.CHECKPOINT_NAME).exists()
    resumed = _fit(world, fit, settings, val_sites=val, checkpoint_dir=tmp_path)
    assert resumed.provenance["epochs_run"] == 5
    assert resumed.provenance["history"] == reference.provenance["history"]
    refreshes = [h["refreshes"] for h in resumed.provenance["history"]]
    assert all(refreshes[e] >= 1 for e in (0, 2, 4))  # the schedule's, counted
    if refresh_std > 0:  # within epochs too, beyond the schedule's (epochs 0, 2, 4)
        assert refreshes[1] + refreshes[3] >= 1
    for key, value in _weights(reference).items():
        torch.testing.assert_close(value, _weights(resumed)[key], rtol=0, atol=0)
    # a finished run is not retrained, and a different configuration is refused
    again = _fit(world, fit, settings, val_sites=val, checkpoint_dir=tmp_path)
    torch.testing.assert_close(_weights(again), _weights(resumed), rtol=0, atol=0)
    with pytest.raises(InputError, match="checkpoint"):
        _fit(world, fit, dataclasses.replace(settings, lr=1e-4), val_sites=val,
             checkpoint_dir=tmp_path)


def test_early_stopping_keeps_best_epoch(world, sites):
    settings = dataclasses.replace(SMALL, epochs=6, patience=1, lr=0.3)
    model = _fit(world, sites[:-5], settings, val_sites=sites[-5:])
    history = model.provenance["history"]
    vals = [h["val"] for h in history]
    assert model.provenance["best_epoch"] == int(np.argmin(vals)) + 1
    assert len(history) <= settings.epochs


def test_regional_term_needs_its_inputs(world, sites):
    with pytest.raises(InputError, match="targets"):
        train_network(world.samples, dataclasses.replace(SMALL, lambda_regional=1.0),
                      train_sites=sites, grid=world.grid, regions=world.regions,
                      progress=False)


def test_normaliser_uses_training_sites_only(world, sites):
    model = train_network(world.samples, dataclasses.replace(SMALL, epochs=1),
                          train_sites=sites[:5], progress=False)
    rows = world.samples[world.samples["site"].isin(sites[:5])]
    np.testing.assert_allclose(model.normaliser.mean, rows[list(model.feature_names)].mean(),
                               rtol=1e-5)


def test_ensemble_members_differ_by_seed(world, sites):
    members = train_ensemble(world.samples, dataclasses.replace(SMALL, epochs=1, n_ensemble=2),
                             train_sites=sites, progress=False)
    assert [m.provenance["seed"] for m in members] == [0, 1]
    a, b = (_weights(m) for m in members)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert all(len(m.provenance["val_sites"]) > 0 for m in members)


def test_site_folds_partition_sites(world):
    folds = make_folds(world.samples, 5, "site", seed=1)
    assert sorted(folds.index) == sorted(world.samples["site"].unique())
    assert set(folds) == set(range(5))
    counts = folds.value_counts()
    assert counts.max() - counts.min() <= 1
    assert make_folds(world.samples, 5, "site", seed=2).tolist() != folds.tolist()


def test_spatial_folds_keep_blocks_together(world):
    folds = make_folds(world.samples, 3, "spatial", seed=0, block_deg=30.0)
    meta = world.samples.drop_duplicates("site").set_index("site")
    block = (np.floor(meta["lat"] / 30).astype(int).astype(str) + "/"
             + np.floor(meta["lon"] / 30).astype(int).astype(str))
    per_block = pd.DataFrame({"block": block, "fold": folds.loc[meta.index]})
    assert per_block.groupby("block")["fold"].nunique().max() == 1
    with pytest.raises(InputError, match="blocks"):
        make_folds(world.samples, 50, "spatial", block_deg=90.0)


def test_cross_validation_uses_identical_folds(world, monkeypatch):
    seen: dict[tuple[str, int], set[str]] = {}
    real_network, real_baseline = training.train_network, training.train_baseline

    def spy_network(samples, settings, *, train_sites, val_sites=None, name="nn", **kw):
        fold = int(name.removeprefix("nn_fold"))
        seen[("nn", fold)] = set(train_sites) | set(val_sites or [])
        return real_network(samples, settings, train_sites=train_sites, val_sites=val_sites,
                            name=name, **kw)

    def spy_baseline(kind, samples, settings, *, train_sites, **kw):
        fold = len([k for k in seen if k[0] == kind])
        seen[(kind, fold)] = set(train_sites)
        return real_baseline(kind, samples, settings, train_sites=train_sites, **kw)

    monkeypatch.setattr(training, "train_network", spy_network)
    monkeypatch.setattr(training, "train_baseline", spy_baseline)
    folds = make_folds(world.samples, 3, "site", seed=0)
    settings = dataclasses.replace(SMALL, epochs=1, rf_n_estimators=5, xgb_n_estimators=5)
    out = cross_validate(world.samples, settings, kinds=("nn", "rf", "xgboost"), folds=folds,
                         progress=False)
    for f in range(3):
        held_out = set(folds.index[folds == f])
        assert seen[("nn", f)] == seen[("rf", f)] == seen[("xgboost", f)]
        assert not seen[("nn", f)] & held_out
        assert seen[("nn", f)] | held_out == set(folds.index)
    assert out[["nn", "rf", "xgboost"]].notna().all().all()
    assert (out["fold"].to_numpy() == folds.loc[out["site"]].to_numpy()).all()
    assert len(out) == int(np.isfinite(world.samples["nee"]).sum())


def test_baseline_predicts_site_nee(world, sites):
    model = train_baseline("xgboost", world.samples,
                           dataclasses.replace(SMALL, xgb_n_estimators=30), train_sites=sites)
    pred = model.predict_frame(world.samples)
    r = np.corrcoef(pred, world.samples["nee"])[0, 1]
    assert r > 0.8
    with pytest.raises(InputError, match="baseline"):
        train_baseline("svm", world.samples, SMALL, train_sites=sites)


def test_cell_inputs_equal_normalised_grid_take(world, sites):
    """The torch path of the step gives the numbers of Normaliser.transform(grid.take(...))."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    grid = world.grid
    rng = np.random.default_rng(3)
    ti = rng.integers(0, grid.times.size, 500)
    ci = rng.integers(0, grid.n_cell, 500)
    X, igbp = grid.take(ti, ci)
    x, c = trainer.cell_inputs(ti, ci)
    np.testing.assert_array_equal(x.numpy(), trainer.normaliser.transform(X))
    np.testing.assert_array_equal(c.numpy(), igbp)
    region = torch.as_tensor(grid.region[ci])
    doy = torch.as_tensor(pd.DatetimeIndex(grid.times).day_of_year.to_numpy()[ti])
    with torch.no_grad():
        expected = trainer.model(torch.from_numpy(trainer.normaliser.transform(X)),
                                 torch.as_tensor(igbp)) + trainer.model.grid_offset(region, doy)
        torch.testing.assert_close(trainer.predict_cells(ti, ci), expected, rtol=0, atol=0)
    with pytest.raises(IndexError):
        trainer.cell_inputs(np.array([grid.times.size]), np.array([0]))


@pytest.mark.parametrize("harmonics", [1, 2])
def test_offset_fit_recovers_known_offsets_and_leaves_untargeted_regions(world, sites,
                                                                          harmonics):
    """Targets made from the network plus known offsets: the least-squares fit finds them."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, offset_harmonics=harmonics)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    weight = trainer.model.offset.weight
    n_regions = weight.shape[0] - 1
    rng = np.random.default_rng(5)
    assert weight.shape[1] == 1 + 2 * harmonics
    known = torch.as_tensor(rng.normal(0, 0.3, (n_regions, weight.shape[1])), dtype=weight.dtype)
    with torch.no_grad():
        weight[1:] = known
    op = trainer.operator
    exact = op.exact(trainer.predict_grid())  # daily, offsets included
    keep_out = int(world.grid.region[0])  # a region whose targets are withheld
    mean = np.where(op.obs_index["region"].to_numpy() == keep_out, np.nan, exact)
    spread = np.full(op.n_obs, np.nan)
    spread[trainer.obs_ids] = trainer.sigma
    targets = op.to_dataarray(mean).to_dataset(name="nee_mean")
    targets["nee_spread"] = op.to_dataarray(spread)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=targets, regions=world.regions)  # the same network
    weight = trainer.model.offset.weight
    start = known.clone()
    start[np.arange(n_regions) != keep_out - 1] = 0.0
    with torch.no_grad():
        weight[1:] = start
    result = trainer.fit_offsets(K=256)
    assert result["regional_before"] > 100 * result["regional_after"]
    fitted = weight[1:].detach()
    torch.testing.assert_close(fitted[keep_out - 1], known[keep_out - 1], rtol=0, atol=0)
    others = np.arange(n_regions) != keep_out - 1
    assert float((fitted[others] - known[others]).abs().max()) < 0.05 * float(known.abs().max())


def test_missing_features_are_masked_and_counted_never_in_the_loss(world, sites):
    """NaN in gridded predictors and in site samples: the rows and cell-days are left out of
    both loss terms (not imputed), and the counts are reported."""
    grid = dataclasses.replace(world.grid, values=world.grid.values.copy())
    rng = np.random.default_rng(4)
    gaps = rng.random(grid.values.shape[:2]) < 0.1
    grid.values[gaps, 5 % grid.values.shape[2]] = np.nan
    samples = world.samples.copy()
    feature = grid.feature_names[0]
    holes = rng.random(len(samples)) < 0.05
    samples.loc[holes, feature] = np.nan
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, epochs=2)
    trainer = training.Trainer(samples, settings, train_sites=sites, grid=grid,
                               targets=world.targets, regions=world.regions)
    finite_nee = np.isfinite(samples["nee"].to_numpy())
    assert trainer.masked["site_samples"] == int(np.count_nonzero(holes & finite_nee))
    assert trainer.x.shape[0] == int(np.count_nonzero(~holes & finite_nee))
    in_regions = world.operator.matrix.getnnz(axis=0).reshape(gaps.shape) > 0
    assert trainer.masked["grid_cell_days"] == int(np.count_nonzero(gaps & in_regions))
    # a field that is wild where features are missing totals as if it were zero there
    field = np.where(gaps, 1e9, world.truth)
    np.testing.assert_allclose(trainer.operator.exact(field),
                               world.operator.exact(np.where(gaps, 0.0, world.truth)),
                               rtol=1e-12)
    # sampled columns never fall on a masked cell-day
    sample = trainer.estimator.draw(trainer.obs_ids, np.random.default_rng(0))
    assert not gaps.ravel()[sample.col].any()
    trainer.refresh_cache()
    losses = trainer.epoch()
    assert np.isfinite(losses["site"]) and np.isfinite(losses["regional"])
    model = train_network(samples, settings, train_sites=sites, grid=grid,
                          targets=world.targets, regions=world.regions, progress=False)
    assert model.provenance["masked_for_missing_features"] == trainer.masked
    rf = train_baseline("rf", samples, dataclasses.replace(SMALL, rf_n_estimators=5),
                        train_sites=sites)
    assert rf.provenance["masked_for_missing_features"]["site_samples"] == \
        trainer.masked["site_samples"]


@pytest.mark.parametrize("estimator", ["fixed", "resampled"])
def test_offset_fit_sees_the_grid_only_through_the_training_estimator(world, sites, estimator):
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, estimator=estimator, K=8)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    seen: list[np.ndarray] = []
    predict = trainer._predict_columns

    def recording(col, **kwargs):
        seen.append(np.asarray(col))
        return predict(col, **kwargs)

    trainer._predict_columns = recording
    trainer.fit_offsets(K=64)
    columns = np.concatenate(seen)
    per_obs = columns.size / trainer.obs_ids.size
    if estimator == "fixed":  # its one draw, nothing else
        fixed = trainer.estimator.draw(trainer.obs_ids)
        assert set(columns) == set(fixed.col) and per_obs == pytest.approx(8)
    else:  # independent draws of K until about 64 cell-days per region-month
        assert per_obs == pytest.approx(64)


def test_daily_cell_cache_makes_the_control_variate_exact(world, sites):
    """Cache refreshed daily per cell from the current model: every draw gives the exact
    totals (the sampled correction f − g is zero)."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, cache_features="daily", K=4,
                                   cache_group_size=1)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    with torch.no_grad():
        trainer.model.offset.weight.normal_(0, 0.2)
    trainer.refresh_cache()
    exact = trainer.operator.exact(trainer.predict_grid())[trainer.obs_ids]
    sample = trainer.estimator.draw(trainer.obs_ids, np.random.default_rng(0))
    with torch.no_grad():
        pred, xs = trainer._predict_columns(sample.col, offset=False)
        got = trainer.totals(pred.double(), np.arange(trainer.obs_ids.size), sample, xs)[0]
    np.testing.assert_allclose(got.numpy(), exact, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("estimator", ["fixed", "resampled", "control_variate"])
def test_grid_offset_totals_are_exact_and_add_no_sampling_noise(world, sites, estimator):
    """The offset's totals from its design equal H·(offset field); for the same draw, the
    sampled totals with and without an offset differ by exactly those totals."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, estimator=estimator, K=4,
                                   offset_harmonics=2)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    if trainer.estimator.needs_cache():
        trainer.refresh_cache()
    pick = np.arange(trainer.obs_ids.size)
    sample = trainer.estimator.draw(trainer.obs_ids, np.random.default_rng(2))
    with torch.no_grad():
        pred, xs = trainer._predict_columns(sample.col, offset=False)
        without = trainer.totals(pred.double(), pick, sample, xs)
        trainer.model.offset.weight.normal_(0, 0.5)
        with_offset = trainer.totals(pred.double(), pick, sample, xs)
        field = trainer.predict_grid() - trainer.predict_grid(offset=False)
    offset_totals = trainer.operator.exact(field)[trainer.obs_ids]
    assert np.abs(offset_totals).max() > 0
    np.testing.assert_allclose((with_offset - without)[0].numpy(), offset_totals,
                               rtol=1e-5, atol=1e-6 * np.abs(offset_totals).max())


def _cv_draws(trainer, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Control-variate estimates of the trainer's model over ``n`` draws, and exact totals."""
    exact = trainer.operator.exact(trainer.predict_grid())[trainer.obs_ids]
    rng = np.random.default_rng(1)
    draws = []
    with torch.no_grad():
        for _ in range(n):
            sample = trainer.estimator.draw(trainer.obs_ids, rng)
            pred, xs = trainer._predict_columns(sample.col, offset=False)
            draws.append(trainer.totals(pred.double(), np.arange(trainer.obs_ids.size), sample,
                                        xs)[0].numpy())
    return np.array(draws), exact


def test_first_order_cache_is_unbiased_and_tighter_than_the_group_mean(world, sites):
    """The first-order monthly cache (group value + input gradient × departure) keeps the
    control variate unbiased and, following the days' weather, halves its spread at least."""
    spread = {}
    for linear in (False, True):
        settings = dataclasses.replace(SMALL, lambda_regional=1.0, K=8, cache_linear=linear)
        trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                                   targets=world.targets, regions=world.regions)
        trainer.refresh_cache()
        draws, exact = _cv_draws(trainer)
        se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se + 1e-3 * np.abs(exact))
        spread[linear] = float(np.median(draws.std(axis=0)))
    assert spread[True] < 0.5 * spread[False]


@pytest.mark.parametrize(("features", "size"), [("monthly", 4), ("daily", 16)])
def test_grouped_cache_entries_are_similar_pairs_of_one_class_and_stay_unbiased(
        world, sites, features, size):
    """With cache_group_size, (time group, cell) pairs of one vegetation class (daily: and one
    month) share an entry (at most that many), the entries are tighter in the network's inputs
    than random groups of the same sizes, the cache is constant over an entry, and the control
    variate stays unbiased for the model's exact totals."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, cache_features=features,
                                   cache_group_size=size, K=8, cache_linear=False)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    trainer.refresh_cache()
    groups = trainer.cache_groups()
    grid = world.grid
    entry = groups.entry
    n_tg = 12 if features == "monthly" else grid.times.size
    assert entry.shape == (n_tg, grid.n_cell)
    counts = np.bincount(entry.ravel())
    assert counts.min() >= 1 and counts.max() <= size and counts.size < entry.size / 2
    np.testing.assert_array_equal(groups.igbp[entry], np.broadcast_to(grid.igbp_code,
                                                                      entry.shape))
    if features == "daily":  # an entry never spans two months
        month = pd.DatetimeIndex(grid.times).month.to_numpy()
        per_entry = np.zeros(counts.size, dtype=np.int64)
        per_entry[entry.ravel()] = np.repeat(month, grid.n_cell)
        assert np.all(per_entry[entry] == month[:, None])
        means = grid.values
    else:
        means = np.stack([np.nanmean(grid.values[groups.time_group == m], axis=0)
                          for m in range(12)])
    member = trainer._normalised(means.reshape(-1, grid.values.shape[2])).numpy()
    spread = np.mean((member - trainer._cache_center()[entry.ravel()]) ** 2)
    shuffled = np.random.default_rng(0).permutation(entry.ravel())
    centres = np.stack([np.bincount(shuffled, member[:, j]) / np.bincount(shuffled)
                        for j in range(member.shape[1])], axis=1)
    assert spread < 0.5 * np.mean((member - centres[shuffled]) ** 2)
    cols = np.arange(grid.times.size * grid.n_cell)
    cache = trainer.estimator.cached(cols)
    t, c = np.divmod(cols, grid.n_cell)
    key = entry[groups.time_group[t], c]
    assert all(np.ptp(cache[key == k]) == 0 for k in range(0, counts.size, 97))
    draws, exact = _cv_draws(trainer)
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se + 1e-3 * np.abs(exact))


def test_offset_fit_matches_each_regions_total_exactly(world, sites):
    """With offset_match_totals the fitted model's total over each region's target months is
    the targets' total; without, the σ-weighted fit leaves a residual."""
    residual = {}
    for match in (True, False):
        settings = dataclasses.replace(SMALL, lambda_regional=1.0, estimator="exact",
                                       offset_match_totals=match, offset_harmonics=1)
        trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                                   targets=world.targets, regions=world.regions)
        trainer.fit_offsets(K=64)
        totals = trainer.operator.exact(trainer.predict_grid())[trainer.obs_ids]
        mu = trainer.mu
        region = trainer.operator.obs_index["region"].to_numpy()[trainer.obs_ids]
        residual[match] = np.array([(totals - mu)[region == r].sum() for r in np.unique(region)])
        scale = np.array([np.abs(mu[region == r]).sum() for r in np.unique(region)])
    np.testing.assert_allclose(residual[True], 0.0, atol=1e-4 * scale.max())
    assert np.abs(residual[False]).max() > 1e-3 * scale.max()


def test_control_variate_refreshes_when_its_own_variance_estimate_says_so(world, sites):
    """The rule refreshes when the last window's mean estimate variance exceeds refresh_std²
    times the larger of 1 and the window's mean regional error, and its median exceeds twice
    the variance a fresh cache leaves (its floor); never below the limit, never when a refresh
    cannot help (the variance stays where a refresh leaves it, or only a few steps are noisy),
    nor when the misfit dwarfs the noise, nor before a floor is known, nor when off. In
    training, the step reports the variance estimate, zero right after a refresh of a daily
    cache (the model is its own cache), as the floor measured at the refresh."""
    w = training.REFRESH_WINDOW
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, refresh_std=0.1, K=8,
                                   cache_features="daily", cache_group_size=1)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    calls = []

    def feed(values, misfit=0.0, floor=0.004):
        calls.clear()
        trainer._noise, trainer._misfit, trainer.cache_floor = [], [], floor
        trainer.refresh_cache = lambda: (calls.append(len(trainer._noise)),
                                         trainer._noise.clear(), trainer._misfit.clear(),
                                         setattr(trainer, "cache_floor", floor))
        for v in values:
            trainer._refresh_if_noisy(v, misfit)
        return list(calls)

    def first(values, limit, floor=0.004):  # the first refresh the rule's definition calls for
        return next(k for k in range(w - 1, len(values))
                    if np.mean(values[k - w + 1:k + 1]) > limit
                    and np.median(values[k - w + 1:k + 1]) > 2 * floor) + 1

    assert feed([0.005] * 5 * w) == []  # below 0.1² throughout
    assert feed([0.5] * 5 * w, floor=0.5) == []  # above, but a refresh leaves it there
    spiky = [0.2 if k % 10 == 9 else 0.004 for k in range(5 * w)]  # mean 0.024, median 0.004
    assert feed(spiky) == []  # a few noisy steps: the typical step is at the floor
    growing = list(0.001 * np.arange(1, 5 * w))
    assert feed(growing, floor=0.001)[:1] == [first(growing, 0.01, floor=0.001)]
    assert feed(growing, floor=0.003)[:1] == [first(growing, 0.01, floor=0.003)]
    assert feed(growing, misfit=100.0) == []  # noise of 0.05 σ² against a misfit of 100 σ²
    assert feed(growing, misfit=3.0)[:1] == [first(growing, 0.03)]
    assert feed(growing, floor=None) == []
    trainer.settings = dataclasses.replace(settings, refresh_std=0.0)
    assert feed(growing) == []
    del trainer.refresh_cache
    trainer.settings = settings
    trainer.refresh_cache()
    rng = np.random.default_rng(0)
    noise = [trainer.step(torch.as_tensor(rng.choice(trainer.x.shape[0], 256, replace=False)))
             ["estimate_var"] for _ in range(3)]
    assert noise[0] < 1e-6 * max(noise[1:]) and min(noise) >= 0
    assert 0 <= trainer.cache_floor < 1e-6 * max(noise[1:])


def test_cache_floor_is_the_steps_variance_statistic_at_a_fresh_cache(world, sites, monkeypatch):
    """The floor measured at a refresh is the median step variance of per-region-month
    variances that average to the step's own statistic on the same draws (the network equal
    to its fresh cache); its draws come from their own generator and leave the training draws
    as they were."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, K=8, obs_per_step=4)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    seen = []
    median = training.median_step_variance
    monkeypatch.setattr(training, "median_step_variance",
                        lambda v, n, rng: seen.append((v, n)) or median(v, n, rng))
    draws = trainer.obs_rng.bit_generator.state
    floor_rng = np.random.default_rng()
    floor_rng.bit_generator.state = trainer.floor_rng.bit_generator.state
    trainer.refresh_cache()
    assert trainer.obs_rng.bit_generator.state == draws
    (variance, n), = seen
    assert n == 4 and trainer.cache_floor > 0
    pick = floor_rng.choice(trainer.obs_ids.size, replace=False,
                            size=min(trainer.obs_ids.size, training.FLOOR_TARGETS))
    sample = trainer.estimator.draw(trainer.obs_ids[pick], floor_rng)
    xs, cs = trainer.column_inputs(sample.col)
    with torch.no_grad():
        noise = trainer.regional_error(trainer.model(xs, cs), pick, sample, xs)[2]
    assert variance.size == pick.size and np.mean(variance) == pytest.approx(noise, rel=1e-9)


def test_median_step_variance_is_the_median_over_every_step():
    """Against every n-subset of a small pool: the median of their means (15 distinct means
    of which the 8th is the median by a margin that 20000 resamples cannot miss); a constant
    pool gives its value, and steps as large as the pool its mean."""
    pool = np.array([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    means = sorted(np.mean(pair) for pair in itertools.combinations(pool, 2))
    rng = np.random.default_rng(3)
    assert training.median_step_variance(pool, 2, rng, resamples=20000) == means[7]
    assert training.median_step_variance(np.full(9, 0.25), 3, rng) == pytest.approx(0.25)
    assert training.median_step_variance(pool, 6, rng) == pytest.approx(pool.mean())
    assert training.median_step_variance(pool, 10, rng) == pytest.approx(pool.mean())


@pytest.mark.parametrize(("square", "grid_offset"), [("unbiased", True), ("plain", False)])
def test_step_gradient_equals_autograd_through_the_estimate(world, sites, square, grid_offset):
    """The step pushes the regional term's gradient in closed form; it equals autograd's
    gradient of site loss + λ × regional loss through the differentiable estimate (the
    network's share scaled by regional_to_network when there are offsets; the cache's drift
    fit a constant of the step)."""
    settings = dataclasses.replace(SMALL, lambda_regional=0.7, K=8, square=square,
                                   grid_offset=grid_offset, regional_to_network=0.3)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    trainer.refresh_cache()
    with torch.no_grad():  # the network moved since the refresh: the drift fit is in play
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        if grid_offset:
            trainer.model.offset.weight.normal_(0, 0.3)
    assert np.abs(trainer.drift_coef()).max() > 0
    idx = torch.arange(300)
    pick, sample, xs, cs = trainer.draw()
    trainer._ahead.append((pick, sample, xs, cs))  # the step takes this very draw
    x, c, y, w = trainer.x[idx], trainer.c[idx], trainer.y[idx], trainer.w[idx]
    trainer.optimizer.zero_grad()
    site = (w * (trainer.model(x, c) - y) ** 2).mean() / trainer.s_y**2
    cells = trainer.model(xs, cs)
    if grid_offset:
        a = settings.regional_to_network
        cells = a * cells + (1 - a) * cells.detach()
    est = trainer.totals(cells, pick, sample, xs)
    mu, sigma = (torch.as_tensor(a[pick]) for a in (trainer.mu, trainer.sigma))
    reg = (squared_error(est, mu) / sigma**2).mean()
    (site + settings.lambda_regional * reg).backward()
    expected = {k: p.grad.clone() for k, p in trainer.model.named_parameters()
                if p.grad is not None}
    trainer.optimizer.step = lambda: None  # keep the gradients, skip the update
    losses = trainer.step(idx)
    assert losses["regional"] == pytest.approx(float(reg), rel=1e-5)
    for k, p in trainer.model.named_parameters():
        if k in expected:
            scale = float(expected[k].abs().max())
            torch.testing.assert_close(p.grad, expected[k], rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(("every", "expected"), [(0, [1, 0, 0]), (1, [1, 1, 1]),
                                                 (2, [1, 0, 1])])
def test_scheduled_refreshes_follow_refresh_every_and_zero_keeps_only_the_first(
        world, sites, every, expected):
    settings = dataclasses.replace(SMALL, epochs=3, lambda_regional=1.0, refresh_std=0.0,
                                   refresh_every=every, estimator="control_variate")
    model = _fit(world, sites, settings)
    assert [h["refreshes"] for h in model.provenance["history"]] == expected


def test_default_cache_group_size_grows_with_the_grids_linear_resolution(world, sites):
    """64 cell-days at 2 degrees (and on a grid of unknown spacing); halving the spacing
    doubles the size, so an entry spans about as many degrees of the grid."""
    def size(resolution):
        return default_group_size(dataclasses.replace(world.grid, resolution_deg=resolution))

    assert size(2.0) == size(None) == GROUP_SIZE_AT_2DEG
    for resolution in (4.0, 1.0, 0.5, 0.25):
        assert size(resolution) * resolution == pytest.approx(2.0 * GROUP_SIZE_AT_2DEG)
    trainer = training.Trainer(world.samples, dataclasses.replace(
        SMALL, lambda_regional=1.0, cache_group_size=None), train_sites=sites,
        grid=world.grid, targets=world.targets, regions=world.regions)
    groups = trainer.cache_groups()
    assert np.bincount(groups.entry.ravel()).max() <= default_group_size(world.grid)


@pytest.mark.parametrize("per_class", [False, True])
def test_drift_fit_recovers_a_drift_linear_in_the_inputs(world, sites, monkeypatch, per_class):
    """A change of the network at the probes that is exactly ``β · [1, x]`` is fitted back to
    β: shared by all classes, for every class (the shrinkage of the classes' departures costs
    nothing there); per class, without the shrinkage, for every class slot with enough probes
    to determine it."""
    if per_class:
        monkeypatch.setattr(training, "DRIFT_SHRINK", 0.0)
    trainer = training.Trainer(world.samples, dataclasses.replace(SMALL, lambda_regional=1.0),
                               train_sites=sites, grid=world.grid, targets=world.targets,
                               regions=world.regions)
    trainer.refresh_cache()
    probes = trainer._drift_probes()
    n_slot, m = probes["shape"]
    rng = np.random.default_rng(2)
    beta = rng.normal(0, 1, (n_slot, m)) if per_class else np.tile(rng.normal(0, 1, m),
                                                                    (n_slot, 1))
    x = probes["x"].numpy().astype(np.float64)
    drift = beta[probes["slot"], 0] + (x * beta[probes["slot"], 1:]).sum(axis=1)
    trainer._probe_base = trainer._probe_values() - drift
    reached = (np.flatnonzero(np.bincount(probes["slot"]) >= 2 * m) if per_class
               else np.arange(n_slot))
    assert reached.size > 1
    np.testing.assert_allclose(trainer.drift_coef()[reached], beta[reached], rtol=1e-3,
                               atol=1e-3)  # the ridges' bias: 2e-5 here


def test_drift_design_holds_the_exact_totals_of_its_basis_fields(world, sites):
    """Column (class slot s, coordinate j) of the drift design is H·(the field [1, x]_j on
    the cells of class s, zero elsewhere), for the trainer's normalised inputs x (to the
    float32 precision of those inputs: the design normalises the raw totals in float64)."""
    trainer = training.Trainer(world.samples, dataclasses.replace(SMALL, lambda_regional=1.0),
                               train_sites=sites, grid=world.grid, targets=world.targets,
                               regions=world.regions)
    design = trainer.drift_design()
    grid = world.grid
    t, c = (a.ravel() for a in np.meshgrid(np.arange(grid.times.size), np.arange(grid.n_cell),
                                           indexing="ij"))
    x = trainer.cell_inputs(t, c)[0].double().numpy()
    slot = np.unique(grid.igbp_code, return_inverse=True)[1][c]
    m = 1 + x.shape[1]
    assert design.shape == (trainer.obs_ids.size, (slot.max() + 1) * m)
    for s in (0, int(slot.max())):
        for j in range(m):
            z = np.ones(t.size) if j == 0 else x[:, j - 1]
            field = np.where(slot == s, z, 0.0).reshape(grid.times.size, grid.n_cell)
            expected = trainer.operator.exact(field)[trainer.obs_ids]
            np.testing.assert_allclose(design[:, s * m + j], expected, rtol=1e-6,
                                       atol=1e-6 * np.abs(expected).max())


def test_drift_corrected_control_variate_is_unbiased_whatever_the_fit(world, sites):
    """Any drift coefficients shift each draw's estimate (the same draws) and leave the mean
    over draws at the exact totals."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, K=8)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    trainer.refresh_cache()
    plain, exact = _cv_draws(trainer)
    n_slot = np.unique(world.grid.igbp_code).size
    m = 1 + len(trainer.features)
    coef = np.random.default_rng(4).normal(0, 1.0, (n_slot, m))
    trainer.drift_coef = lambda: coef
    shifted, _ = _cv_draws(trainer)
    assert np.abs(shifted - plain).max() > 10 * np.abs(plain - exact).mean()
    se = shifted.std(axis=0, ddof=1) / np.sqrt(len(shifted))
    assert np.all(np.abs(shifted.mean(axis=0) - exact) < 5 * se + 1e-6 * np.abs(exact).max())


def test_drift_fit_shrinks_the_spread_left_by_a_network_that_moved(world, sites):
    """After the network moves away from its cache, the drift fitted at the probes cuts the
    draws' own estimate of the regional estimates' variance at least in half."""
    settings = dataclasses.replace(SMALL, lambda_regional=1.0, K=16, refresh_std=0.0)
    trainer = training.Trainer(world.samples, settings, train_sites=sites, grid=world.grid,
                               targets=world.targets, regions=world.regions)
    trainer.refresh_cache()
    rng = np.random.default_rng(3)

    def steps(n):
        return [trainer.step(torch.as_tensor(rng.choice(trainer.x.shape[0], 256,
                                                        replace=False)))["estimate_var"]
                for _ in range(n)]

    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.02
    steps(20)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0  # the network held where it moved to
    fitted = np.mean(steps(30))
    trainer.settings = dataclasses.replace(settings, cache_drift=False)
    unfitted = np.mean(steps(30))
    assert fitted < 0.5 * unfitted
