"""Fitting the FLUXCOM-style baselines (random forest, XGBoost) on site samples."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.models.artifact import FittedModel
from fluxbridge.models.baselines import fit_random_forest, fit_xgboost
from fluxbridge.outputs.files import code_version
from fluxbridge.training.sites import check_samples, feature_columns, usable_rows

BASELINES = ("rf", "xgboost")


def _n_jobs(n: int) -> int:
    """Worker threads of the baselines: ``n``, or every core for ``n <= 0``."""
    return n if n > 0 else max(1, os.cpu_count() or 1)


def train_baseline(kind: str, samples: pd.DataFrame, cfg: ExperimentConfig, *,
                   train_sites: Sequence[str] | np.ndarray, name: str | None = None
                   ) -> FittedModel:
    """A baseline (``"rf"`` or ``"xgboost"``) fitted on the training sites' samples, with the
    hyperparameters of ``cfg.tuning.baselines`` and the seed ``cfg.seed``."""
    check_samples(samples)
    if kind not in BASELINES:
        raise InputError(f"unknown baseline {kind!r}", variable="kind",
                         expected="'rf' or 'xgboost'")
    features = feature_columns(samples, cfg.features)
    rows, n_masked = usable_rows(samples, train_sites, features)
    if rows.size == 0:
        raise InputError("no sample with finite NEE and features at the training sites",
                         variable="train_sites", expected="sites present in the samples")
    df = samples.iloc[rows]
    X = df[features].to_numpy(dtype=np.float32, na_value=np.nan)
    y = df["nee"].to_numpy(dtype=np.float64)
    w = np.nan_to_num(df["weight"].to_numpy(dtype=np.float64))
    igbp = df["igbp_code"].to_numpy(dtype=np.int64)
    b = cfg.tuning.baselines
    if kind == "rf":
        est = fit_random_forest(X, y, w, igbp, seed=cfg.seed, n_estimators=b.rf_n_estimators,
                                min_samples_leaf=b.rf_min_samples_leaf,
                                max_features=b.rf_max_features, max_samples=b.rf_max_samples,
                                n_jobs=_n_jobs(b.n_jobs))
    else:
        est = fit_xgboost(X, y, w, igbp, seed=cfg.seed, n_estimators=b.xgb_n_estimators,
                          max_depth=b.xgb_max_depth, learning_rate=b.xgb_learning_rate,
                          n_jobs=_n_jobs(b.n_jobs))
    return FittedModel(kind=kind, feature_names=features, normaliser=None, estimator=est,
                       config=cfg.to_dict(), name=name or kind,
                       provenance={"code_version": code_version(), "seed": cfg.seed,
                                   "n_train_sites": int(df["site"].nunique()),
                                   "masked_for_missing_features": {"site_samples": n_masked}})
