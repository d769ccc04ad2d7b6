"""The training loop: the regional term helps, λ = 0 changes nothing, early stopping, ensembles,
masked inputs, the refresh schedule, and no process-wide torch state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from method_world import World

from fluxbridge.errors import InputError
from fluxbridge.training import Trainer, train_baseline, train_ensemble, train_network


def _regional_rmse(world: World, model) -> float:
    from fluxbridge.studies.grid_totals import grid_field

    pred = grid_field(model, world.grid).astype(np.float64)  # grid offsets included
    diff = world.operator.exact(pred) - world.operator.exact(world.truth)
    return float(np.sqrt(np.mean(diff**2)))


def _weights(model) -> dict[str, torch.Tensor]:
    return model.estimator.state_dict()


@pytest.mark.parametrize(("estimator", "grid_offset"), [
    ("control_variate", True), ("resampled", True), ("control_variate", False)])
def test_regional_term_reduces_regional_error(world, sites, small, configure, fit, estimator,
                                              grid_offset):
    site_only = fit(sites, small)
    dual = fit(sites, configure(constraint={"lambda_regional": 1.0, "estimator": estimator,
                                            "correction": "hierarchical" if grid_offset
                                            else "none"}))
    assert _regional_rmse(world, dual) < 0.5 * _regional_rmse(world, site_only)


def test_grid_offset_applies_to_grid_cells_only(world, sites, configure, fit):
    dual = fit(sites, configure(network={"epochs": 4}, constraint={"lambda_regional": 1.0}))
    net = dual.estimator
    assert net.offset is not None and float(net.offset.weight.detach().abs().sum()) > 0
    X = world.grid.values[:3].reshape(-1, world.grid.values.shape[-1])
    codes = np.tile(world.grid.igbp_code, 3)
    towers = dual.predict_arrays(X, codes)
    region = np.tile(world.grid.region, 3)
    doy = np.repeat(np.arange(1, 4), world.grid.values.shape[1])
    cells = dual.predict_arrays(X, codes, region=region, dayofyear=doy)
    expected = net.grid_offset(torch.as_tensor(region), torch.as_tensor(doy)).detach().numpy()
    np.testing.assert_allclose(cells - towers, expected, atol=1e-5)
    assert np.any(np.abs(expected) > 0)


def test_lambda_zero_changes_nothing(world, sites, configure, fit):
    cfg = configure(network={"epochs": 3})
    assert cfg.constraint.lambda_regional == 0.0
    with_operator = fit(sites, cfg)
    without = train_network(world.samples, cfg, train_sites=sites, progress=False)
    for key, value in _weights(with_operator).items():
        torch.testing.assert_close(value, _weights(without)[key], rtol=0, atol=0)


def test_early_stopping_keeps_best_epoch(sites, configure, fit):
    cfg = configure(network={"epochs": 6, "patience": 1, "lr": 0.3})
    model = fit(sites[:-5], cfg, val_sites=sites[-5:])
    history = model.provenance["history"]
    vals = [h["val"] for h in history]
    assert model.provenance["best_epoch"] == int(np.argmin(vals)) + 1
    assert len(history) <= cfg.network.epochs


def test_val_loss_is_the_weighted_site_loss_at_the_validation_sites(world, sites, configure):
    """The validation loss is mean w (f(x) − y)² / s_y² over the validation sites' rows, by
    the network as it predicts after training (no dropout), in s_y² of the training sites."""
    cfg = configure(network={"dropout": 0.3})
    trainer = Trainer(world.samples, cfg, train_sites=sites[:-5], val_sites=sites[-5:])
    val = world.samples[world.samples["site"].isin(sites[-5:])]
    fit_rows = world.samples[world.samples["site"].isin(sites[:-5])]
    w, y = fit_rows["weight"].to_numpy(), fit_rows["nee"].to_numpy()
    s_y = np.sqrt(np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2) / w.sum())
    pred = trainer.fitted(trainer.model.state_dict(), "nn", {}).predict_frame(val)
    expected = np.mean(val["weight"] * (pred - val["nee"]) ** 2) / s_y**2
    assert trainer.val_loss() == pytest.approx(expected, rel=1e-4)
    assert trainer.val_loss() == trainer.val_loss()  # no dropout draw in it
    assert Trainer(world.samples, cfg, train_sites=sites).val_loss() is None


def test_regional_term_needs_its_inputs(world, sites, configure):
    with pytest.raises(InputError, match="targets"):
        train_network(world.samples, configure(constraint={"lambda_regional": 1.0}),
                      train_sites=sites, grid=world.grid, regions=world.regions,
                      progress=False)


def test_normaliser_uses_training_sites_only(world, sites, configure):
    model = train_network(world.samples, configure(network={"epochs": 1}),
                          train_sites=sites[:5], progress=False)
    rows = world.samples[world.samples["site"].isin(sites[:5])]
    np.testing.assert_allclose(model.normaliser.mean, rows[list(model.feature_names)].mean(),
                               rtol=1e-5)


def test_ensemble_members_differ_by_seed(world, sites, configure):
    members = train_ensemble(world.samples, configure(network={"epochs": 1, "n_ensemble": 2}),
                             train_sites=sites, progress=False)
    assert [m.provenance["seed"] for m in members] == [0, 1]
    a, b = (_weights(m) for m in members)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert all(len(m.provenance["val_sites"]) > 0 for m in members)


def test_training_leaves_the_process_torch_state_alone(sites, configure, fit, make_trainer):
    """Neither a trainer's seeding nor its dropout draws touch the process's generator, nor
    does training set the thread count; the trainer's own generator moves with dropout."""
    cfg = configure(network={"epochs": 1, "dropout": 0.2, "device": "auto"},
                    constraint={"lambda_regional": 1.0})
    torch.manual_seed(1234)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(3)  # a count that training on the CPU used to change
    try:
        fit(sites, cfg)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    trainer = make_trainer(cfg)
    start = trainer.torch_rng.clone()
    trainer.epoch(0)
    assert not torch.equal(trainer.torch_rng, start)
    assert torch.equal(torch.get_rng_state(), before)


