"""Draws of operator columns and the interface of the estimators of H·f.

An estimator picks columns of some observation rows (:meth:`Estimator.draw`, a :class:`Sample`)
and turns model predictions at those columns into estimates of the rows, differentiably, with
``index_add`` (:meth:`Estimator.estimate`). :class:`ExactEstimator` takes every column of a row:
the reference every other estimator is measured against.

Draws can come in two independent replicates, so that ``(F̂1 − μ)(F̂2 − μ)`` is an unbiased
estimate of ``(F − μ)²`` (the plain square of a noisy estimate is biased by its variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fluxbridge.errors import InputError
from fluxbridge.operators.operator import LinearOperator


@dataclass(frozen=True)
class Sample:
    """Columns drawn for some observation rows.

    Attributes
    ----------
    obs_ids
        Operator rows of this sample (n_obs_local,).
    obs
        Position in ``obs_ids`` of each draw (n,).
    rep
        Replicate of each draw (0 or 1; two replicates are independent).
    col
        Column of each draw (n,): time ``col // n_cell``, cell ``col % n_cell``.
    weight
        Horvitz–Thompson weight of each draw (n,), so that the sum of weight × f over a
        replicate's draws of a row estimates that row of H·f without bias.
    n_rep
        Number of replicates.
    stratum
        Stratum of each draw (n,): draws of one replicate and stratum are independent and
        identically distributed (with replacement), which :meth:`Estimator.estimate_with_variance`
        needs; None where draws are not random (exact, fixed).
    """

    obs_ids: np.ndarray
    obs: np.ndarray
    rep: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    n_rep: int
    n_cell: int
    stratum: np.ndarray | None = None

    @property
    def time_idx(self) -> np.ndarray:
        """Time index of each draw."""
        return self.col // self.n_cell

    @property
    def cell_idx(self) -> np.ndarray:
        """Cell index of each draw."""
        return self.col % self.n_cell

    def __len__(self) -> int:
        return int(self.col.size)

    def subset(self, obs_ids: np.ndarray) -> Sample:
        """The draws of some of this sample's rows (renumbered to the order of ``obs_ids``)."""
        obs_ids = np.asarray(obs_ids)
        pos = pd.Index(self.obs_ids).get_indexer(obs_ids)
        if np.any(pos < 0):
            raise InputError("rows not in the sample", variable="obs_ids")
        local = np.full(self.obs_ids.size, -1)
        local[pos] = np.arange(obs_ids.size)
        new = local[self.obs]
        keep = new >= 0
        return Sample(obs_ids, new[keep], self.rep[keep], self.col[keep], self.weight[keep],
                      self.n_rep, self.n_cell,
                      None if self.stratum is None else self.stratum[keep])


def _weighted_sum(values: torch.Tensor, sample: Sample) -> torch.Tensor:
    """(n_rep, n_obs_local) sums of weight × values per replicate and row."""
    n_obs = sample.obs_ids.size
    index = torch.as_tensor(sample.rep * n_obs + sample.obs, device=values.device)
    weight = torch.as_tensor(sample.weight, dtype=values.dtype, device=values.device)
    out = torch.zeros(sample.n_rep * n_obs, dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values * weight).reshape(sample.n_rep, n_obs)


