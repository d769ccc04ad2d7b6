"""The grid offset: exact totals, its least-squares fit after training, and how that fit sees
the grid (only through the training estimator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_world import model_targets

from fluxbridge.training import Trainer


@pytest.mark.parametrize("harmonics", [1, 2])
def test_offset_fit_recovers_known_offsets_and_leaves_untargeted_regions(
        world, sites, configure, make_trainer, harmonics):
    """Targets made from the network plus known offsets: the least-squares fit finds them."""
    cfg = configure(constraint={"lambda_regional": 1.0, "correction": "region"},
                    tuning={"offset": {"harmonics": harmonics, "fit_K": 256}})
    trainer = make_trainer(cfg)
    weight = trainer.model.offset.weight
    n_regions = weight.shape[0] - 1
    rng = np.random.default_rng(5)
    assert weight.shape[1] == 1 + 2 * harmonics
    known = torch.as_tensor(rng.normal(0, 0.3, (n_regions, weight.shape[1])), dtype=weight.dtype)
    with torch.no_grad():
        weight[1:] = known
    keep_out = int(world.grid.region[0])  # a region whose targets are withheld
    targets = model_targets(trainer, keep_out)
    trainer = Trainer(world.samples, cfg, train_sites=sites, grid=world.grid,
                      targets=targets, regions=world.regions)  # the same network
    weight = trainer.model.offset.weight
    start = known.clone()
    start[np.arange(n_regions) != keep_out - 1] = 0.0
    with torch.no_grad():
        weight[1:] = start
    result = trainer.regional.fit_offsets()
    assert result["regional_before"] > 100 * result["regional_after"]
    fitted = weight[1:].detach()
    torch.testing.assert_close(fitted[keep_out - 1], known[keep_out - 1], rtol=0, atol=0)
    others = np.arange(n_regions) != keep_out - 1
    assert float((fitted[others] - known[others]).abs().max()) < 0.05 * float(known.abs().max())


def test_offset_fit_matches_each_regions_total_exactly(configure, make_trainer):
    """With ``match_totals`` the fitted model's total over each region's target months is
    the targets' total; without, the σ-weighted fit leaves a residual."""
    residual = {}
    for match in (True, False):
        cfg = configure(constraint={"lambda_regional": 1.0, "estimator": "exact",
                                    "correction": "region"},
                        tuning={"offset": {"match_totals": match, "harmonics": 1,
                                           "fit_K": 64}})
        trainer = make_trainer(cfg)
        term = trainer.regional
        term.fit_offsets()
        totals = term.operator.exact(trainer.net.predict_grid())[term.obs_ids]
        mu = term.mu
        region = term.operator.obs_index["region"].to_numpy()[term.obs_ids]
        residual[match] = np.array([(totals - mu)[region == r].sum() for r in np.unique(region)])
        scale = np.array([np.abs(mu[region == r]).sum() for r in np.unique(region)])
    np.testing.assert_allclose(residual[True], 0.0, atol=1e-4 * scale.max())
    assert np.abs(residual[False]).max() > 1e-3 * scale.max()


def test_offset_fit_is_off_at_fit_K_zero(configure, make_trainer):
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "correction": "region"},
                                     tuning={"offset": {"fit_K": 0}}))
    before = trainer.model.offset.weight.detach().clone()
    assert trainer.regional.fit_offsets() == {}
    torch.testing.assert_close(trainer.model.offset.weight.detach(), before, rtol=0, atol=0)


