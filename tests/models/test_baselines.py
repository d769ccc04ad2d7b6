"""Tests of fluxbridge.models.baselines."""

from __future__ import annotations

import numpy as np
import pytest

from fluxbridge.models.baselines import (
    design_matrix,
    fit_random_forest,
    fit_xgboost,
    predict_baseline,
)


def _data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    igbp = rng.integers(1, 4, n)
    y = 2.0 * X[:, 0] + 1.5 * igbp
    return X, y, igbp


def test_design_matrix_one_hot_and_imputation():
    X = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    D = design_matrix(X, np.array([2, 20]), n_classes=5, impute_mean=np.array([9.0, 7.0]))
    assert D.shape == (2, 7)
    np.testing.assert_array_equal(D[:, 2:].sum(axis=1), [1, 1])
    assert D[0, 2 + 2] == 1 and D[1, 2 + 4] == 1  # out-of-range class clipped to the last
    assert D[0, 1] == 7.0 and D[1, 1] == 4.0


@pytest.mark.parametrize("fit", [fit_random_forest, fit_xgboost])
def test_baselines_learn_a_simple_function(fit):
    X, y, igbp = _data()
    est = fit(X, y, np.ones_like(y), igbp, seed=0, n_estimators=30)
    Xt, yt, it = _data(200, seed=1)
    pred = predict_baseline(est, Xt, it)
    assert pred.dtype == np.float32 and pred.shape == (200,)
    r2 = 1 - np.mean((pred - yt) ** 2) / np.var(yt)
    assert r2 > 0.8
    # the class matters through the one-hot columns
    same = np.zeros((2, 3), dtype=np.float32)
    p = predict_baseline(est, same, np.array([1, 3]))
    assert p[1] - p[0] > 1.5


def test_random_forest_imputes_training_mean():
    X, y, igbp = _data()
    X[::5, 1] = np.nan
    est = fit_random_forest(X, y, None, igbp, seed=0, n_estimators=10)
    expected_mean = np.nanmean(X[:, 1])
    assert est.impute_mean[1] == pytest.approx(expected_mean, rel=1e-5)
    row = X[1:2].copy()
    filled = row.copy()
    row[0, 1] = np.nan
    filled[0, 1] = est.impute_mean[1]
    np.testing.assert_array_equal(predict_baseline(est, row, igbp[1:2]),
                                  predict_baseline(est, filled, igbp[1:2]))


def test_xgboost_accepts_nan_and_weights_matter():
    X, y, igbp = _data()
    X[::3, 2] = np.nan
    w = np.ones_like(y)
    a = fit_xgboost(X, y, w, igbp, seed=0, n_estimators=20)
    assert np.isfinite(predict_baseline(a, X, igbp)).all()
    w2 = np.where(X[:, 0] > 0, 10.0, 0.1)
    b = fit_xgboost(X, y, w2, igbp, seed=0, n_estimators=20)
    assert not np.array_equal(predict_baseline(a, X, igbp), predict_baseline(b, X, igbp))


def test_bad_shapes_and_nan_target():
    X, y, igbp = _data(20)
    with pytest.raises(ValueError):
        fit_random_forest(X, y[:-1], None, igbp, seed=0)
    y[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_xgboost(X, y, None, igbp, seed=0)
