"""The estimators of H·f by name, and the regional term's squared error.

* ``exact`` — every column of the row: the reference
  (:class:`fluxbridge.operators.sample.ExactEstimator`);
* ``fixed`` — K columns per row drawn once and kept, the published method
  (:class:`fluxbridge.operators.resampled.FixedEstimator`);
* ``resampled`` — new Horvitz–Thompson draws every call
  (:class:`fluxbridge.operators.resampled.ResampledEstimator`);
* ``control_variate`` — ``H·g`` of a cached full-field prediction ``g`` plus a sampled estimate
  of ``f − g`` (:class:`fluxbridge.operators.control_variate.ControlVariateEstimator`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from fluxbridge.errors import InputError
from fluxbridge.operators.control_variate import ControlVariateEstimator
from fluxbridge.operators.operator import LinearOperator
from fluxbridge.operators.resampled import FixedEstimator, ResampledEstimator, Sampling
from fluxbridge.operators.sample import Estimator, ExactEstimator

ESTIMATORS = ("exact", "fixed", "resampled", "control_variate")
FRESH_DRAWS = ("resampled", "control_variate")
"""The estimators whose cell-days are drawn anew at every step."""
ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def make_estimator(kind: str, operator: LinearOperator, *, K: int = 64,
                   sampling: Sampling = "area", strata: np.ndarray | None = None,
                   n_rep: int = 1, seed: int = 0) -> Estimator:
    """An estimator by name: ``exact``, ``fixed``, ``resampled`` or ``control_variate``."""
    if kind == "exact":
        return ExactEstimator(operator)
    if kind == "fixed":
        return FixedEstimator(operator, K, sampling, strata, n_rep, seed)
    if kind == "resampled":
        return ResampledEstimator(operator, K, sampling, strata, n_rep)
    if kind == "control_variate":
        return ControlVariateEstimator(operator, K, sampling, strata, n_rep)
    raise InputError(f"unknown estimator {kind!r}", variable="estimator",
                     expected=" or ".join(ESTIMATORS))


def replicates(kind: str, square: str) -> int:
    """Replicates an estimator draws per step for the squared error (``tuning.regional.square``):
    two for the unbiased product where every step draws afresh (:data:`FRESH_DRAWS`), one
    otherwise. The exact sum has no sampling noise, and a fixed sample is squared whole: the
    product of two fixed halves' errors can be driven negative by a network that moves the
    halves apart."""
    return 2 if square == "unbiased" and kind in FRESH_DRAWS else 1


def squared_error(estimates: ArrayT, mu: ArrayT) -> ArrayT:
    """Per-row squared error ``(F̂ − μ)²``; with two replicates the unbiased product
    ``(F̂1 − μ)(F̂2 − μ)``. Torch tensors or numpy arrays.

    Parameters
    ----------
    estimates
        (n_rep, n_obs) estimates [Tg month-1] from :meth:`Estimator.estimate`.
    mu
        (n_obs,) targets [Tg month-1].
    """
    if estimates.shape[0] == 1:
        return (estimates[0] - mu) ** 2
    if estimates.shape[0] == 2:
        return (estimates[0] - mu) * (estimates[1] - mu)
    raise ValueError(f"expected 1 or 2 replicates, got {estimates.shape[0]}")


def squared_error_grad(estimates: ArrayT, mu: ArrayT) -> ArrayT:
    """Gradient of :func:`squared_error`, row by row, with respect to each replicate's
    estimates (n_rep, n_obs): ``2 (F̂ − μ)``, or ``(F̂2 − μ, F̂1 − μ)`` for the product."""
    if estimates.shape[0] == 1:
        return 2 * (estimates - mu)
    if estimates.shape[0] == 2:
        return (estimates - mu)[[1, 0]]
    raise ValueError(f"expected 1 or 2 replicates, got {estimates.shape[0]}")
