"""The paper's hypothesis: a sparse sample of cells constrains the site-level model as well as
the full regional sum.

The dual model is trained with the exact operator and with the fixed, resampled and
control-variate estimators at several K (cell-days per region-month); each is scored by its
regional monthly RMSE against a reference (the truth in the twin world) and its training time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.evaluation.regional import global_annual, regional_metrics, regional_summary
from fluxbridge.grid_features import GridFeatures
from fluxbridge.studies.grid_totals import regional_series

log = logging.getLogger(__name__)


def sparsity_study(
    samples: pd.DataFrame,
    cfg: ExperimentConfig,
    *,
    grid: GridFeatures,
    targets: xr.Dataset,
    regions: xr.Dataset,
    reference: pd.DataFrame,
    train_sites: Sequence[str],
    val_sites: Sequence[str] | None = None,
    Ks: Sequence[int] = (4, 16, 64, 256),
    estimators: Sequence[str] = ("fixed", "resampled", "control_variate"),
    include_site_only: bool = True,
    include_exact: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train the dual model with each estimator and K; score it against ``reference``.

    Parameters
    ----------
    samples, grid, targets, regions
        Site samples (:func:`fluxbridge.features.site_samples`), and the world's gridded
        features, inversion targets and regions.
    cfg
        The experiment (λ > 0); ``constraint.estimator`` and ``constraint.K`` are varied.
    reference
        ``region, time (YYYY-MM), nee_tgc`` [Tg month-1] to score against (the truth).
    train_sites, val_sites
        Sites to fit on and for early stopping.
    Ks
        Cell-days per region-month.
    estimators
        Sparse estimators to try; the exact operator is always run once.
    include_site_only
        Also train the λ = 0 model as the baseline row (first).
    include_exact
        Also train with the exact operator, the reference (last: it is by far the slowest,
        about a second per step on two cores at 2°).
    on_row
        Called with each row as soon as it is finished (e.g. to save partial results).

    Returns
    -------
    pd.DataFrame
        ``estimator, K, regional_rmse_tgc, annual_bias_tgc, global_nee_pgc, train_seconds,
        epochs`` (``K`` is None for the site-only and exact rows).
    """
    from fluxbridge.training import train_network

    def with_estimator(estimator: str, K: int | None = None) -> ExperimentConfig:
        update = {"estimator": estimator} if K is None else {"estimator": estimator, "K": K}
        return cfg.model_copy(update={"constraint": cfg.constraint.model_copy(update=update)})

    runs: list[tuple[str, int | None, ExperimentConfig]] = []
    if include_site_only:
        runs.append(("site_only", None, cfg.with_lambda(0.0)))
    runs += [(e, k, with_estimator(e, k)) for e in estimators for k in Ks]
    if include_exact:
        runs.append(("exact", None, with_estimator("exact")))
    rows = []
    for estimator, K, s in runs:
        t0 = time.perf_counter()
        model = train_network(samples, s, train_sites=train_sites, val_sites=val_sites,
                              grid=grid, targets=targets, regions=regions, progress=progress,
                              name=f"{estimator}_{K}")
        seconds = time.perf_counter() - t0
        series = regional_series(model, grid, regions)
        summary = regional_summary(regional_metrics({"m": series}, reference)).loc["m"]
        rows.append({"estimator": estimator, "K": K,
                     "regional_rmse_tgc": float(summary["regional_monthly_rmse_tgc"]),
                     "annual_bias_tgc": float(summary["regional_mean_abs_annual_bias_tgc"]),
                     "global_nee_pgc": float(
                         global_annual({"m": series})["nee_pgc"].mean()),
                     "train_seconds": seconds,
                     "epochs": int(model.provenance.get("epochs_run", s.network.epochs))})
        if on_row is not None:
            on_row(dict(rows[-1]))
        log.info("sparsity %s K=%s: RMSE %.1f Tg/month in %.0f s", estimator, K,
                 rows[-1]["regional_rmse_tgc"], seconds)
    out = pd.DataFrame(rows)
    out.attrs["long_names"] = {
        "regional_rmse_tgc": "regional monthly RMSE against the reference [Tg month-1]",
        "annual_bias_tgc": "mean absolute regional annual bias [Tg yr-1]",
        "global_nee_pgc": "mean global annual NEE [Pg yr-1]",
        "train_seconds": "training time [s]"}
    return out