def test_missing_features_are_masked_and_counted_never_in_the_loss(world, sites, configure,
                                                                   make_trainer):
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
    cfg = configure(network={"epochs": 2}, constraint={"lambda_regional": 1.0})
    trainer = make_trainer(cfg, samples=samples, grid=grid)
    term = trainer.regional
    finite_nee = np.isfinite(samples["nee"].to_numpy())
    assert trainer.masked["site_samples"] == int(np.count_nonzero(holes & finite_nee))
    assert trainer.data.x.shape[0] == int(np.count_nonzero(~holes & finite_nee))
    in_regions = world.operator.matrix.getnnz(axis=0).reshape(gaps.shape) > 0
    assert trainer.masked["grid_cell_days"] == int(np.count_nonzero(gaps & in_regions))
    # a field that is wild where features are missing totals as if it were zero there
    field = np.where(gaps, 1e9, world.truth)
    np.testing.assert_allclose(term.operator.exact(field),
                               world.operator.exact(np.where(gaps, 0.0, world.truth)),
                               rtol=1e-12)
    # sampled columns never fall on a masked cell-day
    sample = term.estimator.draw(term.obs_ids, np.random.default_rng(0))
    assert not gaps.ravel()[sample.col].any()
    term.cache.refresh()
    losses = trainer.epoch(0)
    assert np.isfinite(losses["site"]) and np.isfinite(losses["regional"])
    model = train_network(samples, cfg, train_sites=sites, grid=grid,
                          targets=world.targets, regions=world.regions, progress=False)
    assert model.provenance["masked_for_missing_features"] == trainer.masked
    rf = train_baseline("rf", samples, configure(tuning={"baselines": {"rf_n_estimators": 5}}),
                        train_sites=sites)
    assert rf.provenance["masked_for_missing_features"]["site_samples"] == \
        trainer.masked["site_samples"]


@pytest.mark.parametrize(("every", "expected"), [(None, [1, 1, 1]), (2, [1, 0, 1]),
                                                 (3, [1, 0, 0])])
def test_cache_is_rebuilt_every_refresh_every_epochs_by_default_every_epoch(
        sites, configure, fit, every, expected):
    """By default the control variate's cache is rebuilt once at the start of every epoch;
    with ``refresh_every`` k at epochs 0, k, 2k, ... and never within an epoch."""
    tuning = {} if every is None else {"cache": {"refresh_every": every}}
    cfg = configure(network={"epochs": 3},
                    constraint={"lambda_regional": 1.0, "estimator": "control_variate"},
                    tuning=tuning)
    model = fit(sites, cfg)
    assert [h["refreshes"] for h in model.provenance["history"]] == expected
