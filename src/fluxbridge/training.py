"""Training with the dual constraint: site error plus the regional error of a sparse operator.

    L = mean_i w_i (f(x_i) − y_i)² / s_y²  +  λ mean_(r,m) (F̂_rm − μ_rm)² / σ_rm²

``s_y`` is the weighted standard deviation of training NEE, ``F̂`` an estimate of the regional
monthly total from :mod:`fluxbridge.operators`, ``μ`` and ``σ = max(spread, floor)`` the
inversion ensemble's mean and spread. λ = 0 is the site-only (FLUXCOM-style) model.

Also here: site-grouped and spatially blocked folds, cross-validation of the network and the
baselines on identical folds, ensembles, early stopping and per-epoch checkpoints that resume.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import xarray as xr
from tqdm.auto import tqdm

from fluxbridge.cache import CacheGroups, default_group_size
from fluxbridge.errors import FluxbridgeError, InputError
from fluxbridge.features import GridFeatures, Normaliser
from fluxbridge.models.artifact import FittedModel
from fluxbridge.models.baselines import fit_random_forest, fit_xgboost
from fluxbridge.models.network import NEENet
from fluxbridge.operators import (
    Estimator,
    ExactEstimator,
    FixedEstimator,
    RegionalOperator,
    ResampledEstimator,
    Sample,
    make_estimator,
    squared_error,
    squared_error_grad,
)
from fluxbridge.outputs.files import atomic_path, code_version

log = logging.getLogger(__name__)

RESERVED_COLUMNS = frozenset({"site", "time", "igbp", "igbp_code", "lat", "lon", "nee",
                              "weight", "fold"})
CHECKPOINT_NAME = "checkpoint.pt"
DRAW_AHEAD = 32  # steps whose region-months are drawn in one call (see Trainer.draw)
REFRESH_WINDOW = 20  # steps whose estimate variance the control variate's refresh rule averages
FLOOR_TARGETS = 320  # region-months drawn to measure a fresh cache's floor (_fresh_variance)
DRIFT_PROBES = 512  # fixed draws at which the network's drift from its cache is fitted
DRIFT_SHRINK = 0.01  # ridge on each class's departure from the shared drift fit (relative)
# (benchmarks/operator.py at 2°, 1000 steps from the pretrained network without a refresh: mean
# estimate variance 0.030 σ² at 512 probes unshrunk, 0.014 at 512 shrunk or 1024 unshrunk, 0.013
# at 1024 shrunk. In training, six runs each: 512 and 1024 shrunk probes gave the same refreshes
# and spread, 5.3 and 5.1 refreshes at 0.098 and 0.097 σ at 2°, 6.5 at 0.103 and 0.102 σ at 0.5°,
# and 512 the cheaper step, 1.74× and 1.80× a site-only step against 1.85× at both grids)


def median_step_variance(variance: np.ndarray, n: int, rng: np.random.Generator,
                         resamples: int = 512) -> float:
    """The median, over steps, of a step's mean variance over its ``n`` region-months, from
    the variances of a pool of region-months (each step's ``n`` drawn from the pool without
    replacement), by ``resamples`` random steps.

    Per-region-month variances are heavy tailed, and so is a step's mean over a few of them.
    Coefficients of variation of the floor at 2°, over 30 fresh caches' draws: at 8
    region-months a step, 0.12 from a pool of 320, 0.22 from 160, and 0.24 for the median of
    20 actual steps (the same 160 draws); at 32 a step, 0.21 from 320, and 0.48 for the median
    of 5 actual steps (160 draws; 20 steps, 0.16, cost a quarter of a refresh).
    """
    n = min(n, variance.size)
    keys = rng.random((resamples, variance.size))
    steps = np.argpartition(keys, n - 1, axis=1)[:, :n]  # a uniform n-subset per row
    return float(np.median(variance[steps].mean(axis=1)))


@dataclass(frozen=True)
class TrainSettings:
    """Everything that sets how a model is trained (the integrator maps YAML into it).

    Network: ``width``, ``depth``, ``activation``, ``dropout``, ``embed_dim`` (see
    :class:`fluxbridge.models.network.NEENet`); optimisation: ``lr``, ``weight_decay``
    (AdamW), ``batch_size`` (site samples per step), ``epochs``, ``patience`` (epochs without
    improvement of the validation loss), ``val_fraction`` (share of training sites held out for
    early stopping in :func:`train_ensemble`), ``n_ensemble``, ``seed``, ``device``
    (``"auto"``: CUDA when torch sees a GPU).

    Constraint: ``lambda_regional`` (λ), ``estimator``, ``K`` (cell-days per region-month),
    ``sampling``, ``refresh_every`` (epochs between control-variate cache refreshes; 0: only
    the first epoch's and ``refresh_std``'s),
    ``refresh_std`` (refresh when the draws' own estimate of the regional estimates' standard
    deviation, mean over the last ``REFRESH_WINDOW`` steps, exceeds this many σ, or this share
    of the rms regional misfit when that is larger; 0: off; see
    :meth:`Trainer._refresh_if_noisy`),
    ``cache_features`` and ``cache_group_size`` (cache entries: ``daily``, up to this many
    cell-days of one vegetation class and month with similar predictors, a k-d partition;
    ``monthly``, up to this many cells' monthly means of one class; ``daily`` with 1: the
    model itself; None: :func:`fluxbridge.cache.default_group_size` of the grid, 64 at 2°),
    ``cache_linear``
    (first-order cache: the group value plus the input gradient times each cell-day's
    departure from the group mean), ``cache_precision`` (``bfloat16`` refreshes the cache
    under bfloat16 autocast; ``auto``: where the device computes it natively), ``cache_drift``
    (correct the cache for the network's drift since its refresh, see
    :meth:`Trainer.drift_design`), ``grid_offset`` (with
    λ > 0, learn a per-region offset with a seasonal harmonic that applies to grid cells only:
    what towers in undisturbed stands cannot see; ``offset_harmonics`` seasonal harmonics),
    ``offset_fit_K`` (after training, :meth:`Trainer.fit_offsets` with about this many
    cell-days per region-month, drawn by the training estimator; 0: off; with
    ``offset_match_totals`` each region's total over its target months is matched exactly),
    ``obs_per_step`` (region-months per step), ``square`` (``"unbiased"`` uses two independent
    half-samples), ``sigma_floor`` (σ floor as a fraction of the median spread) and
    ``sigma_floor_tg`` (absolute floor [Tg month-1]; the larger floor wins).

    Baselines: ``rf_*`` and ``xgb_*`` parameters, ``n_jobs`` threads (≤ 0: every core).
    ``features``: predictor columns (None: those
    of the grid, else every non-reserved column of the samples).
    """

    width: int = 64
    depth: int = 3
    activation: str = "silu"
    dropout: float = 0.0
    embed_dim: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 2048
    epochs: int = 30
    patience: int = 6
    val_fraction: float = 0.15
    n_ensemble: int = 1
    seed: int = 0
    device: str = "auto"
    lambda_regional: float = 0.0
    estimator: Literal["exact", "fixed", "resampled", "control_variate"] = "control_variate"
    K: int = 64
    sampling: Literal["uniform", "area", "stratified"] = "area"
    refresh_every: int = 0
    refresh_std: float = 0.1
    cache_features: Literal["daily", "monthly"] = "daily"
    cache_group_size: int | None = None
    cache_linear: bool = True
    cache_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    cache_drift: bool = True
    grid_offset: bool = True
    offset_harmonics: int = 1
    offset_match_totals: bool = True
    offset_lr_factor: float = 5.0
    offset_fit_K: int = 512
    regional_to_network: float = 0.05
    obs_per_step: int = 32
    square: Literal["plain", "unbiased"] = "unbiased"
    sigma_floor: float = 0.5
    sigma_floor_tg: float = 0.0
    rf_n_estimators: int = 100
    rf_min_samples_leaf: int = 5
    rf_max_features: float = 0.5
    rf_max_samples: float | None = 0.5
    xgb_n_estimators: int = 300
    xgb_max_depth: int = 6
    xgb_learning_rate: float = 0.05
    n_jobs: int = -1
    features: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary."""
        d = dataclasses.asdict(self)
        d["features"] = None if self.features is None else list(self.features)
        return d


class TrainingInterrupted(FluxbridgeError):
    """Raised by :func:`train_network` when ``stop_after_epochs`` is reached (for resume tests
    and time-boxed runs); the checkpoint of the last finished epoch is on disk."""


@functools.cache
def _bfloat16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (a CUDA GPU that supports it, or a CPU
    with AVX-512 BF16 or AMX, as oneDNN reports): there a bfloat16 cache refresh is about
    twice as fast; elsewhere it would be emulated, and slower."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def feature_columns(samples: pd.DataFrame, settings: TrainSettings,
                    grid: GridFeatures | None = None) -> list[str]:
    """The predictor columns used for training (see :class:`TrainSettings`)."""
    if settings.features is not None:
        names = list(settings.features)
    elif grid is not None:
        names = list(grid.feature_names)
    else:
        names = [c for c in samples.columns if c not in RESERVED_COLUMNS]
    missing = [n for n in names if n not in samples.columns]
    if missing or not names:
        raise InputError("samples lack feature columns", variable=", ".join(missing) or "features",
                         expected="one column per feature (see fluxbridge.features.site_samples)")
    if grid is not None and list(grid.feature_names) != names:
        raise InputError(f"grid features {grid.feature_names} differ from {names}",
                         variable="features", expected="the same features in the same order")
    return names


