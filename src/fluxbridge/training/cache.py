"""The control variate's cache: its entries, when it is refreshed, and its drift correction.

The control-variate estimator of a regional total is ``H·g + (sampled correction of f − g)``
with ``g`` a cached prediction of the network. :class:`ControlVariateCache` builds ``g`` from
the network (:meth:`ControlVariateCache.refresh`), decides when to rebuild it (the refresh rule,
:meth:`ControlVariateCache.observe`), and corrects it between refreshes for the network's drift
(:meth:`ControlVariateCache.drift_shift`). None of this can bias the estimate: the cache's
totals are exact, and the drift fit never depends on a step's draws. ``docs/method.md``
describes the measurements behind each part.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from fluxbridge.operators import CacheGroups, ControlVariateEstimator, Sample, default_group_size
from fluxbridge.training.basis import basis_totals
from fluxbridge.training.gridnet import GridNetwork, bfloat16_is_fast
from fluxbridge.tuning import CacheTuning

REFRESH_WINDOW = 20  # steps whose estimate variance the refresh rule looks at
FLOOR_TARGETS = 320  # region-months drawn to measure a fresh cache's floor
DRIFT_PROBES = 512  # fixed draws at which the network's drift from its cache is fitted
DRIFT_SHRINK = 0.01  # ridge on each class's departure from the shared drift fit (relative)


def relative_variance(var: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The variance of the replicates' mean estimate in units of σ² (n,), from the draws'
    estimate of each replicate's variance (n_rep, n) and the targets' σ (n,)."""
    return var.mean(axis=0) / var.shape[0] / sigma**2