def _sum_variance(terms: np.ndarray, sample: Sample) -> np.ndarray:
    """(n_rep, n_obs_local) unbiased estimates of the variance of each replicate's sum of
    ``terms`` (weight × value of each draw).

    Within a stratum of m independent draws with replacement, each ``m × term`` is an unbiased
    estimate of the stratum's total, so their sample variance / m estimates the variance of the
    stratum's sum without bias (Hansen–Hurwitz); strata add. A stratum of one draw contributes
    nothing (its variance cannot be estimated from one draw). The draws of one replicate, row
    and stratum come in one run, as the estimators here draw them (no sorting needed).
    """
    n_obs = sample.obs_ids.size
    out = np.zeros(sample.n_rep * n_obs)
    if sample.stratum is None or terms.size == 0:
        return out.reshape(sample.n_rep, n_obs)
    cell = sample.rep * n_obs + sample.obs
    change = np.ones(terms.size, dtype=bool)
    change[1:] = (cell[1:] != cell[:-1]) | (sample.stratum[1:] != sample.stratum[:-1])
    group = np.cumsum(change) - 1
    m = np.bincount(group)[group]
    total = np.bincount(group, terms)[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.where(m > 1, (m * terms - total) ** 2 / (m * np.maximum(m - 1, 1)), 0.0)
    return np.bincount(cell, part, minlength=out.size).reshape(sample.n_rep, n_obs)


class Estimator:
    """Common interface of the estimators of H·f (see the module docstring)."""

    name: str = "estimator"

    def __init__(self, operator: LinearOperator) -> None:
        self.operator = operator

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator) -> Sample:
        """Columns and weights for the rows ``obs_ids``."""
        raise NotImplementedError

    def estimate(self, pred: torch.Tensor, sample: Sample,
                 inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Estimates (n_rep, len(sample.obs_ids)) of the rows from predictions at the draws.

        Parameters
        ----------
        pred
            Model predictions (n,) [g m-2 d-1] at ``sample.col``; gradients flow through.
        inputs
            The model's inputs at the draws (n, n_input); only a first-order control-variate
            cache uses them.
        """
        base, cached = self._baseline(sample, inputs)
        values = pred if cached is None else pred - torch.as_tensor(
            cached, dtype=pred.dtype, device=pred.device)
        out = _weighted_sum(values, sample)
        return out if base is None else torch.as_tensor(
            base, dtype=out.dtype, device=out.device).unsqueeze(0) + out

    def estimate_with_variance(self, pred: np.ndarray, sample: Sample,
                               inputs: torch.Tensor | np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`estimate` without a gradient, in numpy float64 (a training step's regional
        term, whose gradient is in closed form: a few dozen operations on a few hundred draws,
        where numpy's cost per operation is a fraction of torch's), and an unbiased estimate of
        each estimate's variance from the same draws (n_rep, n_obs_local) [(Tg month-1)²]:
        zero for exact estimates, the variance of the sampled correction ``f − g`` for the
        control variate.
        """
        base, cached = self._baseline(sample, inputs)
        values = np.asarray(pred, dtype=np.float64)
        terms = (values if cached is None else values - cached) * sample.weight
        n_obs = sample.obs_ids.size
        out = np.bincount(sample.rep * n_obs + sample.obs, terms,
                          minlength=sample.n_rep * n_obs).reshape(sample.n_rep, n_obs)
        return (out if base is None else base + out), _sum_variance(terms, sample)

    def _baseline(self, sample: Sample, inputs: torch.Tensor | np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-row base (n_obs_local,) and per-draw values (n,) subtracted from the
        predictions before their weighted sums complete the estimate (None: none)."""
        return None, None

    def cells_touched(self, sample: Sample) -> int:
        """Distinct (cell, time) columns a sample needs predictions at."""
        return int(np.unique(sample.col).size)

    def needs_cache(self) -> bool:
        """Whether :meth:`set_cache` must be called before estimating."""
        return False


class ExactEstimator(Estimator):
    """Every column of each row (weight = the operator's weight): the reference."""

    name = "exact"

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator | None = None) -> Sample:
        obs_ids = np.asarray(obs_ids, dtype=np.int64)
        m = self.operator.matrix
        starts, ends = m.indptr[obs_ids], m.indptr[obs_ids + 1]
        sizes = ends - starts
        pos = _ranges(starts, sizes)
        obs = np.repeat(np.arange(obs_ids.size), sizes)
        return Sample(obs_ids, obs, np.zeros(obs.size, dtype=np.int64),
                      m.indices[pos].astype(np.int64), m.data[pos], 1, self.operator.n_cell)



def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start s and size n."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - offsets)