@pytest.mark.parametrize("estimator", ["fixed", "resampled"])
def test_offset_fit_sees_the_grid_only_through_the_training_estimator(configure, make_trainer,
                                                                      estimator):
    cfg = configure(constraint={"lambda_regional": 1.0, "estimator": estimator, "K": 8},
                    tuning={"offset": {"fit_K": 64}})
    trainer = make_trainer(cfg)
    term = trainer.regional
    seen: list[np.ndarray] = []
    predict = trainer.net.predict_columns

    def recording(col, **kwargs):
        seen.append(np.asarray(col))
        return predict(col, **kwargs)

    trainer.net.predict_columns = recording
    term.fit_offsets()
    columns = np.concatenate(seen)
    per_obs = columns.size / term.obs_ids.size
    if estimator == "fixed":  # its one draw, nothing else
        fixed = term.estimator.draw(term.obs_ids)
        assert set(columns) == set(fixed.col) and per_obs == pytest.approx(8)
    else:  # independent draws of K until about 64 cell-days per region-month
        assert per_obs == pytest.approx(64)


@pytest.mark.parametrize("estimator", ["fixed", "resampled", "control_variate"])
def test_grid_offset_totals_are_exact_and_add_no_sampling_noise(configure, make_trainer,
                                                                estimator):
    """The offset's totals from its design equal H·(offset field); for the same draw, the
    sampled totals with and without an offset differ by exactly those totals."""
    cfg = configure(constraint={"lambda_regional": 1.0, "estimator": estimator, "K": 4},
                    tuning={"offset": {"harmonics": 2}})
    trainer = make_trainer(cfg)
    term, net = trainer.regional, trainer.net
    if term.estimator.needs_cache():
        term.cache.refresh()
    pick = np.arange(term.obs_ids.size)
    sample = term.estimator.draw(term.obs_ids, np.random.default_rng(2))
    with torch.no_grad():
        pred, xs = net.predict_columns(sample.col, offset=False)
        without = term.totals(pred.double(), pick, sample, xs)
        trainer.model.offset.weight.normal_(0, 0.5)
        with_offset = term.totals(pred.double(), pick, sample, xs)
        field = net.predict_grid() - net.predict_grid(offset=False)
    offset_totals = term.operator.exact(field)[term.obs_ids]
    assert np.abs(offset_totals).max() > 0
    np.testing.assert_allclose((with_offset - without)[0].numpy(), offset_totals,
                               rtol=1e-5, atol=1e-6 * np.abs(offset_totals).max())
    np.testing.assert_allclose(term.offsets.totals(pick).detach().numpy(), offset_totals,
                               rtol=1e-5, atol=1e-6 * np.abs(offset_totals).max())


def test_offset_gradient_is_the_design_transpose_times_the_totals_gradient(configure,
                                                                          make_trainer):
    """``add_grad`` adds the gradient autograd finds through the offset's exact totals, and
    adds to a gradient already there."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0},
                                     tuning={"offset": {"harmonics": 2}}))
    offsets = trainer.regional.offsets
    weight = trainer.model.offset.weight
    pick = np.array([3, 0, 11, 7])
    d_totals = np.random.default_rng(6).normal(0, 1, pick.size)
    (offsets.totals(pick) * torch.as_tensor(d_totals)).sum().backward()
    expected = weight.grad.clone()
    weight.grad = None
    offsets.add_grad(pick, d_totals)
    torch.testing.assert_close(weight.grad, expected, rtol=1e-6, atol=1e-9)
    offsets.add_grad(pick, d_totals)
    torch.testing.assert_close(weight.grad, 2 * expected, rtol=1e-6, atol=1e-9)
    assert float(weight.grad[0].abs().max()) == 0.0  # region 0: no offset


def test_a_fixed_sample_is_squared_whole(configure, make_trainer):
    """The fixed estimator draws one sample of K cell-days per region-month, squared as it is
    (two fixed halves' product could be driven negative); the others draw two replicates."""
    for estimator, replicates in (("fixed", 1), ("resampled", 2)):
        cfg = configure(constraint={"lambda_regional": 1.0, "estimator": estimator, "K": 8},
                        tuning={"regional": {"square": "unbiased"}})
        term = make_trainer(cfg).regional
        draw = term.estimator.draw(term.obs_ids, np.random.default_rng(0))
        assert np.unique(draw.rep).size == replicates
        per_obs = np.bincount(draw.obs, minlength=term.obs_ids.size)
        assert (per_obs == 8).all()
