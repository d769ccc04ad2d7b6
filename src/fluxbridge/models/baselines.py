"""FLUXCOM-style baselines: random forest and XGBoost on predictors plus one-hot IGBP class."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

N_CLASSES = 17
"""IGBP codes 0..16 (see :data:`fluxbridge.vocabulary.IGBP_CLASSES`)."""


@dataclass
class Baseline:
    """A fitted baseline and what it needs to predict.

    Attributes
    ----------
    kind
        ``"rf"`` or ``"xgboost"``.
    model
        The fitted ``sklearn.ensemble.RandomForestRegressor`` or ``xgboost.XGBRegressor``.
    n_features
        Number of raw features (before the one-hot classes).
    impute_mean
        Training mean of each raw feature, used for NaN (random forest only; XGBoost routes
        missing values itself).
    n_classes
        Number of one-hot IGBP columns.
    """

    kind: str
    model: Any
    n_features: int
    impute_mean: np.ndarray | None = None
    n_classes: int = N_CLASSES


def design_matrix(X: np.ndarray, igbp: np.ndarray, n_classes: int = N_CLASSES,
                  impute_mean: np.ndarray | None = None) -> np.ndarray:
    """Raw features with one-hot IGBP columns appended, float32 (n, n_feature + n_classes).

    NaN features are replaced by ``impute_mean`` when given, else left NaN.
    """
    X = np.asarray(X, dtype=np.float32)
    if impute_mean is not None:
        X = np.where(np.isnan(X), np.asarray(impute_mean, dtype=np.float32)[None, :], X)
    codes = np.clip(np.asarray(igbp, dtype=np.int64), 0, n_classes - 1)
    onehot = np.zeros((X.shape[0], n_classes), dtype=np.float32)
    onehot[np.arange(X.shape[0]), codes] = 1.0
    return np.concatenate([X, onehot], axis=1)


def _check(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, igbp: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    igbp = np.asarray(igbp, dtype=np.int64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or igbp.shape != (X.shape[0],):
        raise ValueError(f"X {X.shape}, y {y.shape} and igbp {igbp.shape} do not match")
    if not np.isfinite(y).all():
        raise ValueError("y (nee) contains NaN; drop those rows before fitting")
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    return X, y, w, igbp


def fit_random_forest(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None,
                      igbp: np.ndarray, *, seed: int, n_estimators: int = 100,
                      max_depth: int | None = None, min_samples_leaf: int = 5,
                      max_features: float | str = 1.0, max_samples: float | None = None,
                      n_jobs: int = 1) -> Baseline:
    """Fit a random forest regressor of NEE.

    Parameters
    ----------
    X
        (n, n_feature) raw predictors; NaN are imputed with the training mean.
    y
        (n,) NEE [g m-2 d-1].
    weight
        (n,) sample weights [1] or None.
    igbp
        (n,) IGBP codes, appended one-hot.
    seed
        Random seed.
    n_estimators, max_depth, min_samples_leaf, max_features, max_samples, n_jobs
        Passed to ``sklearn.ensemble.RandomForestRegressor`` (``max_samples``: share of the
        samples drawn for each tree's bootstrap; None = all).
    """
    from sklearn.ensemble import RandomForestRegressor

    X, y, w, igbp = _check(X, y, weight, igbp)
    mean = np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0) if X.size else None
    mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)
    model = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                  min_samples_leaf=min_samples_leaf, max_features=max_features,
                                  max_samples=max_samples, n_jobs=n_jobs, random_state=seed)
    model.fit(design_matrix(X, igbp, impute_mean=mean), y, sample_weight=w)
    logger.debug("random forest: %d trees on %d samples", n_estimators, X.shape[0])
    return Baseline("rf", model, X.shape[1], impute_mean=mean)


def fit_xgboost(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, igbp: np.ndarray,
                *, seed: int, n_estimators: int = 300, max_depth: int = 6,
                learning_rate: float = 0.05, subsample: float = 0.8,
                colsample_bytree: float = 1.0, n_jobs: int = 1) -> Baseline:
    """Fit an XGBoost regressor of NEE (missing values handled natively).

    Parameters
    ----------
    X, y, weight, igbp, seed
        As for :func:`fit_random_forest` (raw predictors [their units], NEE [g m-2 d-1], sample
        weights [1], IGBP codes, random seed), NaN in ``X`` allowed: the trees route them.
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree, n_jobs
        Passed to ``xgboost.XGBRegressor`` (``tree_method="hist"``).
    """
    import xgboost

    X, y, w, igbp = _check(X, y, weight, igbp)
    model = xgboost.XGBRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                 learning_rate=learning_rate, subsample=subsample,
                                 colsample_bytree=colsample_bytree, tree_method="hist",
                                 random_state=seed, n_jobs=n_jobs)
    model.fit(design_matrix(X, igbp), y, sample_weight=w)
    logger.debug("xgboost: %d rounds on %d samples", n_estimators, X.shape[0])
    return Baseline("xgboost", model, X.shape[1])


def predict_baseline(est: Baseline, X: np.ndarray, igbp: np.ndarray) -> np.ndarray:
    """NEE [g m-2 d-1] float32 (n,) predicted by a fitted baseline."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != est.n_features:
        raise ValueError(f"X has shape {X.shape}; expected (n, {est.n_features})")
    if X.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    design = design_matrix(X, igbp, est.n_classes, impute_mean=est.impute_mean)
    return np.asarray(est.model.predict(design), dtype=np.float32)