def median_step_variance(variance: np.ndarray, n: int, rng: np.random.Generator,
                         resamples: int = 512) -> float:
    """The median, over steps, of a step's mean variance over its ``n`` region-months, from
    the variances of a pool of region-months (each step's ``n`` drawn from the pool without
    replacement), by ``resamples`` random steps.

    Per-region-month variances are heavy tailed, and so is a step's mean over a few of them:
    at 2° and 8 region-months a step, the coefficient of variation of this floor over 30 fresh
    caches is 0.12 from a pool of 320, against 0.24 for the median of 20 actual steps.
    """
    n = min(n, variance.size)
    keys = rng.random((resamples, variance.size))
    steps = np.argpartition(keys, n - 1, axis=1)[:, :n]  # a uniform n-subset per row
    return float(np.median(variance[steps].mean(axis=1)))


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class ControlVariateCache:
    """The cache of a :class:`ControlVariateEstimator`, kept close to a training network.

    Parameters
    ----------
    net
        The network on the grid.
    estimator
        The control-variate estimator whose cache this is.
    obs_ids, sigma
        The targets' operator rows and their σ [Tg month-1].
    tuning
        The cache's settings.
    obs_per_step
        Region-months per training step (the floor is measured at this size).
    seed
        Seed of the floor's draws and of the drift probes.
    """

    def __init__(self, net: GridNetwork, estimator: ControlVariateEstimator,
                 obs_ids: np.ndarray, sigma: np.ndarray, tuning: CacheTuning,
                 obs_per_step: int, seed: int) -> None:
        self.net, self.estimator, self.tuning = net, estimator, tuning
        self.obs_ids, self.sigma, self.obs_per_step, self.seed = obs_ids, sigma, obs_per_step, seed
        self.floor_rng = np.random.default_rng([seed, 2])
        self.refreshes = 0
        self.floor: float | None = None  # estimate variance of a fresh cache [σ²]
        self.state: dict[str, torch.Tensor] | None = None  # the network at the last refresh
        self._noise: list[float] = []  # per step: estimate variance [σ²]
        self._misfit: list[float] = []  # per step: regional error [σ²]
        self._center: tuple[CacheGroups, np.ndarray] | None = None
        self._probes: dict[str, Any] | None = None
        self._probe_base: np.ndarray | None = None  # the network at the probes at the refresh
        self._design: np.ndarray | None = None

    # -- building -------------------------------------------------------------------------
    def groups(self) -> CacheGroups:
        """The cache's entries and their mean predictors (built once per grid and grouping):
        times grouped by month (``features="monthly"``) or by day, then each vegetation class's
        (time group, cell) pairs grouped into at most ``group_size`` by a k-d partition of
        their standardised predictors."""
        size = self.tuning.group_size or default_group_size(self.net.grid)
        return CacheGroups.of(self.net.grid, self.tuning.features, size)

    def refresh(self, floor: float | None = None) -> None:
        """Rebuild the cache from the network: at each entry's mean predictors, or with
        ``linear`` its first-order expansion there (plus the input gradient times each
        cell-day's departure from the mean, so that it follows the weather). Then measure the
        variance the fresh cache leaves (:attr:`floor`), unless ``floor`` gives it (a resumed
        run's cache, rebuilt from the network it was built from)."""
        self.state = cpu_state(self.net.model)
        self.refreshes += 1
        self._noise, self._misfit = [], []
        self._probe_base = None
        if self.tuning.drift:
            self.drift_design()
            self._probe_base = self._probe_values()
        self._set_cache()
        self.floor = self._fresh_variance() if floor is None else floor

    def _set_cache(self) -> None:
        groups = self.groups()
        if groups.entry is None:  # each cell-day its own entry: the model itself
            self.estimator.set_cache(self.net.predict_grid(offset=False))
            return
        center = self._cache_center(groups)
        precision = self.tuning.precision
        bfloat16 = precision == "bfloat16" or (precision == "auto"
                                               and bfloat16_is_fast(self.net.device))
        g, slope = self.net.predict(center, groups.igbp, slope=self.tuning.linear,
                                    bfloat16=bfloat16)
        if not self.tuning.linear:
            self.estimator.set_cache(g, groups.time_group, groups.entry)
            return

        def inputs(col: np.ndarray) -> np.ndarray:
            return self.net.normalised(self.net.rows.index_select(0, torch.from_numpy(col))
                                       ).numpy()

        self.estimator.set_cache(g, groups.time_group, groups.entry, slope=slope,
                                 center=center, inputs=inputs)

    def _cache_center(self, groups: CacheGroups) -> np.ndarray:
        if self._center is None or self._center[0] is not groups:
            assert groups.values is not None
            self._center = (groups, self.net.normalised(groups.values).numpy())
        return self._center[1]

    def _fresh_variance(self) -> float:
        """The estimate variance a fresh cache leaves [σ²]: ``FLOOR_TARGETS`` random
        region-months drawn from a generator of their own (the training draws stay those
        without a floor) with the network equal to the cache, so that no drift enters;
        :func:`median_step_variance` of their variances at ``obs_per_step``. Measured at the
        refresh, not over the next steps: early in training the network drifts by more within
        a few steps than the cache's own floor, and a floor so overstated kept runs from
        refreshing."""
        n = min(self.obs_per_step, self.obs_ids.size)
        pick = self.floor_rng.choice(self.obs_ids.size, replace=False,
                                     size=min(self.obs_ids.size, max(n, FLOOR_TARGETS)))
        sample = self.estimator.draw(self.obs_ids[pick], self.floor_rng)
        xs, cs = self.net.column_inputs(sample.col)
        with torch.no_grad(), self.net.evaluating():
            pred = self.net.model(xs, cs).double().cpu().numpy()
        _, var = self.estimator.estimate_with_variance(pred, sample, xs)
        return median_step_variance(relative_variance(var, self.sigma[pick]), n,
                                    self.floor_rng)

    # -- the refresh rule -----------------------------------------------------------------
    def start_epoch(self) -> None:
        """Empty the rule's window (a resumed run refreshes as an uninterrupted one)."""
        self._noise, self._misfit = [], []

    def observe(self, noise: float, misfit: float) -> None:
        """Record a step's estimate variance and regional error [σ²]; refresh when, over the
        last ``REFRESH_WINDOW`` steps, the mean variance exceeds ``refresh_std``² times the
        larger of 1 and the mean misfit, and the median variance twice the cache's floor.

        The mean is what the spread target is about (against σ, or against the misfit while
        the network is far from the targets); the median shows the drift that a refresh can
        remove: per-step variances are heavy tailed, and a few region-months noisy at any
        cache age would otherwise call for refreshes that change nothing.
        """
        self._noise.append(noise)
        self._misfit.append(misfit)
        limit = self.tuning.refresh_std
        if limit <= 0 or self.floor is None or len(self._noise) < REFRESH_WINDOW:
            return
        window = self._noise[-REFRESH_WINDOW:]
        scale = max(1.0, float(np.mean(self._misfit[-REFRESH_WINDOW:])))
        if float(np.mean(window)) > limit**2 * scale and float(np.median(window)) > 2 * self.floor:
            self.refresh()

    # -- the drift correction -------------------------------------------------------------
    def drift_design(self) -> np.ndarray:
        """Exact totals of the drift basis ``[1, x]`` per vegetation class slot: (n_targets,
        n_slot * (1 + n_input)) float64 [Tg month-1 per g m-2 d-1 of coefficient] (built once).

        Between refreshes the network drifts from its cache; within a region-month almost all
        of that drift is a linear function of the normalised inputs with coefficients per
        vegetation class, changing direction within a few steps. The cache is corrected by such
        a function fitted to the network's change at fixed probes (:meth:`drift_coef`).
        """
        if self._design is None:
            net = self.net
            rows = net.rows.numpy()

            def fields(col: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
                x = rows[col]  # raw: the operator's cell-days have every feature finite
                return net.slot[col % net.n_cell], [np.ones(col.size), *x.T]

            n_in = rows.shape[1]
            raw = basis_totals(self.estimator.operator, self.obs_ids, net.n_slot, fields
                               ).reshape(-1, net.n_slot, 1 + n_in)
            # totals of the normalised inputs from the raw ones: (Σ h x − m Σ h) / s
            mean, std = net.mean.numpy(), net.std.numpy()
            raw[..., 1:] = (raw[..., 1:] - raw[..., :1] * mean) / std
            self._design = raw.reshape(raw.shape[0], -1)
        return self._design

    def _drift_features(self, col: np.ndarray, inputs: torch.Tensor
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Class slot (n,) and ``[1, x]`` (n, 1 + n_input) float64 of grid columns."""
        slot = self.net.slot[col % self.net.n_cell]
        x = inputs.detach().cpu().numpy()
        z = np.empty((x.shape[0], 1 + x.shape[1]))
        z[:, 0], z[:, 1:] = 1.0, x
        return slot, z

    def _drift_probes(self) -> dict[str, Any]:
        """``DRIFT_PROBES`` fixed cell-days (a random subset of one draw of every target) and
        the linear map from the network's change there to the drift's coefficients per class
        slot (built once). Weighted least squares, ω = (draw weight / σ)², with each class's
        departure from a fit shared by all classes shrunk by a ridge of ``DRIFT_SHRINK`` times
        the normal equations' mean diagonal: classes with few probes lean on the shared fit
        instead of fitting noise."""
        if self._probes is None:
            rng = np.random.default_rng([self.seed, 7])
            sample = self.estimator.draw(self.obs_ids, rng)
            keep = np.sort(rng.choice(len(sample), min(DRIFT_PROBES, len(sample)),
                                      replace=False))
            col = sample.col[keep]
            x, c = self.net.column_inputs(col)
            slot, z = self._drift_features(col, x)
            w = (sample.weight[keep] / self.sigma[sample.obs[keep]]) ** 2
            n_slot, m = self.net.n_slot, z.shape[1]
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
            self._probes = {"x": x, "c": c, "shape": (n_slot, m),
                            "fit": fit.reshape(n_slot * m, slot.size)}
        return self._probes

    def _probe_values(self) -> np.ndarray:
        probes = self._drift_probes()
        with torch.no_grad(), self.net.evaluating():
            return self.net.model(probes["x"], probes["c"]).double().cpu().numpy()

    def drift_coef(self) -> np.ndarray | None:
        """The network's drift since the last refresh, fitted at the probes: coefficients
        (n_slot, 1 + n_input) of ``[1, x]`` per class slot; None without a drift fit."""
        if self._probe_base is None or not self.tuning.drift:
            return None
        probes = self._drift_probes()
        return (probes["fit"] @ (self._probe_values() - self._probe_base)).reshape(
            probes["shape"])

    def drift_shift(self, pick: np.ndarray, sample: Sample, inputs: torch.Tensor | None
                    ) -> tuple[np.ndarray | float, np.ndarray]:
        """The fitted drift at the draws (n,) and its exact totals at target positions
        ``pick`` (len(pick),) float64; zeros without a drift fit."""
        coef = None if inputs is None else self.drift_coef()
        if coef is None:
            return 0.0, np.zeros(len(pick))
        slot, z = self._drift_features(sample.col, inputs)
        return np.einsum("ij,ij->i", z, coef[slot]), self.drift_design()[pick] @ coef.ravel()

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the network the cache was built from, its floor, and the
        floor's generator."""
        return {"cache_state": self.state, "cache_floor": self.floor,
                "floor_rng": json.dumps(self.floor_rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the cache of a checkpoint from the network it was built from (the
        network's current state is kept)."""
        if "floor_rng" in state:
            self.floor_rng.bit_generator.state = json.loads(state["floor_rng"])
        if state.get("cache_state") is None:
            return
        current = cpu_state(self.net.model)
        self.net.model.load_state_dict(state["cache_state"])
        self.refresh(floor=state["cache_floor"])  # the floor as measured then
        self.net.model.load_state_dict(current)
