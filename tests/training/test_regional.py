"""The regional term: its draws, its gradient in closed form against autograd's, and its
estimates' variance in units of σ²."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluxbridge.operators import squared_error
from fluxbridge.training.regional import DRAW_AHEAD, relative_variance


def test_draws_ahead_are_each_steps_own_draw_of_its_region_months(configure, make_trainer):
    """A queue of ``DRAW_AHEAD`` steps: each step has ``obs_per_step`` distinct targets, its
    draws fall on cell-days of those targets' operator rows, every replicate of every target
    drawn, and the network's inputs are those of its draws' columns."""
    cfg = configure(constraint={"lambda_regional": 1.0, "estimator": "resampled", "K": 4},
                    tuning={"regional": {"obs_per_step": 5}})
    trainer = make_trainer(cfg)
    term = trainer.regional
    matrix = term.operator.matrix
    steps = [term.draw() for _ in range(DRAW_AHEAD + 3)]  # into the second queue
    for pick, sample, xs, cs in steps:
        assert pick.size == 5 == np.unique(pick).size
        np.testing.assert_array_equal(sample.obs_ids, term.obs_ids[pick])
        assert sample.obs.min() >= 0 and sample.obs.max() < 5
        assert np.all(np.asarray(matrix[sample.obs_ids[sample.obs], sample.col]).ravel() > 0)
        assert np.bincount(sample.obs * sample.n_rep + sample.rep, minlength=10).min() >= 1
        assert sample.n_rep == 2
        x, c = trainer.net.column_inputs(sample.col)
        torch.testing.assert_close(xs, x, rtol=0, atol=0)
        torch.testing.assert_close(cs, c, rtol=0, atol=0)
    first = {tuple(p) for p, *_ in steps[:DRAW_AHEAD]}
    assert len(first) == DRAW_AHEAD  # independent steps, not one draw repeated


@pytest.mark.parametrize(("square", "grid_offset"), [("unbiased", True), ("plain", False)])
def test_step_gradient_equals_autograd_through_the_estimate(configure, make_trainer, square,
                                                            grid_offset):
    """The step pushes the regional term's gradient in closed form; it equals autograd's
    gradient of site loss + λ × regional loss through the differentiable estimate (the
    network's share scaled by ``tuning.offset.to_network`` when there are offsets)."""
    cfg = configure(constraint={"lambda_regional": 0.7, "K": 8,
                                 "correction": "hierarchical" if grid_offset else "none"},
                    tuning={"regional": {"square": square}, "offset": {"to_network": 0.3}})
    trainer = make_trainer(cfg)
    term = trainer.regional
    term.cache.refresh()
    with torch.no_grad():  # the network moved since the refresh: f − g is not zero
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        if grid_offset:
            trainer.model.offset.weight.normal_(0, 0.3)
    idx = torch.arange(300)
    pick, sample, xs, cs = term.draw()
    term._ahead.append((pick, sample, xs, cs))  # the step takes this very draw
    d = trainer.data
    x, c, y, w = d.x[idx], d.c[idx], d.y[idx], d.w[idx]
    trainer.optimizer.zero_grad()
    site = (w * (trainer.model(x, c) - y) ** 2).mean() / trainer.s_y**2
    cells = trainer.model(xs, cs)
    if grid_offset:
        a = cfg.tuning.offset.to_network
        cells = a * cells + (1 - a) * cells.detach()
    est = term.totals(cells, pick, sample, xs)
    mu, sigma = (torch.as_tensor(a[pick]) for a in (term.mu, term.sigma))
    reg = (squared_error(est, mu) / sigma**2).mean()
    (site + cfg.constraint.lambda_regional * reg).backward()
    expected = {k: p.grad.clone() for k, p in trainer.model.named_parameters()
                if p.grad is not None}
    trainer.optimizer.step = lambda: None  # keep the gradients, skip the update
    losses = trainer.step(idx)
    assert losses["regional"] == pytest.approx(float(reg.detach()), rel=1e-5)
    assert losses["site"] == pytest.approx(float(site.detach()), rel=1e-6)
    for k, p in trainer.model.named_parameters():
        if k in expected:
            scale = float(expected[k].abs().max())
            torch.testing.assert_close(p.grad, expected[k], rtol=1e-4, atol=1e-5 * scale)


def test_relative_variance_is_the_replicates_mean_variance_in_sigma_units():
    """Two replicates of variances 4 and 2 [Tg²] average to a mean of variance 1.5 [Tg²]:
    at σ = 0.5 Tg, 6 σ²."""
    var = np.array([[4.0, 8.0], [2.0, 0.0]])
    np.testing.assert_allclose(relative_variance(var, np.array([0.5, 2.0])), [6.0, 0.5])
