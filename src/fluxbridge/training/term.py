"""What the regional and the footprint terms of the objective share: λ mean over the
operator's rows of (Ĥf − y)² / σ², estimated from sparse draws of grid cell-days.

:class:`ObservationTerm` owns the operator H (its rows in target order ``obs_ids``), the
targets ``mu`` and their ``sigma``, the estimator, the draws, the loss and its gradient, the
control-variate cache and the grid offset's exact part; the subclasses
(:class:`fluxbridge.training.regional.RegionalTerm`,
:class:`fluxbridge.training.footprint.FootprintTerm`) build them, the trainer only calls them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from fluxbridge.config import ExperimentConfig
from fluxbridge.operators import (
    ExactEstimator,
    FixedEstimator,
    LinearOperator,
    ResampledEstimator,
    Sample,
    squared_error,
    squared_error_grad,
)
from fluxbridge.operators.sample import Estimator
from fluxbridge.training.cache import ControlVariateCache
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.training.offsets import GridOffsets

DRAW_AHEAD = 32  # steps whose rows are drawn in one call (see ObservationTerm.draw)
Draw = tuple[np.ndarray, Sample, torch.Tensor, torch.Tensor]


def relative_variance(var: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The variance of the replicates' mean estimate in units of σ² (n,), from the draws'
    estimate of each replicate's variance (n_rep, n) and the targets' σ (n,)."""
    return var.mean(axis=0) / var.shape[0] / sigma**2


