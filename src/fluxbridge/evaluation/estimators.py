"""Accuracy of the sparse estimators of regional totals against the exact operator.

Errors are in units of the inversion spread σ of each region-month, the scale on which the
regional term of the objective judges them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from fluxbridge.operators import LinearOperator, make_estimator

ESTIMATOR_KINDS = ("fixed", "resampled", "control_variate")


def estimator_accuracy(
    operator: LinearOperator,
    field: np.ndarray,
    sigma: np.ndarray,
    *,
    kind: str,
    K: int,
    draws: int,
    rng: np.random.Generator,
    cache: np.ndarray | None = None,
    sampling: str = "area",
    strata: np.ndarray | None = None,
) -> dict[str, float]:
    """Bias and spread of one estimator's regional totals, over repeated draws.

    Parameters
    ----------
    operator
        The observation operator H (rows = region-months).
    field
        The flux field ``f`` (n_time, n_cell) [g m-2 d-1] whose rows H·f are estimated.
    sigma
        Inversion spread of each row (n_obs,) [Tg month-1].
    kind
        ``fixed``, ``resampled`` or ``control_variate``.
    K
        Cell-days per region-month.
    draws
        Independent draws (the fixed estimator has one draw, kept).
    rng
        Random generator.
    cache
        The control variate's cached field ``g`` (n_time, n_cell).
    sampling, strata
        Sampling design (see :func:`fluxbridge.operators.make_estimator`).

    Returns
    -------
    dict
        ``bias_sigma``: rms over rows of the mean error / σ (for ``fixed``: rms error of its one
        draw / σ); ``std_sigma``: rms over rows of the standard deviation across draws / σ
        (0 for ``fixed``); ``cells_fraction``: share of the rows' cell-days evaluated per draw.
    """
    obs = np.arange(operator.n_obs)
    exact = operator.exact(field)
    est = make_estimator(kind, operator, K=K, sampling=sampling, strata=strata,
                         seed=int(rng.integers(2**31)))
    if est.needs_cache():
        if cache is None:
            raise ValueError("the control variate needs a cached field")
        est.set_cache(cache)
    flat = np.asarray(field, dtype=np.float64).ravel()
    n_draws = 1 if kind == "fixed" else draws
    values = np.empty((n_draws, operator.n_obs))
    touched = 0
    for r in range(n_draws):
        sample = est.draw(obs, rng)
        pred = torch.from_numpy(flat[sample.col])
        values[r] = est.estimate(pred, sample)[0].numpy()
        touched += est.cells_touched(sample)
    err = (values - exact[None, :]) / sigma[None, :]
    if kind == "fixed":
        bias, std = float(np.sqrt(np.mean(err[0] ** 2))), 0.0
    else:
        bias = float(np.sqrt(np.mean(err.mean(axis=0) ** 2)))
        std = float(np.sqrt(np.mean(err.std(axis=0, ddof=1) ** 2)))
    cells = touched / n_draws / float(operator.row_sizes(obs).sum())
    return {"bias_sigma": bias, "std_sigma": std, "cells_fraction": cells}


def estimator_error_table(
    operator: LinearOperator,
    field: np.ndarray,
    cache: np.ndarray,
    sigma: np.ndarray,
    *,
    Ks: Sequence[int] = (4, 16, 64, 256),
    kinds: Sequence[str] = ESTIMATOR_KINDS,
    draws: int = 20,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`estimator_accuracy` for every estimator and K.

    Returns
    -------
    pd.DataFrame
        ``estimator, K, bias_sigma, std_sigma, rmse_sigma, cells_fraction``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for kind in kinds:
        for K in Ks:
            acc = estimator_accuracy(operator, field, sigma, kind=kind, K=K, draws=draws,
                                     rng=rng, cache=cache, strata=strata)
            rows.append({"estimator": kind, "K": K, **acc,
                         "rmse_sigma": float(np.hypot(acc["bias_sigma"], acc["std_sigma"]))})
    out = pd.DataFrame(rows)
    out.attrs["long_names"] = {"bias_sigma": "rms bias over region-months / σ",
                               "std_sigma": "rms standard deviation over draws / σ"}
    return out
