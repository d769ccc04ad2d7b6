"""Tuning: the estimator's and the optimiser's internals, apart from what a scientist decides.

The ``tuning:`` section of an experiment YAML; every key has a default that works, and the
template lists none of them. ``docs/method.md`` describes each and the measurements behind its
default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrainingTuning(_Strict):
    """Early stopping and the learning-rate schedule."""

    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="share of the training "
                                "sites held out for early stopping (each ensemble member its own)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate over the epochs: constant, or cosine from "
        "network.lr down to lr_floor times it at network.epochs")
    lr_floor: float = Field(0.01, ge=0.0, le=1.0, description="the cosine schedule's last "
                            "learning rate relative to network.lr")


class RegionalTuning(_Strict):
    """The regional term's steps."""

    obs_per_step: int = Field(32, ge=1, description="region-months per training step")
    square: Literal["plain", "unbiased"] = Field(
        "unbiased", description="unbiased: the squared error is the product of two independent "
        "draws' errors; plain: the square of one draw's (biased by its variance)")
    sigma_floor_tg: float = Field(0.0, ge=0.0, description="absolute floor of σ [Tg month-1]; "
                                  "the larger of it and constraint.sigma_floor wins")


class FootprintTuning(_Strict):
    """The tower footprint term's steps and its uncertainty."""

    obs_per_step: int = Field(32, ge=1, description="receptors per training step")
    K: int = Field(64, ge=1, description="cell-days drawn per receptor, in proportion to "
                   "footprint weight (importance sampling)")
    transport_error_ppm: float = Field(
        2.0, ge=0.0, description="model-data mismatch [ppm] added in quadrature to each "
        "value's measurement uncertainty: transport, representation and prior errors "
        "(afternoon continental towers: 2-3 ppm in CarbonTracker-type inversions)")


class CacheTuning(_Strict):
    """The control-variate cache: its entries and how often it is rebuilt."""

    refresh_every: int = Field(1, ge=1, description="epochs between rebuilds of the cache "
                               "(1: at the start of every epoch)")
    features: Literal["daily", "monthly"] = Field(
        "daily", description="cache entries made of cell-days (daily) or of cells' monthly "
        "means (monthly)")
    group_size: int | None = Field(
        None, ge=1, description="cell-days of one class and month with similar predictors "
        "sharing one cache entry, at most this many (a k-d partition); 1: each its own; "
        "None: 64 at 2 degrees, growing with the grid's linear resolution")
    linear: bool = Field(True, description="first-order cache: the entry's value plus the "
                         "network's input gradient times each cell-day's departure")


class OffsetTuning(_Strict):
    """The grid offset of the dual model (``constraint.correction``)."""

    harmonics: int = Field(1, ge=0, le=4, description="seasonal harmonics (1: annual)")
    lr_factor: float = Field(5.0, gt=0, description="learning rate relative to the network's")
    fit_K: int = Field(512, ge=0, description="after training, fit the offsets by σ-weighted "
                       "least squares, the network fixed, with about this many cell-days per "
                       "region-month (0: keep the last step's offsets)")
    match_totals: bool = Field(True, description="that fit matches each region's total over "
                               "its target months exactly (the σ-weighted fit shapes the season)")
    to_network: float = Field(0.05, ge=0, le=1, description="share of the regional gradient "
                              "reaching the network when offsets are learned")
    transfer: Literal["mean", "tested"] = Field(
        "mean", description="hierarchical correction of regions without targets: the regions' "
        "whole mean offset (mean), or the share of it that predicts each constrained region "
        "when that region is left out (tested)")

    @property
    def tested(self) -> bool:
        """Whether regions without targets get only the tested share of the mean."""
        return self.transfer == "tested"


class BaselineTuning(_Strict):
    """Random forest and XGBoost hyperparameters."""

    rf_n_estimators: int = Field(100, ge=1)
    rf_min_samples_leaf: int = Field(5, ge=1)
    rf_max_features: float = Field(0.5, gt=0, le=1)
    rf_max_samples: float | None = Field(0.5, gt=0, le=1)
    xgb_n_estimators: int = Field(300, ge=1)
    xgb_max_depth: int = Field(6, ge=1)
    xgb_learning_rate: float = Field(0.05, gt=0)
    n_jobs: int = Field(-1, description="threads of the baselines; -1 = every core")


class Tuning(_Strict):
    """Every tuning knob, by the part of the method it tunes."""

    training: TrainingTuning = TrainingTuning()
    regional: RegionalTuning = RegionalTuning()
    footprint: FootprintTuning = FootprintTuning()
    cache: CacheTuning = CacheTuning()
    offset: OffsetTuning = OffsetTuning()
    baselines: BaselineTuning = BaselineTuning()
