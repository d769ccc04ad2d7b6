"""The paper's hypothesis: a sparse sample of cells constrains the site-level model as well as
the full regional sum.

The dual model is trained with the exact operator and with the fixed, resampled and
control-variate estimators at several K (cell-days per region-month); each is scored by its
regional monthly RMSE against a reference (the truth in the twin world) and its training time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.evaluation.regional import global_annual, regional_metrics
from fluxbridge.features import GridFeatures
from fluxbridge.operators import RegionalOperator

log = logging.getLogger(__name__)


def _members(model: Any) -> list[Any]:
    return list(model) if isinstance(model, list | tuple) else [model]


def grid_field(model: Any, grid: GridFeatures, chunk_rows: int = 1 << 20, *,
               cells: np.ndarray | None = None, mask_invalid: bool = True) -> np.ndarray:
    """A model's NEE at every (time, land cell) of ``grid`` (n_time, n_cell) [g m-2 d-1],
    grid offset included (cells pass their region and day of year).

    Parameters
    ----------
    model
        A fitted model, or a list of ensemble members (their mean is returned).
    grid
        Gridded features of the land cells.
    chunk_rows
        Rows per prediction call.
    cells
        Positions of the cells to predict; the others are 0 (all cells when ``None``).
    mask_invalid
        Cell-days with a non-finite feature are 0, as in the upscaled totals
        (:meth:`GridFeatures.valid`); otherwise the model imputes them.
    """
    n_time, n_cell, n_feat = grid.values.shape
    out = np.zeros((n_time, n_cell), dtype=np.float32)
    cols = np.arange(n_cell) if cells is None else np.asarray(cells, dtype=np.int64)
    if cols.size == 0:
        return out
    members = _members(model)
    per = max(1, chunk_rows // cols.size)
    doy = pd.DatetimeIndex(grid.times).day_of_year.to_numpy()
    for t0 in range(0, n_time, per):
        t1 = min(n_time, t0 + per)
        X = grid.values[t0:t1][:, cols].reshape(-1, n_feat)
        args = (np.tile(grid.igbp_code[cols], t1 - t0),)
        kw = {"region": np.tile(grid.region[cols], t1 - t0),
              "dayofyear": np.repeat(doy[t0:t1], cols.size)}
        pred = sum(m.predict_arrays(X, *args, **kw).astype(np.float64) for m in members)
        out[t0:t1, cols] = (pred / len(members)).reshape(t1 - t0, cols.size)
    if mask_invalid:
        out[~grid.valid()] = 0.0
    return out


def regional_series(model: Any, grid: GridFeatures, regions: xr.Dataset,
                    only: Sequence[int] | None = None) -> pd.DataFrame:
    """Regional monthly totals ``region, time (YYYY-MM), nee_tgc`` [Tg month-1] of a model.

    ``only``: region ids to compute (only their cells are predicted); all regions when
    ``None``. Cell-days with a missing predictor count as zero, as in the upscaled totals.
    """
    op = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
    cells = None if only is None else np.flatnonzero(np.isin(grid.region, list(only)))
    totals = op.exact(grid_field(model, grid, cells=cells).astype(np.float64))
    idx = op.obs_index
    out = pd.DataFrame({"region_id": idx["region"].to_numpy().astype(int),
                        "region": idx["region_name"].astype(str).to_numpy(),
                        "time": pd.DatetimeIndex(idx["time"]).strftime("%Y-%m"),
                        "nee_tgc": np.asarray(totals)})
    if only is not None:
        out = out[out["region_id"].isin(list(only))]
    return out.drop(columns="region_id").reset_index(drop=True)


def sparsity_study(
    samples: pd.DataFrame,
    settings: Any,
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
    samples
        Site samples (:func:`fluxbridge.features.site_samples`).
    settings
        :class:`fluxbridge.training.TrainSettings` with λ > 0; ``estimator`` and ``K`` are
        varied.
    grid, targets, regions
        Gridded features, inversion targets and regions of the world.
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

    runs: list[tuple[str, int | None, Any]] = []
    if include_site_only:
        runs.append(("site_only", None, dataclasses.replace(settings, lambda_regional=0.0)))
    runs += [(e, k, dataclasses.replace(settings, estimator=e, K=k))
             for e in estimators for k in Ks]
    if include_exact:
        runs.append(("exact", None, dataclasses.replace(settings, estimator="exact")))
    rows = []
    for estimator, K, s in runs:
        t0 = time.perf_counter()
        model = train_network(samples, s, train_sites=train_sites, val_sites=val_sites,
                              grid=grid, targets=targets, regions=regions, progress=progress,
                              name=f"{estimator}_{K}")
        seconds = time.perf_counter() - t0
        series = regional_series(model, grid, regions)
        scores = regional_metrics({"m": series}, reference)
        overall = scores[scores["region"] == "all"].iloc[0]
        per_region = scores[scores["region"] != "all"]
        rows.append({"estimator": estimator, "K": K,
                     "regional_rmse_tgc": float(overall["monthly_rmse"]),
                     "annual_bias_tgc": float(per_region["annual_bias"].abs().mean()),
                     "global_nee_pgc": float(
                         global_annual({"m": series})["nee_pgc"].mean()),
                     "train_seconds": seconds,
                     "epochs": int(model.provenance.get("epochs_run", s.epochs))})
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
