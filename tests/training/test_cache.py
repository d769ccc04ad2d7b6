"""The control variate's cache: its entries, when it is due, and the estimates it gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from fluxbridge.operators import default_group_size
from fluxbridge.operators.cache import GROUP_SIZE_AT_2DEG


def test_daily_cell_cache_makes_the_control_variate_exact(configure, make_trainer):
    """Cache refreshed daily per cell from the current model: every draw gives the exact
    totals (the sampled correction f − g is zero)."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "K": 4},
                                     tuning={"cache": {"features": "daily", "group_size": 1}}))
    term, net = trainer.regional, trainer.net
    with torch.no_grad():
        trainer.model.offset.weight.normal_(0, 0.2)
    term.cache.refresh()
    exact = term.operator.exact(net.predict_grid())[term.obs_ids]
    sample = term.estimator.draw(term.obs_ids, np.random.default_rng(0))
    with torch.no_grad():
        pred, xs = net.predict_columns(sample.col, offset=False)
        got = term.totals(pred.double(), np.arange(term.obs_ids.size), sample, xs)[0]
    np.testing.assert_allclose(got.numpy(), exact, rtol=1e-4, atol=1e-3)


def test_first_order_cache_is_unbiased_and_tighter_than_the_group_mean(configure, make_trainer,
                                                                       cv_draws):
    """The first-order monthly cache (group value + input gradient × departure) keeps the
    control variate unbiased and, following the days' weather, halves its spread at least."""
    spread = {}
    for linear in (False, True):
        trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "K": 8},
                                         tuning={"cache": {"linear": linear}}))
        trainer.regional.cache.refresh()
        draws, exact = cv_draws(trainer)
        se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se + 1e-3 * np.abs(exact))
        spread[linear] = float(np.median(draws.std(axis=0)))
    assert spread[True] < 0.5 * spread[False]


@pytest.mark.parametrize(("features", "size"), [("monthly", 4), ("daily", 16)])
def test_grouped_cache_entries_are_similar_pairs_of_one_class_and_stay_unbiased(
        world, configure, make_trainer, cv_draws, features, size):
    """With a group size, (time group, cell) pairs of one vegetation class (daily: and one
    month) share an entry (at most that many), the entries are tighter in the network's inputs
    than random groups of the same sizes, the cache is constant over an entry, and the control
    variate stays unbiased for the model's exact totals."""
    trainer = make_trainer(configure(
        constraint={"lambda_regional": 1.0, "K": 8},
        tuning={"cache": {"features": features, "group_size": size, "linear": False}}))
    cache = trainer.regional.cache
    cache.refresh()
    groups = cache.groups()
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
    member = trainer.net.normalised(means.reshape(-1, grid.values.shape[2])).numpy()
    spread = np.mean((member - cache._cache_center(groups)[entry.ravel()]) ** 2)
    shuffled = np.random.default_rng(0).permutation(entry.ravel())
    centres = np.stack([np.bincount(shuffled, member[:, j]) / np.bincount(shuffled)
                        for j in range(member.shape[1])], axis=1)
    assert spread < 0.5 * np.mean((member - centres[shuffled]) ** 2)
    cols = np.arange(grid.times.size * grid.n_cell)
    cached = trainer.regional.estimator.cached(cols)
    t, c = np.divmod(cols, grid.n_cell)
    key = entry[groups.time_group[t], c]
    assert all(np.ptp(cached[key == k]) == 0 for k in range(0, counts.size, 97))
    draws, exact = cv_draws(trainer)
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se + 1e-3 * np.abs(exact))


def test_default_cache_group_size_grows_with_the_grids_linear_resolution(world, configure,
                                                                         make_trainer):
    """64 cell-days at 2 degrees (and on a grid of unknown spacing); halving the spacing
    doubles the size, so an entry spans about as many degrees of the grid."""
    def size(resolution):
        return default_group_size(dataclasses.replace(world.grid, resolution_deg=resolution))

    assert size(2.0) == size(None) == GROUP_SIZE_AT_2DEG
    for resolution in (4.0, 1.0, 0.5, 0.25):
        assert size(resolution) * resolution == pytest.approx(2.0 * GROUP_SIZE_AT_2DEG)
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0},
                                     tuning={"cache": {"group_size": None}}))
    groups = trainer.regional.cache.groups()
    assert np.bincount(groups.entry.ravel()).max() <= default_group_size(world.grid)


def test_cache_is_due_when_never_built_and_every_refresh_every_epochs(configure,
                                                                    make_trainer):
    """A cache never built is due at any epoch (a run's first, or a resumed run's without a
    cache in its checkpoint); once built, with ``refresh_every`` k it is due exactly at the
    epochs divisible by k (the default, 1: every epoch)."""
    for every in (None, 1, 2, 3):
        tuning = {} if every is None else {"cache": {"refresh_every": every}}
        cache = make_trainer(configure(constraint={"lambda_regional": 1.0},
                                       tuning=tuning)).regional.cache
        assert cache.state is None and all(cache.due(e) for e in range(7))
        cache.refresh()
        k = every or 1
        assert [cache.due(e) for e in range(7)] == [e % k == 0 for e in range(7)]


def test_step_reports_the_draws_variance_estimate_zero_at_a_fresh_daily_cell_cache(
        configure, make_trainer):
    """Right after a refresh of a cache of single cell-days the model is its own cache and
    the step's estimate variance is zero; once the network has moved it is positive."""
    trainer = make_trainer(configure(
        constraint={"lambda_regional": 1.0, "K": 8},
        tuning={"cache": {"features": "daily", "group_size": 1}}))
    trainer.regional.cache.refresh()
    rng = np.random.default_rng(0)
    noise = [trainer.step(torch.as_tensor(rng.choice(len(trainer.data), 256, replace=False)))
             ["estimate_var"] for _ in range(3)]
    assert noise[0] < 1e-6 * max(noise[1:]) and min(noise) >= 0