class ObservationTerm:
    """One observation term of a network's training (set up by a subclass).

    Attributes
    ----------
    net, cfg
        The network on the grid and the experiment.
    operator, obs_ids
        The observation operator and its rows in target order.
    mu, sigma
        Targets and their σ (float64, in the operator's units).
    weight
        λ of the term.
    obs_per_step
        Rows drawn per training step.
    estimator, cache, offsets
        The estimator of H·f, its control-variate cache (None without) and the grid offset's
        exact part at the rows (None without an offset).
    name
        The term's name in the losses; its checkpoint keys are prefixed by it, but for the
        regional term's.
    """

    net: GridNetwork
    cfg: ExperimentConfig
    operator: LinearOperator
    obs_ids: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    weight: float
    obs_per_step: int
    estimator: Estimator
    cache: ControlVariateCache | None
    offsets: GridOffsets | None
    obs_rng: np.random.Generator
    name: str = "regional"

    @property
    def prefix(self) -> str:
        return "" if self.name == "regional" else f"{self.name}_"

    def _start(self, stream: int) -> None:
        """The draws' generator (its own stream of the seed) and the cache."""
        self.obs_rng = np.random.default_rng([self.cfg.seed, stream])
        self._ahead: list[Draw] = []
        self.cache = (ControlVariateCache(self.net, self.estimator, self.cfg.tuning.cache)
                      if self.estimator.needs_cache() else None)
        self.offsets = (GridOffsets(self.net, self.operator, self.obs_ids)
                        if self.net.model.offset is not None else None)

    # -- draws ----------------------------------------------------------------------------
    def start_epoch(self) -> None:
        """Empty the draws' queue (a resumed run draws as an uninterrupted one)."""
        self._ahead = []

    def draw(self) -> Draw:
        """The next step's ``obs_per_step`` random region-months (positions among the targets),
        their draw, and the network's inputs (features, classes) at the draws. Sampled
        estimators draw for ``DRAW_AHEAD`` steps at once (a step's fixed cost is mostly such
        calls)."""
        if not self._ahead:
            ahead = 1 if isinstance(self.estimator, ExactEstimator) else DRAW_AHEAD
            self._ahead = self._draw_steps(ahead)[::-1]
        return self._ahead.pop()

    def _draw_steps(self, n_steps: int) -> list[Draw]:
        """:meth:`draw` for ``n_steps`` steps in one call of the estimator, its draws put in
        step order (stably: within a step, replicates and rows keep the estimator's order), so
        that each step's draws and inputs are views of one contiguous run."""
        n = min(self.obs_per_step, self.obs_ids.size)
        picks = [self.obs_rng.choice(self.obs_ids.size, size=n, replace=False)
                 for _ in range(n_steps)]
        every = self.estimator.draw(self.obs_ids[np.concatenate(picks)], self.obs_rng)
        step = every.obs // n
        order = np.argsort(step, kind="stable")
        obs, rep, col, weight = (a[order] for a in (every.obs, every.rep, every.col,
                                                    every.weight))
        stratum = None if every.stratum is None else every.stratum[order]
        bounds = np.searchsorted(step[order], np.arange(n_steps + 1))
        xs, cs = self.net.column_inputs(col)
        steps = []
        for k, pick in enumerate(picks):
            at = slice(bounds[k], bounds[k + 1])
            sample = Sample(every.obs_ids[k * n:(k + 1) * n], obs[at] - k * n, rep[at], col[at],
                            weight[at], every.n_rep, every.n_cell,
                            None if stratum is None else stratum[at])
            steps.append((pick, sample, xs[at], cs[at]))
        return steps

    # -- the loss -------------------------------------------------------------------------
    def totals(self, pred: torch.Tensor, pick: np.ndarray, sample: Sample,
               inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Estimated model totals (n_rep, len(pick)) [Tg month-1] of the targets at positions
        ``pick``, differentiable: the estimate from the network's predictions ``pred`` (grid
        offset excluded) at the draws of ``sample``, plus the grid offset's exact totals."""
        est = self.estimator.estimate(pred, sample, inputs)
        if self.offsets is None:
            return est
        return est + self.offsets.totals(pick).to(est.dtype).unsqueeze(0)

    def error(self, pred: torch.Tensor, pick: np.ndarray, sample: Sample,
              inputs: torch.Tensor | None = None) -> tuple[float, np.ndarray, float]:
        """Mean regional error [σ²] from the network's predictions ``pred`` at the draws, its
        gradient with respect to the estimated totals (n_rep, len(pick)), and the draws' own
        estimate of the totals' variance [σ²], mean over the rows.

        Every estimator is affine in the predictions, with the draws' weights as slopes, so
        the gradient with respect to ``pred`` follows in closed form (:meth:`cell_gradient`).
        Computed in numpy float64: a step's few hundred draws make this a few dozen small
        operations, each a fraction of torch's cost.
        """
        est, var = self.estimator.estimate_with_variance(
            pred.detach().double().cpu().numpy(), sample, inputs)
        if self.offsets is not None:
            with torch.no_grad():
                est = est + self.offsets.totals(pick).cpu().numpy()
        scale = 1.0 / (self.sigma[pick] ** 2 * pick.size)
        mu = self.mu[pick]
        noise = float(np.mean(relative_variance(var, self.sigma[pick])))
        return (float((squared_error(est, mu) * scale).sum()),
                squared_error_grad(est, mu) * scale, noise)

    def cell_gradient(self, d_totals: np.ndarray, pick: np.ndarray, sample: Sample
                      ) -> np.ndarray:
        """λ times the gradient of the regional term with respect to the network's prediction
        at each draw, given its gradient with respect to the totals; with a grid offset, only
        the share ``tuning.offset.to_network`` (the offsets take the whole gradient)."""
        g = d_totals.ravel()[sample.rep * pick.size + sample.obs] * sample.weight \
            * self.weight
        return g * self.cfg.tuning.offset.to_network if self.offsets is not None else g

    def offset_gradient(self, d_totals: np.ndarray, pick: np.ndarray) -> None:
        """Add the regional term's gradient to the grid offset's (no offset: nothing)."""
        if self.offsets is not None:
            self.offsets.add_grad(pick, self.weight * d_totals.sum(0))

    # -- after training -------------------------------------------------------------------
    def network_totals(self, K: int, chunk_entries: int = 1 << 20) -> np.ndarray:
        """The network's totals at every target (grid offset excluded) [Tg month-1], by the
        training estimator, so a sparse model stays sparse: ``exact`` sums every cell-day,
        ``fixed`` uses its one draw, ``resampled`` and ``control_variate`` (cache refreshed
        first) average independent draws until about ``K`` cell-days per region-month are
        used."""
        est, net = self.estimator, self.net
        if self.cache is not None:
            self.cache.refresh()
        draws = max(1, K // est.K) if isinstance(est, ResampledEstimator) \
            and not isinstance(est, FixedEstimator) else 1
        rng = np.random.default_rng([self.cfg.seed, 11])
        current = np.zeros(self.obs_ids.size)
        chunk = max(1, chunk_entries // max(1, int(self.operator.row_sizes(self.obs_ids).max())))
        with torch.no_grad():
            for start in range(0, self.obs_ids.size, chunk):
                ids = self.obs_ids[start:start + chunk]
                for _ in range(draws):
                    sample = est.draw(ids, rng)
                    pred, xs = net.predict_columns(sample.col, offset=False)
                    current[start:start + chunk] += \
                        est.estimate(pred.double(), sample, xs).mean(0).cpu().numpy() / draws
        return current

    def current_totals(self, K: int) -> np.ndarray:
        """The model's values at every row, the network by :meth:`network_totals` with about
        ``K`` cell-days per row and the grid offset exact, with the network in evaluation
        mode."""
        with self.net.evaluating():
            current = self.network_totals(K)
        if self.offsets is not None:
            with torch.no_grad():
                current += self.offsets.totals(np.arange(self.obs_ids.size)).cpu().numpy()
        return current

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The draws' generator and the cache's state."""
        out: dict[str, Any] = {f"{self.prefix}obs_rng":
                               json.dumps(self.obs_rng.bit_generator.state)}
        if self.cache is not None:
            out.update(self.cache.state_dict())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the cache rebuilt from the network it was built from)."""
        self.obs_rng.bit_generator.state = json.loads(state[f"{self.prefix}obs_rng"])
        if self.cache is not None:
            self.cache.load_state_dict(state)