def _check_samples(samples: pd.DataFrame) -> None:
    for name in ("site", "nee", "weight", "igbp_code"):
        if name not in samples.columns:
            raise InputError("samples table lacks a column", variable=name,
                             expected="the table of fluxbridge.features.site_samples")


def _rows_of(samples: pd.DataFrame, sites: Sequence[str] | np.ndarray,
             features: Sequence[str]) -> tuple[np.ndarray, int]:
    """Rows of ``sites`` with finite NEE and every feature finite, and how many rows with
    finite NEE were masked for a missing feature (never imputed into the loss)."""
    mask = samples["site"].isin(list(np.asarray(sites).astype(str))).to_numpy() \
        & np.isfinite(samples["nee"].to_numpy(dtype=float))
    X = samples[list(features)].to_numpy(dtype=np.float64, na_value=np.nan)
    complete = np.isfinite(X).all(axis=1)
    n_masked = int(np.count_nonzero(mask & ~complete))
    if n_masked:
        log.info("%d site samples masked for a missing feature", n_masked)
    return np.flatnonzero(mask & complete), n_masked


class Trainer:
    """State of one network's training: data on the device, model, optimiser, operator.

    Built by :func:`train_network`; exposed for benchmarks that time single steps.

    Parameters are those of :func:`train_network`.
    """

    def __init__(self, samples: pd.DataFrame, settings: TrainSettings, *,
                 train_sites: Sequence[str] | np.ndarray,
                 val_sites: Sequence[str] | np.ndarray | None = None,
                 grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                 regions: xr.Dataset | None = None) -> None:
        _check_samples(samples)
        self.settings = s = settings
        self.device = _device(s.device)
        self.features = feature_columns(samples, s, grid)
        train_rows, n_masked = _rows_of(samples, train_sites, self.features)
        self.masked: dict[str, int] = {"site_samples": n_masked, "grid_cell_days": 0}
        if train_rows.size == 0:
            raise InputError("no sample with finite NEE and features at the training sites",
                             variable="train_sites", expected="sites present in the samples")
        self.normaliser = Normaliser.fit(samples.iloc[train_rows], self.features)
        x, c, y, w = self._tensors(samples, train_rows)
        self.x, self.c, self.y, self.w = x, c, y, w
        wy = w.cpu().double()
        yy = y.cpu().double()
        y_mean = float((wy * yy).sum() / wy.sum().clamp_min(1e-12))
        y_scale = float(torch.sqrt((wy * (yy - y_mean) ** 2).sum() / wy.sum().clamp_min(1e-12)))
        self.s_y = y_scale if y_scale > 0 else 1.0
        self.val = None
        if val_sites is not None and len(val_sites):
            val_rows, _ = _rows_of(samples, val_sites, self.features)
            if val_rows.size:
                self.val = self._tensors(samples, val_rows)

        torch.manual_seed(s.seed)
        n_regions = 0
        if s.lambda_regional > 0 and s.grid_offset and regions is not None:
            n_regions = int(np.max(regions["region"].values))
        self.model = NEENet(len(self.features), width=s.width, depth=s.depth,
                            activation=s.activation, dropout=s.dropout, embed_dim=s.embed_dim,
                            n_regions=n_regions, offset_harmonics=s.offset_harmonics)
        self.model.set_target_scaling(y_mean, self.s_y)
        self.model.to(self.device)
        offset = [] if self.model.offset is None else list(self.model.offset.parameters())
        others = [p for p in self.model.parameters() if all(p is not q for q in offset)]
        groups: list[dict[str, Any]] = [{"params": others}]
        if offset:  # regional offsets learn fast, so the network is left to the towers
            groups.append({"params": offset, "lr": s.lr * s.offset_lr_factor,
                           "weight_decay": 0.0})
        # fused: one kernel per group instead of a dozen per tensor (on the CPU a step's
        # update took 48 us against 177 us)
        self.optimizer = torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay,
                                           fused=True)
        self.rng = np.random.default_rng(s.seed)
        self.obs_rng = np.random.default_rng([s.seed, 1])
        self.floor_rng = np.random.default_rng([s.seed, 2])  # see _fresh_variance
        self.grid = grid
        self._center: tuple[CacheGroups, np.ndarray] | None = None  # of the cache's groups
        self._tables: dict[str, Any] | None = None
        self.cache_state: dict[str, torch.Tensor] | None = None  # the model at the last refresh
        self.refreshes = 0
        self._noise: list[float] = []  # per step of the epoch: estimate variance / σ²
        self._misfit: list[float] = []  # per step of the epoch: regional error / σ²
        self.cache_floor: float | None = None  # estimate variance of a fresh cache
        self._probes: dict[str, Any] | None = None  # see _drift_probes
        self._probe_base: np.ndarray | None = None  # the network there at the last refresh
        self._drift_design: np.ndarray | None = None
        self._design: np.ndarray | None = None
        self._ahead: list[tuple[np.ndarray, Sample, torch.Tensor, torch.Tensor]] = []
        self._dayofyear = (None if grid is None
                           else pd.DatetimeIndex(grid.times).day_of_year.to_numpy())
        self.operator: RegionalOperator | None = None
        self.estimator: Estimator | None = None
        if s.lambda_regional > 0:
            self._build_operator(grid, targets, regions)
            if self.model.offset is not None:  # built here, not within the first step
                self.offset_design()

    def _tensors(self, samples: pd.DataFrame, rows: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        df = samples.iloc[rows]
        X = df[self.features].to_numpy(dtype=np.float32, na_value=np.nan)
        return (torch.from_numpy(self.normaliser.transform(X)).to(self.device),
                torch.tensor(df["igbp_code"].to_numpy(dtype=np.int64), device=self.device),
                torch.tensor(df["nee"].to_numpy(dtype=np.float32), device=self.device),
                torch.tensor(np.nan_to_num(df["weight"].to_numpy(dtype=np.float32)),
                             device=self.device))

    def _build_operator(self, grid: GridFeatures | None, targets: xr.Dataset | None,
                        regions: xr.Dataset | None) -> None:
        s = self.settings
        for name, value in (("grid", grid), ("targets", targets), ("regions", regions)):
            if value is None:
                raise InputError(f"lambda_regional = {s.lambda_regional} needs {name}",
                                 variable=name, expected="grid features, targets and regions "
                                 "(or lambda_regional = 0 for a site-only model)")
        assert grid is not None and targets is not None and regions is not None
        self.operator = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
        # cell-days with a missing feature are masked, as in the upscaled totals
        before = self.operator.matrix.nnz
        self.operator.matrix = (self.operator.matrix
                                @ sp.diags(grid.valid().ravel().astype(np.float64))).tocsr()
        self.operator.matrix.eliminate_zeros()
        self.masked["grid_cell_days"] = int(before - self.operator.matrix.nnz)
        if self.masked["grid_cell_days"]:
            log.info("%d cell-days of the regions masked for a missing feature",
                     self.masked["grid_cell_days"])
        matched = self.operator.match_targets(targets)
        spread = matched["spread"].to_numpy(dtype=float)
        floor = max(s.sigma_floor * float(np.median(spread)), s.sigma_floor_tg)
        sigma = np.maximum(spread, floor)
        if not np.all(sigma > 0):
            raise InputError("zero inversion spread and no floor", variable="nee_spread",
                             expected="a positive sigma_floor or sigma_floor_tg")
        self.obs_ids = matched["obs"].to_numpy(dtype=np.int64)
        # targets and their σ [Tg month-1], float64 on the host: the regional term is numpy
        self.mu = matched["mu"].to_numpy(dtype=np.float64)
        self.sigma = sigma
        n_rep = 2 if s.square == "unbiased" and s.estimator != "exact" else 1
        self.estimator = make_estimator(s.estimator, self.operator, K=s.K, sampling=s.sampling,
                                        strata=grid.igbp_code, n_rep=n_rep, seed=s.seed)
        log.info("regional constraint: %d region-months, estimator %s, K = %d, sigma floor "
                 "%.3g Tg", self.obs_ids.size, s.estimator, s.K, floor)

    # -- losses -----------------------------------------------------------------------------
    def site_loss(self, idx: torch.Tensor, data: tuple[torch.Tensor, ...] | None = None
                  ) -> torch.Tensor:
        """Weighted squared site error over rows ``idx``, in units of s_y²."""
        x, c, y, w = data or (self.x, self.c, self.y, self.w)
        pred = self.model(x[idx], c[idx])
        return (w[idx] * (pred - y[idx]) ** 2).mean() / self.s_y**2

    def _cell_tables(self) -> dict[str, Any]:
        """Tensors that turn grid columns into network inputs without numpy copies: the grid's
        raw features as (n_time * n_cell, n_feature) rows (a view of ``grid.values``, on the
        CPU), the normaliser's float64 mean and std, and on the device each cell's class and
        region and each time's day of year; and in numpy each cell's class slot (0, 1, ... over
        the grid's classes: the drift fit's). Built once, on first use."""
        if self._tables is None:
            assert self.grid is not None
            g = self.grid
            with warnings.catch_warnings():  # read-only grids are fine: never written to
                warnings.simplefilter("ignore", UserWarning)
                rows = torch.from_numpy(g.rows())
            self._tables = {
                "rows": rows,
                "mean": torch.as_tensor(self.normaliser.mean, dtype=torch.float64),
                "std": torch.as_tensor(self.normaliser.std, dtype=torch.float64),
                "igbp": torch.as_tensor(g.igbp_code, dtype=torch.int64, device=self.device),
                "region": torch.as_tensor(g.region, dtype=torch.int64, device=self.device),
                "slot": np.unique(g.igbp_code, return_inverse=True)[1].astype(np.int64),
                "basis": self.model.offset_basis(torch.tensor(
                    self._dayofyear, dtype=torch.int64, device=self.device)),
            }
        return self._tables

    def _columns(self, time_idx: np.ndarray, cell_idx: np.ndarray) -> torch.Tensor:
        assert self.grid is not None
        t = torch.as_tensor(np.asarray(time_idx, dtype=np.int64))
        c = torch.as_tensor(np.asarray(cell_idx, dtype=np.int64))
        n_time, n_cell = self.grid.times.size, self.grid.n_cell
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_time or int(c.min()) < 0
                          or int(c.max()) >= n_cell):
            raise IndexError(f"(time, cell) outside the grid's {n_time} x {n_cell}")
        return t * n_cell + c

    def _normalised(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 CPU tensor of :meth:`Normaliser.transform` (the same numbers, in torch:
        float64 arithmetic, NaN and infinities → 0) of raw features (n, n_feature)."""
        tab = self._cell_tables()
        if isinstance(X, np.ndarray):
            with warnings.catch_warnings():  # read-only input is fine: never written to
                warnings.simplefilter("ignore", UserWarning)
                X = torch.from_numpy(np.ascontiguousarray(X))
        Z = X.double().sub_(tab["mean"]).div_(tab["std"])
        return Z.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).float()

    def column_inputs(self, col: torch.Tensor | np.ndarray
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features and classes of grid columns ``t * n_cell + c`` (as in
        :attr:`Sample.col`), on the device.

        Gathers the raw rows, then normalises them as :meth:`Normaliser.transform` does
        (float64 arithmetic, NaN → 0, float32 result: the same numbers), in torch.
        """
        tab = self._cell_tables()
        col = torch.as_tensor(col).cpu()
        Z = self._normalised(tab["rows"].index_select(0, col))
        cell = col.to(self.device) % self.grid.n_cell
        return Z.to(self.device), tab["igbp"][cell]

    def cell_inputs(self, time_idx: np.ndarray, cell_idx: np.ndarray
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features and classes of (time, cell) pairs of the grid, on the device."""
        return self.column_inputs(self._columns(time_idx, cell_idx))

    def predict_cells(self, time_idx: np.ndarray, cell_idx: np.ndarray) -> torch.Tensor:
        """Model NEE [g m-2 d-1] at (time, cell) pairs of the grid (differentiable), with the
        grid offset of the cells' regions when the model has one."""
        return self._predict_columns(self._columns(time_idx, cell_idx))[0]

    def _predict_columns(self, col: torch.Tensor | np.ndarray, offset: bool = True
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model NEE at grid columns (with ``offset`` the grid offset included) and the
        network's inputs there."""
        x, c = self.column_inputs(col)
        pred = self.model(x, c)
        return (pred + self._column_offset(col) if offset else pred), x

    def _column_offset(self, col: torch.Tensor | np.ndarray) -> torch.Tensor | float:
        """Grid offset of grid columns (0 when the model has none)."""
        if self.model.offset is None:
            return 0.0
        assert self.grid is not None
        tab = self._cell_tables()
        col = torch.as_tensor(col).to(self.device)
        n_cell = self.grid.n_cell
        return self.model.offset_at(tab["region"][col % n_cell], tab["basis"][col // n_cell])

    def draw(self) -> tuple[np.ndarray, Sample, torch.Tensor, torch.Tensor]:
        """The next step's ``obs_per_step`` random region-months (positions among the targets),
        their draw, and the network's inputs (features, classes) at the draws.

        Sampled estimators draw for ``DRAW_AHEAD`` steps at once and gather those steps' inputs
        at once (one call instead of one per step: the step's fixed cost is mostly such calls);
        the queue is emptied at each epoch's start, so a resumed run draws the same.
        """
        assert self.estimator is not None
        if not self._ahead:
            ahead = 1 if isinstance(self.estimator, ExactEstimator) else DRAW_AHEAD
            self._ahead = self._draw_steps(ahead)[::-1]
        return self._ahead.pop()

    def _draw_steps(self, n_steps: int
                    ) -> list[tuple[np.ndarray, Sample, torch.Tensor, torch.Tensor]]:
        """:meth:`draw` for ``n_steps`` steps: their region-months drawn in one call of the
        estimator, its draws put in order of step (stably: within a step, replicates and rows
        keep the estimator's order, as :meth:`Estimator.estimate_with_variance` needs), so that
        each step's draws and inputs are views of one contiguous run."""
        assert self.estimator is not None
        n = min(self.settings.obs_per_step, self.obs_ids.size)
        picks = [self.obs_rng.choice(self.obs_ids.size, size=n, replace=False)
                 for _ in range(n_steps)]
        every = self.estimator.draw(self.obs_ids[np.concatenate(picks)], self.obs_rng)
        step = every.obs // n
        order = np.argsort(step, kind="stable")
        obs, rep, col, weight = (a[order] for a in (every.obs, every.rep, every.col,
                                                    every.weight))
        stratum = None if every.stratum is None else every.stratum[order]
        bounds = np.searchsorted(step[order], np.arange(n_steps + 1))
        xs, cs = self.column_inputs(col)
        steps = []
        for k, pick in enumerate(picks):
            at = slice(bounds[k], bounds[k + 1])
            sample = Sample(every.obs_ids[k * n:(k + 1) * n], obs[at] - k * n, rep[at], col[at],
                            weight[at], every.n_rep, every.n_cell,
                            None if stratum is None else stratum[at])
            steps.append((pick, sample, xs[at], cs[at]))
        return steps

    def totals(self, pred: torch.Tensor, pick: np.ndarray, sample: Sample,
               inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Estimated model totals (n_rep, len(pick)) [Tg month-1] of the targets at positions
        ``pick``: the estimator's estimate from the network's predictions ``pred`` (grid offset
        excluded; and its inputs) at the draws of ``sample``, plus the exact totals of the grid
        offset (:meth:`offset_totals`)."""
        assert self.estimator is not None
        at_draws, totals = self._drift_shift(pick, sample, inputs)
        est = self.estimator.estimate(pred - torch.as_tensor(at_draws).to(pred), sample, inputs)
        return self._with_offset(est + torch.as_tensor(totals).to(est), pick)

    def _with_offset(self, network_totals: torch.Tensor, pick: np.ndarray) -> torch.Tensor:
        """Network totals (n_rep, len(pick)) plus the grid offset's exact totals, if any."""
        if self.model.offset is None:
            return network_totals
        return network_totals + self.offset_totals(pick).to(network_totals.dtype).unsqueeze(0)

    def regional_error(self, pred: torch.Tensor, pick: np.ndarray, sample: Sample,
                       inputs: torch.Tensor | None = None
                       ) -> tuple[float, np.ndarray, float]:
        """Mean regional error in units of σ² from the network's predictions ``pred`` (and its
        inputs) at the draws of ``sample`` (see :meth:`totals`; no graph is built through
        ``pred``), its gradient with respect to the estimated totals (n_rep, len(pick)), and
        the draws' own estimate of the variance of those totals (the replicates' mean), mean
        over the rows in units of σ².

        Every estimator is affine in the predictions, with the draws' weights as slopes, so the
        gradient with respect to ``pred`` is ``sample.weight`` times the gradient of the draw's
        total (see :meth:`step`). Computed in numpy float64: a step's few hundred draws make
        this a few dozen small operations, each a fraction of torch's cost.
        """
        assert self.estimator is not None
        at_draws, totals = self._drift_shift(pick, sample, inputs)
        est, var = self.estimator.estimate_with_variance(
            pred.detach().double().cpu().numpy() - at_draws, sample, inputs)
        est = est + totals
        if self.model.offset is not None:
            with torch.no_grad():
                est = est + self.offset_totals(pick).cpu().numpy()
        scale = 1.0 / (self.sigma[pick] ** 2 * pick.size)
        mu = self.mu[pick]
        noise = float(np.mean(self._relative_variance(var, pick)))
        return (float((squared_error(est, mu) * scale).sum()),
                squared_error_grad(est, mu) * scale, noise)

    def _relative_variance(self, var: np.ndarray, pick: np.ndarray) -> np.ndarray:
        """The variance of the replicates' mean estimate at target positions ``pick`` in
        units of σ² (len(pick),), from the draws' estimate of each replicate's (n_rep,
        len(pick))."""
        return var.mean(axis=0) / var.shape[0] / self.sigma[pick] ** 2

    def _drift_features(self, col: np.ndarray, inputs: torch.Tensor
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Vegetation-class slot (n,) and ``[1, x]`` (n, 1 + n_input) float64 of grid columns
        with normalised network inputs ``x``."""
        assert self.grid is not None
        slot = self._cell_tables()["slot"][col % self.grid.n_cell]
        x = inputs.detach().cpu().numpy()
        z = np.empty((x.shape[0], 1 + x.shape[1]))
        z[:, 0], z[:, 1:] = 1.0, x
        return slot, z

    def drift_design(self) -> np.ndarray:
        """Exact totals of the cache's drift basis: (n_targets, n_class * (1 + n_input))
        float64 [Tg month-1 per g m-2 d-1 of coefficient] (built once).

        Between refreshes the network moves away from its cache, and the sampled correction
        ``f − g`` grows. In the twin world almost all of that drift is, within a region-month,
        a linear function of the normalised inputs with coefficients per vegetation class,
        and it changes direction within a few steps (the optimiser's jitter): a fit to earlier
        steps' draws removed a third of it, a fit to the current network all of it. So the
        cache is corrected by such a function, ``g + β_c · [1, x]``, with β fitted to the
        network's change since the refresh at fixed probes (:meth:`drift_coef`): its totals are
        this matrix times β, exactly, and β never depends on a step's draws, so every estimate
        stays unbiased; only its variance falls, and the cache lasts longer between refreshes
        (in the demo world at K = 64, fitted at 512 probes, the variance stayed within 25 % of
        a fresh cache's for 200 steps, where without the fit it grew by 85 % within 20).
        """
        if self._drift_design is None:
            tab = self._cell_tables()
            slot = tab["slot"]
            rows = tab["rows"].numpy()

            def fields(col: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
                x = rows[col]  # raw: the operator's cell-days have every feature finite
                return slot[col % self.operator.n_cell], [np.ones(col.size), *x.T]

            n_slot, n_in = int(slot.max()) + 1, rows.shape[1]
            raw = self._basis_totals(n_slot, fields).reshape(-1, n_slot, 1 + n_in)
            # totals of the normalised inputs from the raw ones: (Σ h x − m Σ h) / s
            mean, std = self.normaliser.mean, self.normaliser.std
            raw[..., 1:] = (raw[..., 1:] - raw[..., :1] * mean) / std
            self._drift_design = raw.reshape(raw.shape[0], -1)
        return self._drift_design

    def _drift_probes(self) -> dict[str, Any]:
        """``DRIFT_PROBES`` fixed cell-days (a random subset of one draw of every target by the
        training estimator, the same at every refresh and after a resume), their network
        inputs, classes and class slots, and the linear map from the network's change δ there
        to the drift's coefficients β_c of ``[1, x]`` per class slot, as one
        (n_slot * (1 + n_input), n_probes) matrix. Built once.

        The fit is weighted least squares, ω = (draw weight / σ of its target)² (each draw's
        share of the estimate's variance), with ``β_c = β + γ_c``: a fit shared by all classes
        plus each class's departure from it, the departures shrunk by a ridge of
        ``DRIFT_SHRINK`` times the mean diagonal of the normal equations. Classes with few
        probes then lean on the shared fit instead of fitting their probes' noise (a class
        without probes takes it whole).
        """
        if self._probes is None:
            assert self.estimator is not None
            rng = np.random.default_rng([self.settings.seed, 7])
            sample = self.estimator.draw(self.obs_ids, rng)
            keep = np.sort(rng.choice(len(sample), min(DRIFT_PROBES, len(sample)),
                                      replace=False))
            col = sample.col[keep]
            x, c = self.column_inputs(col)
            slot, z = self._drift_features(col, x)
            w = (sample.weight[keep] / self.sigma[sample.obs[keep]]) ** 2
            n_slot, m = int(self._cell_tables()["slot"].max()) + 1, z.shape[1]
            design = np.zeros((slot.size, 1 + n_slot, m))  # [β, γ_0, γ_1, ...] per probe
            design[:, 0] = z
            design[np.arange(slot.size), 1 + slot] = z
            design = design.reshape(slot.size, -1)
            normal = design.T @ (w[:, None] * design)
            ridge = np.full(normal.shape[0], DRIFT_SHRINK)
            ridge[:m] = 1e-6  # the shared fit: only stabilised
            scale = normal.diagonal().mean() + 1e-300
            solve = np.linalg.solve(normal + np.diag(ridge * scale), design.T * w)
            fit = solve[:m][None] + solve[m:].reshape(n_slot, m, slot.size)  # β + γ_c
            self._probes = {"x": x, "c": c, "slot": slot, "shape": (n_slot, m),
                            "fit": fit.reshape(n_slot * m, slot.size)}
        return self._probes

    def _probe_values(self) -> np.ndarray:
        """The network (eval mode, no graph) at the drift probes, float64."""
        probes = self._drift_probes()
        with torch.no_grad(), self._evaluating():
            return self.model(probes["x"], probes["c"]).double().cpu().numpy()

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The network in eval mode within the block, then back in its mode. Only a network
        with dropout is switched: the switch walks every module, a sizeable share of a step's
        Python where it happens at every step (the drift fit's probes)."""
        switch = self.model.training and self.settings.dropout > 0
        if switch:
            self.model.eval()
        try:
            yield
        finally:
            if switch:
                self.model.train()

    def drift_coef(self) -> np.ndarray | None:
        """The network's drift from its cache since the last refresh, fitted at the probes:
        coefficients (n_class_slot, 1 + n_input) of ``[1, x]`` per vegetation class (see
        :meth:`drift_design`); None without a drift fit. A function of the current network and
        the fixed probes only, never of a step's draws, so the estimates stay unbiased."""
        if self._probe_base is None or not self.settings.cache_drift \
                or self.estimator is None or not self.estimator.needs_cache():
            return None
        probes = self._drift_probes()
        return (probes["fit"] @ (self._probe_values() - self._probe_base)).reshape(
            probes["shape"])

    def _drift_shift(self, pick: np.ndarray, sample: Sample, inputs: torch.Tensor | None
                     ) -> tuple[np.ndarray | float, np.ndarray]:
        """The fitted drift at the draws (n,) and its exact totals at target positions
        ``pick`` (len(pick),) float64; zeros without a drift fit."""
        coef = None if inputs is None else self.drift_coef()
        if coef is None:
            return 0.0, np.zeros(len(pick))
        slot, z = self._drift_features(sample.col, inputs)
        return (np.einsum("ij,ij->i", z, coef[slot]),
                self.drift_design()[pick] @ coef.ravel())

    def _basis_totals(self, n_groups: int,
                      fields: Callable[[np.ndarray], tuple[np.ndarray, Sequence[np.ndarray]]],
                      chunk: int = 1 << 22) -> np.ndarray:
        """Exact totals at the targets of basis fields that are zero outside their group of
        cells: (n_targets, n_groups * n_basis) float64, column ``group * n_basis + k``.
        ``fields(col)`` gives the group of each grid column (-1: none) and the basis values
        there (n_basis, n); the operator's rows are read in chunks of ``chunk`` entries."""
        assert self.operator is not None
        rows = self.operator.matrix[self.obs_ids].tocoo()
        size = self.obs_ids.size * n_groups
        D: np.ndarray | None = None
        for a in range(0, rows.nnz, chunk):
            group, values = fields(rows.col[a:a + chunk])
            on = group >= 0
            key = rows.row[a:a + chunk][on] * n_groups + group[on]
            data = rows.data[a:a + chunk][on]
            part = np.stack([np.bincount(key, data * v[on], minlength=size) for v in values],
                            axis=1)
            D = part if D is None else D + part
        if D is None:  # no entries: the basis's width from an empty call
            D = np.zeros((size, len(fields(np.zeros(0, dtype=np.int64))[1])))
        return D.reshape(self.obs_ids.size, -1)

    def offset_design(self) -> np.ndarray:
        """Exact totals of the grid offset's basis fields: (n_targets, n_regions * n_basis)
        float64 [Tg month-1 per g m-2 d-1 of coefficient], column ``(region - 1) * n_basis +
        k`` for the target rows in order (built once).

        The offset is linear in its coefficients and constant over a region's cells, so its
        regional totals are a small matrix product: they are summed exactly, and only the
        network's share of the totals is sampled.
        """
        if self._design is None:
            assert self.grid is not None and self.model.offset is not None
            region = self.grid.region
            basis = self._cell_tables()["basis"].double().cpu().numpy()

            def fields(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                t, c = np.divmod(col, self.operator.n_cell)
                return region[c] - 1, basis.T[:, t]  # -1: outside every region

            self._design = self._basis_totals(self.model.offset.num_embeddings - 1, fields)
        return self._design

    def _add_offset_grad(self, pick: np.ndarray, d_totals: np.ndarray) -> None:
        """Add to the grid offset's gradient that of a loss whose gradient with respect to the
        offset's totals at target positions ``pick`` is ``d_totals`` (the totals are linear in
        the coefficients: :meth:`offset_totals`)."""
        assert self.model.offset is not None
        weight = self.model.offset.weight
        coef = (self.offset_design()[pick].T @ d_totals) * float(self.model.y_scale)
        grad = np.zeros(weight.shape)
        grad[1:] = coef.reshape(grad[1:].shape)
        grad = torch.from_numpy(grad).to(weight)
        weight.grad = grad if weight.grad is None else weight.grad.add_(grad)

    def offset_totals(self, pick: np.ndarray) -> torch.Tensor:
        """Exact totals of the grid offset at target positions ``pick`` (len(pick),) float64
        [Tg month-1], differentiable in the offset's coefficients."""
        assert self.model.offset is not None
        coef = self.model.offset.weight[1:].reshape(-1).double() * self.model.y_scale.double()
        return torch.as_tensor(self.offset_design()[pick], device=self.device) @ coef

    def refresh_cache(self, floor: float | None = None) -> None:
        """Recompute the control variate's cached prediction from the model.

        The cache is the network (the grid offset's totals are exact, see :meth:`totals`) at
        the mean predictors of each cache entry (see :meth:`cache_groups`), constant over the
        entry, or with ``cache_linear`` its first-order expansion there (plus the network's
        input gradient times each cell-day's departure from the entry's mean, so that it
        follows the weather). Unbiased whatever the groups (the sampled correction of ``f − g``
        absorbs the difference); cheaper and noisier the larger they are. Then the estimate
        variance the fresh cache leaves is measured (``cache_floor``, see
        :meth:`_fresh_variance`), unless ``floor`` gives it (a resumed run's cache, rebuilt
        from the model it was built from).
        """
        assert self.grid is not None and self.estimator is not None
        self.cache_state = _cpu_state(self.model)
        self.refreshes += 1
        self._noise, self._misfit = [], []
        self._probe_base = None
        if self.settings.cache_drift:
            self.drift_design()  # built once, with the cache
            self._probe_base = self._probe_values()
        self._set_cache()
        self.cache_floor = self._fresh_variance() if floor is None else floor

    def _fresh_variance(self) -> float:
        """The estimate variance a fresh cache leaves, the refresh rule's floor (σ²): the
        network (eval mode) equal to the model the cache was built from, so that no drift
        enters, each of ``FLOOR_TARGETS`` random region-months gets its own draw, and the
        floor is :func:`median_step_variance` of their variances (σ², as :meth:`regional_error`
        scales them) at the steps' ``obs_per_step``. The draws come from a generator of their
        own (``floor_rng``): the training draws stay those without a floor, and no step's draws
        decide when its cache was built.

        Measured at the refresh, not over the first steps after it: early in training the
        network drifts by more within a few steps than the cache's own floor (at 2°, from
        0.002 σ² to 0.04 σ² within five steps), and with the median test of
        :meth:`_refresh_if_noisy` a floor so overstated kept one benchmark run in eight from
        refreshing for 900 steps (0.15 σ).
        """
        assert self.estimator is not None
        n = min(self.settings.obs_per_step, self.obs_ids.size)
        pick = self.floor_rng.choice(self.obs_ids.size, replace=False,
                                     size=min(self.obs_ids.size, max(n, FLOOR_TARGETS)))
        sample = self.estimator.draw(self.obs_ids[pick], self.floor_rng)
        xs, cs = self.column_inputs(sample.col)
        with torch.no_grad(), self._evaluating():
            pred = self.model(xs, cs).double().cpu().numpy()
        _, var = self.estimator.estimate_with_variance(pred, sample, xs)
        return median_step_variance(self._relative_variance(var, pick), n, self.floor_rng)

    def _set_cache(self) -> None:
        """The estimator's cache from the current model (see :meth:`refresh_cache`)."""
        assert self.estimator is not None
        groups = self.cache_groups()
        if groups.entry is None:  # each cell-day its own entry: the model itself
            self.estimator.set_cache(self.predict_grid(offset=False))
            return
        center = self._cache_center()
        linear = self.settings.cache_linear
        precision = self.settings.cache_precision
        bfloat16 = precision == "bfloat16" or (precision == "auto"
                                               and _bfloat16_is_fast(self.device))
        g, slope = self._predict(center, groups.igbp, slope=linear, bfloat16=bfloat16)
        if not linear:
            self.estimator.set_cache(g, groups.time_group, groups.entry)
            return
        tab = self._cell_tables()

        def inputs(col: np.ndarray) -> np.ndarray:
            return self._normalised(tab["rows"].index_select(0, torch.from_numpy(col))).numpy()

        self.estimator.set_cache(g, groups.time_group, groups.entry, slope=slope,
                                 center=center, inputs=inputs)

    def _cache_center(self) -> np.ndarray:
        """Normalised mean predictors of the cache entries (n_entry, f), built once per
        grouping."""
        groups = self.cache_groups()
        if self._center is None or self._center[0] is not groups:
            assert groups.values is not None
            self._center = (groups, self._normalised(groups.values).numpy())
        return self._center[1]

    def cache_groups(self) -> CacheGroups:
        """The control variate's cache entries and their mean predictors (built once).

        Times are grouped by month with ``cache_features="monthly"`` (else each day is its own
        group); the (time group, cell) pairs of a vegetation class (daily: and month) are then
        grouped into entries of at most ``cache_group_size`` pairs by a k-d partition of their
        standardised predictors (1: each its own entry). Predictors are means over an entry's
        finite cell-days. Built once per grid and grouping, and shared by its trainers.
        """
        assert self.grid is not None
        size = self.settings.cache_group_size or default_group_size(self.grid)
        return CacheGroups.of(self.grid, self.settings.cache_features, size)

    def _predict(self, inputs: np.ndarray, igbp: np.ndarray, slope: bool = False,
                 chunk_rows: int | None = None, bfloat16: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """The network (no grid offset) at normalised inputs (n, f) of classes (n,): (n,), and
        with ``slope`` its gradient with respect to the inputs (n, f); with ``bfloat16`` under
        bfloat16 autocast (float32 results). ``chunk_rows`` rows go through the network at a
        time; by default 2^15 on a CPU, where a chunk's activations then stay in the caches
        (the demo's cache refresh, 274k entries: 0.045 s against 0.105 s in chunks of 2^18),
        and 2^18 on an accelerator."""
        if chunk_rows is None:
            chunk_rows = 1 << 15 if self.device.type == "cpu" else 1 << 18
        n_rows = inputs.shape[0]
        out = np.empty(n_rows, dtype=np.float32)
        grad = np.empty(inputs.shape, dtype=np.float32) if slope else None
        codes = torch.as_tensor(igbp, dtype=torch.int64, device=self.device)
        with self._evaluating():
            for a in range(0, n_rows, chunk_rows):
                b = min(n_rows, a + chunk_rows)
                X = torch.from_numpy(np.ascontiguousarray(inputs[a:b])).to(self.device)
                X.requires_grad_(slope)
                with torch.set_grad_enabled(slope), torch.autocast(
                        self.device.type, dtype=torch.bfloat16, enabled=bfloat16):
                    pred = self.model(X, codes[a:b]).float()
                    if slope:
                        (dx,) = torch.autograd.grad(pred.sum(), X)
                        grad[a:b] = dx.cpu().numpy()
                out[a:b] = pred.detach().cpu().numpy()
        return out, grad

    def predict_grid(self, chunk_days: int = 16, offset: bool = True) -> np.ndarray:
        """The model over every (time, cell) of the grid, with ``offset`` the grid offset
        included, (n_time, n_cell) [g m-2 d-1]."""
        assert self.grid is not None
        g = self.grid
        n_time, n_cell, n_feat = g.values.shape
        out = np.empty((n_time, n_cell), dtype=np.float32)
        for t0 in range(0, n_time, chunk_days):
            t1 = min(n_time, t0 + chunk_days)
            Z = self._normalised(g.values[t0:t1].reshape(-1, n_feat)).numpy()
            out[t0:t1] = self._predict(Z, np.tile(g.igbp_code, t1 - t0))[0].reshape(
                t1 - t0, n_cell)
        if offset and self.model.offset is not None:
            tab = self._cell_tables()
            with torch.no_grad():
                out += self.model.offset_field(tab["region"], tab["basis"]).cpu().numpy()
        return out

    def fit_offsets(self, K: int) -> dict[str, float]:
        """Set the grid offsets to their σ-weighted least-squares fit, the network held fixed.

        The offsets enter the regional totals linearly, so once the network is trained their
        best values solve a small weighted least-squares problem (1 + 2 × harmonics
        coefficients per region); this removes the optimiser's step-to-step noise from the
        final offsets. The model's totals are estimated with the training estimator, so a
        sparse model stays sparse: ``exact`` sums every cell-day, ``fixed`` uses its one draw,
        ``resampled`` and ``control_variate`` (cache refreshed first) average independent
        draws until about ``K`` cell-days per region-month are used. Regions without targets
        keep their offsets.

        Returns
        -------
        dict
            Mean regional error in units of σ² before and after (``regional_before``,
            ``regional_after``).
        """
        if self.model.offset is None or self.operator is None or self.grid is None \
                or self.estimator is None:
            return {}
        op, est = self.operator, self.estimator
        with self._evaluating():
            if est.needs_cache():
                self.refresh_cache()
            draws = max(1, K // est.K) if isinstance(est, ResampledEstimator) \
                and not isinstance(est, FixedEstimator) else 1
            rng = np.random.default_rng([self.settings.seed, 11])
            current = np.zeros(self.obs_ids.size)
            chunk = max(1, (1 << 20) // max(1, int(op.row_sizes(self.obs_ids).max())))
            with torch.no_grad():  # the network's totals sampled, the offset's exact
                for start in range(0, self.obs_ids.size, chunk):
                    ids = self.obs_ids[start:start + chunk]
                    for _ in range(draws):
                        sample = est.draw(ids, rng)
                        pred, xs = self._predict_columns(sample.col, offset=False)
                        current[start:start + chunk] += \
                            est.estimate(pred.double(), sample, xs).mean(0).cpu().numpy() / draws
                current += self.offset_totals(np.arange(self.obs_ids.size)).cpu().numpy()
        # design: totals of each region's basis fields, [Tg month-1] per unit coefficient
        D = self.offset_design() * float(self.model.y_scale)
        n_regions = self.model.offset.num_embeddings - 1
        n_basis = D.shape[1] // n_regions
        mu, sigma = self.mu, self.sigma
        A, b = D / sigma[:, None], (mu - current) / sigma
        if self.settings.offset_match_totals:
            # each region's total over its target months matched exactly (the budget the
            # inversions constrain best), the σ-weighted fit shaping the season: the
            # Karush-Kuhn-Tucker system of the constrained least squares (minimum norm, so
            # regions without targets keep their offsets)
            obs_region = op.obs_index["region"].to_numpy()[self.obs_ids]
            ids = np.unique(obs_region)
            C = np.stack([D[obs_region == r].sum(axis=0) for r in ids])
            e = np.array([(mu - current)[obs_region == r].sum() for r in ids])
            kkt = np.block([[A.T @ A, C.T], [C, np.zeros((ids.size, ids.size))]])
            solution, *_ = np.linalg.lstsq(kkt, np.concatenate([A.T @ b, e]), rcond=None)
            delta = solution[:D.shape[1]]
        else:
            delta, *_ = np.linalg.lstsq(A, b, rcond=None)
        with torch.no_grad():
            self.model.offset.weight[1:] += torch.as_tensor(
                delta.reshape(n_regions, n_basis), dtype=self.model.offset.weight.dtype,
                device=self.model.offset.weight.device)
        after = current + D @ delta
        out = {"regional_before": float(np.mean(((current - mu) / sigma) ** 2)),
               "regional_after": float(np.mean(((after - mu) / sigma) ** 2))}
        log.info("grid offsets fitted by least squares: regional error %.3g -> %.3g sigma^2",
                 out["regional_before"], out["regional_after"])
        return out

    def step(self, idx: torch.Tensor) -> dict[str, float]:
        """One optimiser step on site rows ``idx`` (plus the regional term when λ > 0).

        Site rows and the operator's draws go through the network in one forward pass.
        """
        self.optimizer.zero_grad(set_to_none=True)
        x, c, y, w = self.x[idx], self.c[idx], self.y[idx], self.w[idx]
        out: dict[str, float] = {}
        if self.estimator is None:
            pred = self.model(x, c)
        else:
            pick, sample, xs, cs = self.draw()
            both = self.model(torch.cat([x, xs]), torch.cat([c, cs]))
            pred, cells = both[: x.shape[0]], both[x.shape[0]:]
            reg, d_totals, noise = self.regional_error(cells, pick, sample, xs)
            out["regional"] = reg
            out["estimate_var"] = noise
        loss = (w * (pred - y) ** 2).mean() / self.s_y**2
        out["site"] = float(loss.detach())
        if self.estimator is None:
            loss.backward()
        else:
            # the regional term's gradient in closed form (the estimators are affine in the
            # draws' predictions), pushed through the network in the site term's backward pass
            lam = self.settings.lambda_regional
            g = d_totals.ravel()[sample.rep * pick.size + sample.obs] * sample.weight * lam
            if self.model.offset is not None:  # the offsets take the whole regional gradient,
                g = g * self.settings.regional_to_network  # the network a share
            torch.autograd.backward([loss, cells], [torch.ones_like(loss),
                                                    torch.as_tensor(g).to(cells)])
            if self.model.offset is not None:
                self._add_offset_grad(pick, lam * d_totals.sum(0))
        self.optimizer.step()
        if self.estimator is not None and self.estimator.needs_cache():
            self._refresh_if_noisy(out["estimate_var"], out["regional"])
        return out

    def _refresh_if_noisy(self, noise: float, misfit: float) -> None:
        """Refresh the control-variate cache when, over the last ``REFRESH_WINDOW`` steps,

        * the mean estimate variance (σ², what the spread target is about) exceeds
          ``refresh_std``² times the larger of 1 and the mean regional error (σ²): noise small
          against σ, or against the misfit when the model is still far from the targets (the
          gradient then follows the misfit, and its relative noise is what matters; early in
          training the network moves fast and a cache would otherwise be rebuilt every few
          steps), and
        * the median estimate variance exceeds twice the cache's own floor
          (:meth:`_fresh_variance`): only the drift since the refresh can be refreshed away,
          and it shows in the typical step. The mean alone is carried by a few region-months
          that are noisy at any cache age (per-step variances are heavy tailed: at 2° their
          median is about half their mean and their 99th percentile eight times it), and
          refreshing on those left the variance where it was. A cache of coarse groups may
          also not reach ``refresh_std``, and refreshing again would not help.
        """
        self._noise.append(noise)
        self._misfit.append(misfit)
        limit = self.settings.refresh_std
        if limit > 0 and self.cache_floor is not None and len(self._noise) >= REFRESH_WINDOW:
            window = self._noise[-REFRESH_WINDOW:]
            scale = max(1.0, float(np.mean(self._misfit[-REFRESH_WINDOW:])))
            if (float(np.mean(window)) > limit**2 * scale
                    and float(np.median(window)) > 2 * self.cache_floor):
                self.refresh_cache()

    def epoch(self) -> dict[str, float]:
        """One pass over the training rows in random batches; mean losses (and with a control
        variate ``estimate_var``, the mean variance of its estimates [σ²] by the draws' own
        estimate, and ``refreshes`` of its cache during the epoch)."""
        self.model.train()
        self._noise, self._misfit = [], []  # the refresh rule's window and the draws' queue
        self._ahead = []  # start afresh each epoch (a resumed run draws and refreshes the same)
        refreshes = self.refreshes
        n = self.x.shape[0]
        order = self.rng.permutation(n)
        sums: dict[str, float] = {}
        steps = 0
        for start in range(0, n, self.settings.batch_size):
            idx = torch.as_tensor(order[start:start + self.settings.batch_size],
                                  device=self.device)
            for k, v in self.step(idx).items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        out = {k: v / steps for k, v in sums.items()}
        if self.estimator is not None and self.estimator.needs_cache():
            out["refreshes"] = float(self.refreshes - refreshes)
            out["cache_floor"] = self.cache_floor  # the last refresh's (σ²)
        return out

    def val_loss(self) -> float | None:
        """Site loss on the validation sites (None without validation sites)."""
        if self.val is None:
            return None
        with torch.no_grad(), self._evaluating():
            all_rows = torch.arange(self.val[0].shape[0], device=self.device)
            return float(self.site_loss(all_rows, self.val))

    def fitted(self, state: dict[str, torch.Tensor], name: str, train_sites: Sequence[str],
               provenance: dict[str, Any]) -> FittedModel:
        """The trained network with the given state as a :class:`FittedModel`."""
        model = copy.deepcopy(self.model).cpu()
        model.load_state_dict(state)
        model.eval()
        return FittedModel(kind="nn", feature_names=self.features, normaliser=self.normaliser,
                           estimator=model, config=self.settings.to_dict(),
                           provenance={"code_version": code_version(),
                                       "n_train_sites": len(train_sites),
                                       "masked_for_missing_features": dict(self.masked),
                                       **provenance},
                           name=name)


def _fingerprint(settings: TrainSettings, train_sites: Sequence[str],
                 val_sites: Sequence[str] | None) -> str:
    payload = json.dumps([settings.to_dict(), sorted(map(str, train_sites)),
                          sorted(map(str, val_sites or []))], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _save_checkpoint(path: Path, trainer: Trainer, state: dict[str, Any]) -> None:
    payload = {
        **state,
        "model": _cpu_state(trainer.model),
        "optimizer": trainer.optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "rng": json.dumps(trainer.rng.bit_generator.state),
        "obs_rng": json.dumps(trainer.obs_rng.bit_generator.state),
        "floor_rng": json.dumps(trainer.floor_rng.bit_generator.state),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, trainer: Trainer, fingerprint: str) -> dict[str, Any]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("fingerprint") != fingerprint:
        raise InputError("checkpoint belongs to another configuration or site split",
                         path=path, variable="checkpoint",
                         expected="the same settings and sites, or an empty checkpoint_dir")
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    trainer.rng.bit_generator.state = json.loads(ckpt["rng"])
    trainer.obs_rng.bit_generator.state = json.loads(ckpt["obs_rng"])
    if "floor_rng" in ckpt:  # checkpoints written before the floor was measured at refreshes
        trainer.floor_rng.bit_generator.state = json.loads(ckpt["floor_rng"])
    return ckpt


def train_network(samples: pd.DataFrame, settings: TrainSettings, *,
                  train_sites: Sequence[str] | np.ndarray,
                  val_sites: Sequence[str] | np.ndarray | None = None,
                  grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                  regions: xr.Dataset | None = None, checkpoint_dir: str | Path | None = None,
                  progress: bool = True, name: str = "nn",
                  stop_after_epochs: int | None = None) -> FittedModel:
    """Train one network with the site term and, when λ > 0, the regional term.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`): ``site``, features,
        ``igbp_code``, ``nee`` [g m-2 d-1], ``weight`` [1].
    settings
        Training settings.
    train_sites, val_sites
        Sites to fit on and sites for early stopping (none: run all epochs, keep the last).
    grid, targets, regions
        Gridded features of the land cells, canonical targets (``nee_mean``, ``nee_spread``
        [Tg month-1]) and regions; needed when ``settings.lambda_regional > 0``.
    checkpoint_dir
        Directory of the per-epoch checkpoint; a rerun with the same directory, settings and
        sites resumes where the last run stopped and ends with the same weights.
    progress
        Show a progress bar over epochs.
    name
        Label of the returned model.
    stop_after_epochs
        Raise :class:`TrainingInterrupted` after this many epochs of this call.

    Returns
    -------
    FittedModel
        ``kind="nn"`` with the state of the best validation epoch (or the last one);
        ``provenance`` holds the epochs run and the loss history.
    """
    s = settings
    train_sites = list(np.asarray(train_sites).astype(str))
    val_list = None if val_sites is None else list(np.asarray(val_sites).astype(str))
    if s.device == "auto" and not torch.cuda.is_available():
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    trainer = Trainer(samples, s, train_sites=train_sites, val_sites=val_list, grid=grid,
                      targets=targets, regions=regions)
    fingerprint = _fingerprint(s, train_sites, val_list)
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    state: dict[str, Any] = {"fingerprint": fingerprint, "epoch": 0, "best_val": float("inf"),
                             "best_epoch": 0, "bad_epochs": 0, "done": False,
                             "best_state": _cpu_state(trainer.model), "cache_state": None,
                             "cache_floor": None, "history": "[]"}
    if path is not None and path.exists():
        ckpt = _load_checkpoint(path, trainer, fingerprint)
        state.update({k: ckpt[k] for k in state if k in ckpt})
        log.info("resuming %s from epoch %d (%s)", name, state["epoch"], path)
        if state["cache_state"] is not None and trainer.estimator is not None:
            current = _cpu_state(trainer.model)
            trainer.model.load_state_dict(state["cache_state"])
            trainer.refresh_cache(floor=state["cache_floor"])  # the floor as measured then
            trainer.model.load_state_dict(current)
    history = json.loads(state["history"])
    bar = tqdm(total=s.epochs, initial=state["epoch"], desc=f"train {name}", disable=not progress,
               leave=False)
    epochs_this_call = 0
    while not state["done"] and state["epoch"] < s.epochs:
        epoch = state["epoch"]
        before = trainer.refreshes
        if trainer.estimator is not None and trainer.estimator.needs_cache() and (
                trainer.cache_state is None
                or (s.refresh_every > 0 and epoch % s.refresh_every == 0)):
            trainer.refresh_cache()
        losses = trainer.epoch()
        if "refreshes" in losses:  # the schedule's refresh too
            losses["refreshes"] = float(trainer.refreshes - before)
        state["cache_state"] = trainer.cache_state  # the model at the last refresh
        state["cache_floor"] = trainer.cache_floor
        val = trainer.val_loss()
        losses["val"] = val
        history.append(losses)
        state["epoch"] = epoch + 1
        if val is None or val < state["best_val"]:
            state["best_val"] = float("inf") if val is None else val
            state["best_epoch"] = epoch + 1
            state["best_state"] = _cpu_state(trainer.model)
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        if state["bad_epochs"] >= s.patience or state["epoch"] >= s.epochs:
            state["done"] = True
        state["history"] = json.dumps(history)
        if path is not None:
            _save_checkpoint(path, trainer, state)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if v is not None})
        epochs_this_call += 1
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs \
                and not state["done"]:
            bar.close()
            raise TrainingInterrupted(f"stopped after {epochs_this_call} epochs as asked")
    bar.close()
    offsets: dict[str, float] = {}
    if s.offset_fit_K > 0 and trainer.model.offset is not None:
        trainer.model.load_state_dict(state["best_state"])
        offsets = trainer.fit_offsets(s.offset_fit_K)
        state["best_state"] = _cpu_state(trainer.model)
    return trainer.fitted(state["best_state"], name, train_sites, {
        "seed": s.seed, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
        "val_sites": val_list or [], "history": history, "offset_fit": offsets,
    })


def split_validation(train_sites: Sequence[str] | np.ndarray, fraction: float, seed: int
                     ) -> tuple[list[str], list[str]]:
    """Random ``fraction`` of sites held out for early stopping (none when fewer than 5 sites).

    Returns
    -------
    fit_sites, val_sites
    """
    sites = np.unique(np.asarray(train_sites).astype(str))
    n_val = round(fraction * sites.size) if sites.size >= 5 else 0
    if n_val == 0:
        return list(sites), []
    val = np.random.default_rng([seed, 7]).choice(sites, size=max(1, n_val), replace=False)
    return [x for x in sites if x not in set(val)], sorted(val)


def train_ensemble(samples: pd.DataFrame, settings: TrainSettings, *,
                   train_sites: Sequence[str] | np.ndarray, grid: GridFeatures | None = None,
                   targets: xr.Dataset | None = None, regions: xr.Dataset | None = None,
                   checkpoint_dir: str | Path | None = None, progress: bool = True,
                   name: str = "nn") -> list[FittedModel]:
    """``settings.n_ensemble`` networks with seeds ``seed + i``, each early-stopped on its own
    random ``val_fraction`` of the training sites; checkpoints in ``checkpoint_dir/member{i}``.
    """
    members = []
    for i in range(settings.n_ensemble):
        member = dataclasses.replace(settings, seed=settings.seed + i)
        fit_sites, val_sites = split_validation(train_sites, settings.val_fraction, member.seed)
        members.append(train_network(
            samples, member, train_sites=fit_sites, val_sites=val_sites, grid=grid,
            targets=targets, regions=regions, progress=progress, name=name,
            checkpoint_dir=None if checkpoint_dir is None
            else Path(checkpoint_dir) / f"member{i}"))
    return members


def _n_jobs(n: int) -> int:
    """Worker threads of the baselines: ``n``, or every core for ``n <= 0``."""
    return n if n > 0 else max(1, os.cpu_count() or 1)


def train_baseline(kind: str, samples: pd.DataFrame, settings: TrainSettings, *,
                   train_sites: Sequence[str] | np.ndarray, name: str | None = None
                   ) -> FittedModel:
    """A FLUXCOM-style baseline (``"rf"`` or ``"xgboost"``) on the training sites' samples."""
    _check_samples(samples)
    features = feature_columns(samples, settings)
    rows, n_masked = _rows_of(samples, train_sites, features)
    if rows.size == 0:
        raise InputError("no sample with finite NEE and features at the training sites",
                         variable="train_sites", expected="sites present in the samples")
    df = samples.iloc[rows]
    X = df[features].to_numpy(dtype=np.float32, na_value=np.nan)
    y = df["nee"].to_numpy(dtype=np.float64)
    w = np.nan_to_num(df["weight"].to_numpy(dtype=np.float64))
    igbp = df["igbp_code"].to_numpy(dtype=np.int64)
    s = settings
    if kind == "rf":
        est = fit_random_forest(X, y, w, igbp, seed=s.seed, n_estimators=s.rf_n_estimators,
                                min_samples_leaf=s.rf_min_samples_leaf,
                                max_features=s.rf_max_features, max_samples=s.rf_max_samples,
                                n_jobs=_n_jobs(s.n_jobs))
    elif kind == "xgboost":
        est = fit_xgboost(X, y, w, igbp, seed=s.seed, n_estimators=s.xgb_n_estimators,
                          max_depth=s.xgb_max_depth, learning_rate=s.xgb_learning_rate,
                          n_jobs=_n_jobs(s.n_jobs))
    else:
        raise InputError(f"unknown baseline {kind!r}", variable="kind",
                         expected="'rf' or 'xgboost'")
    return FittedModel(kind=kind, feature_names=features, normaliser=None, estimator=est,
                       config=s.to_dict(), name=name or kind,
                       provenance={"code_version": code_version(), "seed": s.seed,
                                   "n_train_sites": int(df["site"].nunique()),
                                   "masked_for_missing_features": {"site_samples": n_masked}})


def make_folds(samples: pd.DataFrame, k: int, kind: Literal["site", "spatial"] = "site",
               seed: int = 0, block_deg: float = 10.0) -> pd.Series:
    """Assign every site to one of ``k`` folds.

    Parameters
    ----------
    samples
        Table with ``site`` (and ``lat``, ``lon`` [degree] for spatial folds).
    k
        Number of folds.
    kind
        ``"site"``: sites shuffled and dealt round-robin (leave-site-out);
        ``"spatial"``: ``block_deg`` × ``block_deg`` latitude-longitude blocks shuffled and dealt
        round-robin, every site in its block's fold (neighbours never straddle train and test).
    seed
        Seed of the shuffle.
    block_deg
        Block size [degree] of spatial folds.

    Returns
    -------
    pd.Series
        Fold (0..k-1) indexed by site, named ``fold``.
    """
    sites = samples.drop_duplicates("site").set_index("site")
    n = len(sites)
    if k < 2:
        raise InputError(f"k = {k} folds", variable="folds", expected="at least 2")
    rng = np.random.default_rng(seed)
    if kind == "site":
        if n < k:
            raise InputError(f"{n} sites for {k} folds", variable="folds",
                             expected=f"at most {n} folds")
        fold = np.empty(n, dtype=np.int64)
        fold[rng.permutation(n)] = np.arange(n) % k
    elif kind == "spatial":
        for col in ("lat", "lon"):
            if col not in sites.columns:
                raise InputError("samples lack site coordinates", variable=col,
                                 expected="lat and lon columns for spatial folds")
        block = (np.floor(sites["lat"].to_numpy() / block_deg).astype(np.int64) * 10_000
                 + np.floor(sites["lon"].to_numpy() / block_deg).astype(np.int64))
        blocks, inverse = np.unique(block, return_inverse=True)
        if blocks.size < k:
            raise InputError(f"{blocks.size} spatial blocks of {block_deg} degrees for {k} "
                             "folds", variable="folds",
                             expected="fewer folds or smaller blocks")
        block_fold = np.empty(blocks.size, dtype=np.int64)
        block_fold[rng.permutation(blocks.size)] = np.arange(blocks.size) % k
        fold = block_fold[inverse]
    else:
        raise InputError(f"unknown fold kind {kind!r}", variable="split",
                         expected="'site' or 'spatial'")
    return pd.Series(fold, index=pd.Index(sites.index.astype(str), name="site"), name="fold")


def cross_validate(samples: pd.DataFrame, settings: TrainSettings, *,
                   kinds: Sequence[str] = ("nn", "rf", "xgboost"),
                   folds: pd.Series | None = None, k: int = 5,
                   grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                   regions: xr.Dataset | None = None, checkpoint_dir: str | Path | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Out-of-fold predictions of the network and the baselines, all on the same folds.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`).
    settings
        Training settings (λ > 0 trains the network with the regional term; needs ``grid``,
        ``targets`` and ``regions``).
    kinds
        ``"nn"`` (an ensemble of ``settings.n_ensemble``, averaged), ``"rf"``, ``"xgboost"``.
    folds
        Fold per site (:func:`make_folds`); by default ``make_folds(samples, k, "site", seed)``.
    checkpoint_dir
        Network checkpoints go to ``checkpoint_dir/fold{f}/member{i}``.
    progress
        Show progress bars.

    Returns
    -------
    pd.DataFrame
        One row per sample with finite NEE: ``site``, ``time``, ``fold``, ``igbp``,
        ``observed`` [g m-2 d-1], ``weight`` [1] and one column per kind [g m-2 d-1].
    """
    _check_samples(samples)
    folds = make_folds(samples, k, "site", settings.seed) if folds is None else folds
    data = samples[np.isfinite(samples["nee"].to_numpy(dtype=float))].reset_index(drop=True)
    site = data["site"].astype(str)
    missing = sorted(set(site) - set(folds.index.astype(str)))
    if missing:
        raise InputError(f"no fold for sites {missing[:5]}", variable="folds",
                         expected="a fold for every site (see make_folds)")
    fold_of = site.map(folds.rename(index=str)).to_numpy(dtype=np.int64)
    out = pd.DataFrame({"site": site, "time": data["time"] if "time" in data else pd.NaT,
                        "fold": fold_of,
                        "igbp": data["igbp"] if "igbp" in data else data["igbp_code"],
                        "observed": data["nee"].to_numpy(dtype=float),
                        "weight": data["weight"].to_numpy(dtype=float)})
    for kind in kinds:
        out[kind] = np.nan
    for f in tqdm(np.unique(folds.to_numpy()), desc="cross-validation", disable=not progress):
        train_sites = sorted(folds.index[folds.to_numpy() != f].astype(str))
        test = fold_of == f
        if not test.any():
            continue
        test_df = data[test]
        for kind in kinds:
            if kind == "nn":
                members = train_ensemble(
                    samples, settings, train_sites=train_sites, grid=grid, targets=targets,
                    regions=regions, progress=progress, name=f"nn_fold{f}",
                    checkpoint_dir=None if checkpoint_dir is None
                    else Path(checkpoint_dir) / f"fold{f}")
                pred = np.mean([m.predict_frame(test_df) for m in members], axis=0)
            else:
                pred = train_baseline(kind, samples, settings,
                                      train_sites=train_sites).predict_frame(test_df)
            out.loc[test, kind] = pred
        log.info("fold %s: %d test sites, %d samples", f, int(site[test].nunique()),
                 int(test.sum()))
    out.attrs["units"] = {"observed": "g m-2 d-1", "weight": "1",
                          **{kind: "g m-2 d-1" for kind in kinds}}
    out.attrs["long_name"] = "out-of-fold NEE predictions, positive to the atmosphere"
    return out
