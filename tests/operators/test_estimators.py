"""Estimators of H·f: exactness, unbiasedness, the control-variate identity, the searches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluxbridge.errors import InputError
from fluxbridge.operators.control_variate import ControlVariateEstimator
from fluxbridge.operators.estimators import make_estimator, squared_error
from fluxbridge.operators.resampled import FixedEstimator, ResampledEstimator, _search_between
from fluxbridge.operators.sample import ExactEstimator

N_DRAWS = 300


def _estimates(est, field: np.ndarray, rng: np.random.Generator, obs=None) -> np.ndarray:
    obs = np.arange(est.operator.n_obs) if obs is None else obs
    sample = est.draw(obs, rng)
    pred = torch.as_tensor(field.ravel()[sample.col])
    return est.estimate(pred, sample).numpy()


def test_exact_estimator_equals_full_sum(op, field):
    est = ExactEstimator(op)
    obs = np.array([3, 0, 17])
    np.testing.assert_allclose(_estimates(est, field, None, obs)[0], op.exact(field)[obs],
                               rtol=1e-10)


@pytest.mark.parametrize("sampling", ["uniform", "area", "stratified"])
def test_horvitz_thompson_unbiased(op, field, strata, sampling):
    est = ResampledEstimator(op, K=8, sampling=sampling, strata=strata)
    rng = np.random.default_rng(3)
    draws = np.stack([_estimates(est, field, rng)[0] for _ in range(N_DRAWS)])
    exact = op.exact(field)
    se = draws.std(axis=0, ddof=1) / np.sqrt(N_DRAWS)
    z = (draws.mean(axis=0) - exact) / se
    assert np.all(np.abs(z) < 5), np.abs(z).max()
    assert np.all(draws.std(axis=0) > 0)  # really random


def test_fixed_keeps_its_draw_and_is_unbiased_over_draws(op, field):
    est = FixedEstimator(op, K=8, seed=5)
    rng = np.random.default_rng(0)
    a, b = _estimates(est, field, rng), _estimates(est, field, rng)
    np.testing.assert_array_equal(a, b)
    sub = _estimates(est, field, rng, obs=np.array([7, 2]))
    np.testing.assert_array_equal(sub[0], a[0][[7, 2]])
    over_seeds = np.stack([_estimates(FixedEstimator(op, K=8, seed=s), field, rng)[0]
                           for s in range(100)])
    se = over_seeds.std(axis=0, ddof=1) / 10
    assert np.all(np.abs(over_seeds.mean(axis=0) - op.exact(field)) < 5 * se)


def test_control_variate_exact_when_model_equals_cache(op, field):
    est = ControlVariateEstimator(op, K=4, sampling="uniform")
    est.set_cache(field)
    got = _estimates(est, field.astype(np.float32), np.random.default_rng(4))[0]
    np.testing.assert_allclose(got, op.exact(field.astype(np.float32)), rtol=1e-5)


def test_grouped_cache_equals_its_expanded_field(op, field, times):
    """A cache given per entry of (month, cell) pairs (any grouping) estimates exactly as the
    same field expanded to every (day, cell), and its H·g is the operator's exact total of
    that field."""
    rng = np.random.default_rng(9)
    time_group = times.month.to_numpy() - 1
    entry = rng.integers(0, 30, (12, op.n_cell))
    entry[0, 0] = 29  # every entry in use
    g = rng.normal(1.0, 0.5, 30)
    expanded = g[entry[time_group]]
    grouped, full = (ControlVariateEstimator(op, K=8) for _ in range(2))
    grouped.set_cache(g, time_group, entry)
    full.set_cache(expanded)
    sample = grouped.draw(np.arange(op.n_obs), rng)
    pred = torch.as_tensor(field.ravel()[sample.col])
    np.testing.assert_allclose(grouped.estimate(pred, sample).numpy(),
                               full.estimate(pred, sample).numpy(), rtol=1e-9)
    np.testing.assert_allclose(grouped._hg, op.exact(expanded.astype(np.float32)), rtol=1e-9)
    with pytest.raises(InputError, match="groups"):
        grouped.set_cache(g, time_group[:-1], entry)
    with pytest.raises(InputError, match="field"):
        grouped.set_cache(g[:-1], time_group, entry)


def test_first_order_cache_is_exact_for_a_field_linear_in_the_inputs(op, times):
    """A field that is, in each entry of (month, cell) pairs, linear in the inputs is
    reproduced exactly by the first-order cache: every draw gives the exact totals."""
    rng = np.random.default_rng(11)
    time_group = times.month.to_numpy() - 1
    entry = rng.integers(0, 40, (12, op.n_cell))
    entry[0, 0] = 39
    x = rng.normal(0, 1, (op.n_time * op.n_cell, 3))  # inputs of every column
    slope = rng.normal(0, 1, (40, 3))
    center = rng.normal(0, 0.3, (40, 3))
    level = rng.normal(1, 0.5, 40)
    t, c = np.divmod(np.arange(op.n_time * op.n_cell), op.n_cell)
    e = entry[time_group[t], c]
    field = level[e] + ((x - center[e]) * slope[e]).sum(axis=1)
    est = ControlVariateEstimator(op, K=4)
    est.set_cache(level, time_group, entry, slope=slope, center=center,
                  inputs=lambda col: x[col])
    sample = est.draw(np.arange(op.n_obs), rng)
    got = est.estimate(torch.as_tensor(field[sample.col]), sample,
                       torch.as_tensor(x[sample.col], dtype=torch.float32))
    np.testing.assert_allclose(got[0].numpy(), op.exact(field.reshape(op.n_time, op.n_cell)),
                               rtol=1e-4)
    # the training step's numpy estimate: the same numbers, with the inputs as an array too
    moved = field[sample.col] + rng.normal(0, 1, len(sample))
    torch_est = est.estimate(torch.as_tensor(moved), sample, torch.as_tensor(x[sample.col]))
    for inputs in (torch.as_tensor(x[sample.col]), x[sample.col]):
        numpy_est, var = est.estimate_with_variance(moved, sample, inputs)
        np.testing.assert_allclose(numpy_est, torch_est.numpy(), rtol=1e-6)
        assert np.all(var > 0)
    with pytest.raises(RuntimeError, match="inputs"):
        est.estimate(torch.as_tensor(field[sample.col]), sample)


def test_control_variate_unbiased_and_less_variable(op, field):
    rng = np.random.default_rng(5)
    cache = field + rng.normal(0, 0.1, field.shape)  # a slightly stale model
    cv = ControlVariateEstimator(op, K=8)
    cv.set_cache(cache)
    plain = ResampledEstimator(op, K=8)
    cv_draws = np.stack([_estimates(cv, field, rng)[0] for _ in range(N_DRAWS)])
    ht_draws = np.stack([_estimates(plain, field, rng)[0] for _ in range(N_DRAWS)])
    exact = op.exact(field)
    se = cv_draws.std(axis=0, ddof=1) / np.sqrt(N_DRAWS)
    assert np.all(np.abs(cv_draws.mean(axis=0) - exact) < 5 * se + 1e-6 * np.abs(exact))
    assert np.median(cv_draws.std(axis=0) / ht_draws.std(axis=0)) < 0.5


def test_gradient_of_sparse_estimate_is_unbiased(op, field):
    rng = np.random.default_rng(6)
    x = torch.as_tensor(np.stack([field, np.sqrt(np.abs(field))], axis=-1).reshape(-1, 2))
    theta = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    coef = torch.as_tensor(rng.normal(size=op.n_obs))
    obs = np.arange(op.n_obs)

    def grad(est) -> np.ndarray:
        sample = est.draw(obs, rng)
        f = torch.tanh(x[sample.col] @ theta)
        (g,) = torch.autograd.grad((est.estimate(f, sample)[0] * coef).sum(), theta)
        return g.numpy()

    exact = grad(ExactEstimator(op))
    draws = np.stack([grad(ResampledEstimator(op, K=8)) for _ in range(N_DRAWS)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(N_DRAWS)
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se)


def test_unbiased_square_against_plain_square(op, field):
    rng = np.random.default_rng(7)
    obs = np.arange(12)
    exact = op.exact(field)[obs]
    mu = torch.as_tensor(exact + 5.0)
    truth = (exact - mu.numpy()) ** 2
    two = ResampledEstimator(op, K=4, n_rep=2)
    one = ResampledEstimator(op, K=2)  # same draws per replicate as each half above
    unbiased = np.stack([squared_error(torch.as_tensor(_estimates(two, field, rng, obs)), mu)
                         .numpy() for _ in range(2000)])
    plain = np.stack([squared_error(torch.as_tensor(_estimates(one, field, rng, obs)), mu)
                      .numpy() for _ in range(2000)])
    se_u = unbiased.std(axis=0, ddof=1) / np.sqrt(2000)
    assert np.all(np.abs(unbiased.mean(axis=0) - truth) < 5 * se_u)
    # the plain square overshoots by the estimate's variance
    se_p = plain.std(axis=0, ddof=1) / np.sqrt(2000)
    assert np.mean(plain.mean(axis=0) - truth > 3 * se_p) > 0.5


def test_sample_sizes_and_replicates(op, strata):
    rng = np.random.default_rng(8)
    obs = np.array([1, 5, 9])
    for sampling in ("uniform", "area"):
        sample = make_estimator("resampled", op, K=16, sampling=sampling, n_rep=2).draw(obs, rng)
        assert len(sample) == 16 * obs.size
        assert np.bincount(sample.rep).tolist() == [8 * obs.size] * 2
    strat = make_estimator("resampled", op, K=16, sampling="stratified", strata=strata)
    sample = strat.draw(obs, rng)
    assert np.all(np.bincount(sample.obs) >= 16 - 4)
    # every draw lies in its own row
    assert np.all(op.matrix[obs[sample.obs], sample.col].A1 > 0)


def test_bad_input_raises(op):
    with pytest.raises(InputError, match="estimator"):
        make_estimator("magic", op)
    with pytest.raises(InputError, match="strata"):
        ResampledEstimator(op, K=4, sampling="stratified")


@pytest.mark.parametrize("sampling", ["area", "stratified"])
def test_guide_table_search_equals_binary_search(op, strata, sampling):
    """The guide-table inverse CDF picks exactly the columns of a plain binary search."""
    est = ResampledEstimator(op, K=8, sampling=sampling, strata=strata)
    rng = np.random.default_rng(11)
    d_seg = rng.integers(0, est._seg_start.size, 20000)
    u = rng.random(d_seg.size)
    u[:200] = 0.0
    u[200:400] = np.nextafter(1.0, 0.0)
    u[400:600] = (rng.integers(0, 50, 200) / est._seg_size[d_seg[400:600]]).clip(0, 0.999)
    start = est._seg_start[d_seg]
    last = start + est._seg_size[d_seg] - 1
    target = est._seg_base[d_seg] + u * est._seg_total[d_seg]
    reference = np.clip(np.searchsorted(est._cum, target, side="right"), start, last)
    np.testing.assert_array_equal(est._search(d_seg, u, target, start, last), reference)


@pytest.mark.parametrize("sampling", ["uniform", "area", "stratified"])
def test_variance_estimate_is_unbiased_for_the_spread_of_draws(op, field, strata, sampling):
    """The draws' own variance estimate averages to the variance of the estimates over many
    draws (within a confidence bound), for both replicates; stratified draws leave out strata
    of one draw, so there it is a lower bound. A control variate with the field itself as
    cache has zero spread and estimates zero."""
    est = ResampledEstimator(op, K=12, sampling=sampling, strata=strata, n_rep=2)
    obs = np.arange(op.n_obs)
    rng = np.random.default_rng(7)
    values, variances = [], []
    for _ in range(N_DRAWS * 2):
        sample = est.draw(obs, rng)
        pred = field.ravel()[sample.col]
        out, var = est.estimate_with_variance(pred, sample)
        if not values:  # the same numbers as the differentiable estimate
            np.testing.assert_allclose(out, est.estimate(torch.as_tensor(pred), sample).numpy())
        values.append(out)
        variances.append(var)
    values, variances = np.array(values), np.array(variances)
    empirical = values.var(axis=0, ddof=1)  # (n_rep, n_obs)
    mean_var = variances.mean(axis=0)
    ratio = mean_var.sum() / empirical.sum()  # pooled over rows: tight
    if sampling == "stratified":
        assert 0.2 < ratio < 1.05
    else:
        assert abs(ratio - 1) < 0.05
        assert np.median(np.abs(mean_var / empirical - 1)) < 0.15
    cv = ControlVariateEstimator(op, K=12, sampling=sampling, strata=strata)
    single = field.astype(np.float32)  # the cache's precision: f − g is exactly zero
    cv.set_cache(single)
    sample = cv.draw(obs, rng)
    out, var = cv.estimate_with_variance(single.ravel()[sample.col], sample)
    np.testing.assert_allclose(out[0], op.exact(single), rtol=1e-6)
    np.testing.assert_array_equal(var, 0.0)
    fixed = FixedEstimator(op, K=12, sampling=sampling, strata=strata)
    _, var = fixed.estimate_with_variance(field.ravel()[sample.col][:0], fixed.draw(obs[:0]))
    assert var.size == 0


def test_bounded_search_equals_clipped_searchsorted():
    """Bisection within bounds gives numpy's search clipped to the bounds, ties included."""
    rng = np.random.default_rng(5)
    cum = np.cumsum(rng.integers(0, 3, 5000).astype(float))  # zero steps: runs of ties
    lo = rng.integers(0, cum.size, 3000)
    hi = np.minimum(cum.size - 1, lo + rng.integers(0, 400, lo.size))
    target = np.concatenate([cum[rng.integers(0, cum.size, 1000)],  # exactly on a value
                             rng.uniform(-5, cum[-1] + 5, 2000)])
    expected = np.clip(np.searchsorted(cum, target, side="right"), lo, hi)
    np.testing.assert_array_equal(_search_between(cum, target, lo, hi), expected)
