"""The control variate's cache: its entries, its refresh rule and the floor it measures."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from fluxbridge.operators import default_group_size
from fluxbridge.operators.cache import GROUP_SIZE_AT_2DEG
from fluxbridge.training import cache as cache_module
from fluxbridge.training.cache import FLOOR_TARGETS, REFRESH_WINDOW, median_step_variance


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


def test_control_variate_refreshes_when_its_own_variance_estimate_says_so(configure,
                                                                         make_trainer):
    """The rule refreshes when the last window's mean estimate variance exceeds refresh_std²
    times the larger of 1 and the window's mean regional error, and its median exceeds twice
    the variance a fresh cache leaves (its floor); never below the limit, never when a refresh
    cannot help (the variance stays where a refresh leaves it, or only a few steps are noisy),
    nor when the misfit dwarfs the noise, nor before a floor is known, nor when off. In
    training, the step reports the variance estimate, zero right after a refresh of a daily
    cache (the model is its own cache), as the floor measured at the refresh."""
    w = REFRESH_WINDOW
    trainer = make_trainer(configure(
        constraint={"lambda_regional": 1.0, "K": 8},
        tuning={"cache": {"refresh_std": 0.1, "features": "daily", "group_size": 1}}))
    cache = trainer.regional.cache
    tuning = cache.tuning
    calls = []

    def feed(values, misfit=0.0, floor=0.004):
        calls.clear()
        cache._noise, cache._misfit, cache.floor = [], [], floor
        cache.refresh = lambda: (calls.append(len(cache._noise)), cache._noise.clear(),
                                 cache._misfit.clear(), setattr(cache, "floor", floor))
        for v in values:
            cache.observe(v, misfit)
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
    cache.tuning = tuning.model_copy(update={"refresh_std": 0.0})
    assert feed(growing) == []
    del cache.refresh
    cache.tuning = tuning
    cache.refresh()
    rng = np.random.default_rng(0)
    noise = [trainer.step(torch.as_tensor(rng.choice(len(trainer.data), 256, replace=False)))
             ["estimate_var"] for _ in range(3)]
    assert noise[0] < 1e-6 * max(noise[1:]) and min(noise) >= 0
    assert 0 <= cache.floor < 1e-6 * max(noise[1:])


def test_cache_floor_is_the_steps_variance_statistic_at_a_fresh_cache(configure, make_trainer,
                                                                     monkeypatch):
    """The floor measured at a refresh is the median step variance of per-region-month
    variances that average to the step's own statistic on the same draws (the network equal
    to its fresh cache); its draws come from their own generator and leave the training draws
    as they were."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0, "K": 8},
                                     tuning={"regional": {"obs_per_step": 4}}))
    term, cache = trainer.regional, trainer.regional.cache
    seen = []
    monkeypatch.setattr(cache_module, "median_step_variance",
                        lambda v, n, rng: seen.append((v, n)) or median_step_variance(v, n, rng))
    draws = term.obs_rng.bit_generator.state
    floor_rng = np.random.default_rng()
    floor_rng.bit_generator.state = cache.floor_rng.bit_generator.state
    cache.refresh()
    assert term.obs_rng.bit_generator.state == draws
    (variance, n), = seen
    assert n == 4 and cache.floor > 0
    pick = floor_rng.choice(term.obs_ids.size, replace=False,
                            size=min(term.obs_ids.size, FLOOR_TARGETS))
    sample = term.estimator.draw(term.obs_ids[pick], floor_rng)
    xs, cs = trainer.net.column_inputs(sample.col)
    with torch.no_grad():
        noise = term.error(trainer.model(xs, cs), pick, sample, xs)[2]
    assert variance.size == pick.size and np.mean(variance) == pytest.approx(noise, rel=1e-9)


def test_median_step_variance_is_the_median_over_every_step():
    """Against every n-subset of a small pool: the median of their means (15 distinct means
    of which the 8th is the median by a margin that 20000 resamples cannot miss); a constant
    pool gives its value, and steps as large as the pool its mean."""
    pool = np.array([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    means = sorted(np.mean(pair) for pair in itertools.combinations(pool, 2))
    rng = np.random.default_rng(3)
    assert median_step_variance(pool, 2, rng, resamples=20000) == means[7]
    assert median_step_variance(np.full(9, 0.25), 3, rng) == pytest.approx(0.25)
    assert median_step_variance(pool, 6, rng) == pytest.approx(pool.mean())
    assert median_step_variance(pool, 10, rng) == pytest.approx(pool.mean())


def test_relative_variance_is_the_replicates_mean_variance_in_sigma_units():
    """Two replicates of variances 4 and 2 [Tg²] average to a mean of variance 1.5 [Tg²]:
    at σ = 0.5 Tg, 6 σ²."""
    var = np.array([[4.0, 8.0], [2.0, 0.0]])
    np.testing.assert_allclose(cache_module.relative_variance(var, np.array([0.5, 2.0])),
                               [6.0, 0.5])
