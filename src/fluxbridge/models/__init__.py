"""Models of NEE: the torch network, FLUXCOM-style baselines and the saved-model artifact."""

from fluxbridge.models.artifact import FittedModel, load_model
from fluxbridge.models.baselines import (
    Baseline,
    fit_random_forest,
    fit_xgboost,
    predict_baseline,
)
from fluxbridge.models.network import NEENet

__all__ = [
    "Baseline",
    "FittedModel",
    "NEENet",
    "fit_random_forest",
    "fit_xgboost",
    "load_model",
    "predict_baseline",
]
