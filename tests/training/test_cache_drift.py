"""The cache's drift correction: its design holds exact totals, its fit recovers a linear drift,
it keeps the control variate unbiased and shrinks the spread a moved network leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluxbridge.training import cache as cache_module


@pytest.mark.parametrize("per_class", [False, True])
def test_drift_fit_recovers_a_drift_linear_in_the_inputs(world, configure, make_trainer,
                                                         monkeypatch, per_class):
    """A change of the network at the probes that is exactly ``β · [1, x]`` is fitted back to
    β: shared by all classes, for every class (the shrinkage of the classes' departures costs
    nothing there); per class, without the shrinkage, for every class slot with enough probes
    to determine it."""
    if per_class:
        monkeypatch.setattr(cache_module, "DRIFT_SHRINK", 0.0)
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0}))
    cache = trainer.regional.cache
    cache.refresh()
    probes = cache._drift_probes()
    n_slot, m = probes["shape"]
    # each probe's class slot: its class's rank among the grid's classes
    slot = np.searchsorted(np.unique(world.grid.igbp_code), probes["c"].numpy())
    rng = np.random.default_rng(2)
    beta = rng.normal(0, 1, (n_slot, m)) if per_class else np.tile(rng.normal(0, 1, m),
                                                                    (n_slot, 1))
    x = probes["x"].numpy().astype(np.float64)
    drift = beta[slot, 0] + (x * beta[slot, 1:]).sum(axis=1)
    cache._probe_base = cache._probe_values() - drift
    reached = (np.flatnonzero(np.bincount(slot, minlength=n_slot) >= 2 * m) if per_class
               else np.arange(n_slot))
    assert reached.size > 1
    np.testing.assert_allclose(cache.drift_coef()[reached], beta[reached], rtol=1e-3,
                               atol=1e-3)  # the ridges' bias: 2e-5 here


def test_drift_design_holds_the_exact_totals_of_its_basis_fields(world, configure,
                                                                 make_trainer):
    """Column (class slot s, coordinate j) of the drift design is H·(the field [1, x]_j on
    the cells of class s, zero elsewhere), for the trainer's normalised inputs x (to the
    float32 precision of those inputs: the design normalises the raw totals in float64)."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0}))
    term = trainer.regional
    design = term.cache.drift_design()
    grid = world.grid
    t, c = (a.ravel() for a in np.meshgrid(np.arange(grid.times.size), np.arange(grid.n_cell),
                                           indexing="ij"))
    x = trainer.net.cell_inputs(t, c)[0].double().numpy()
    slot = np.unique(grid.igbp_code, return_inverse=True)[1][c]
    m = 1 + x.shape[1]
    assert design.shape == (term.obs_ids.size, (slot.max() + 1) * m)
    for s in (0, int(slot.max())):
        for j in range(m):
            z = np.ones(t.size) if j == 0 else x[:, j - 1]
            field = np.where(slot == s, z, 0.0).reshape(grid.times.size, grid.n_cell)
            expected = term.operator.exact(field)[term.obs_ids]
            np.testing.assert_allclose(design[:, s * m + j], expected, rtol=1e-6,
                                       atol=1e-6 * np.abs(expected).max())


def test_drift_corrected_control_variate_is_unbiased_whatever_the_fit(world, configure,
                                                                      make_trainer, cv_draws):
    """Any drift coefficients shift each draw's estimate (the same draws) and leave the mean
    over draws at the exact totals."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "K": 8}))
    cache = trainer.regional.cache
    cache.refresh()
    plain, exact = cv_draws(trainer)
    n_slot = np.unique(world.grid.igbp_code).size
    m = 1 + len(trainer.features)
    coef = np.random.default_rng(4).normal(0, 1.0, (n_slot, m))
    cache.drift_coef = lambda: coef
    shifted, _ = cv_draws(trainer)
    assert np.abs(shifted - plain).max() > 10 * np.abs(plain - exact).mean()
    se = shifted.std(axis=0, ddof=1) / np.sqrt(len(shifted))
    assert np.all(np.abs(shifted.mean(axis=0) - exact) < 5 * se + 1e-6 * np.abs(exact).max())


def test_drift_fit_shrinks_the_spread_left_by_a_network_that_moved(configure, make_trainer):
    """After the network moves away from its cache, the drift fitted at the probes cuts the
    draws' own estimate of the regional estimates' variance at least in half."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "K": 16},
                                     tuning={"cache": {"refresh_std": 0.0}}))
    cache = trainer.regional.cache
    cache.refresh()
    rng = np.random.default_rng(3)

    def steps(n):
        return [trainer.step(torch.as_tensor(rng.choice(len(trainer.data), 256,
                                                        replace=False)))["estimate_var"]
                for _ in range(n)]

    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.02
    steps(20)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0  # the network held where it moved to
    fitted = np.mean(steps(30))
    assert cache.drift_coef() is not None
    cache.tuning = cache.tuning.model_copy(update={"drift": False})
    assert cache.drift_coef() is None
    unfitted = np.mean(steps(30))
    assert fitted < 0.5 * unfitted
