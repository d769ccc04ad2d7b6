"""Site-level skill by time scale, as FLUXCOM reports it (Tramontana et al. 2016; Jung et al. 2020).

Input is the site predictions table: columns ``site, time, fold, igbp, observed, weight`` (plus an
optional ``region``) and one column of predicted NEE [g m-2 d-1] per model. The time step is daily
or monthly (inferred from the times).

Time scales
-----------
``all``
    Every record at the model's own time step.
``across_site``
    Per-site means over the record (one value per site).
``seasonal``
    Per-site mean seasonal cycle by month of year (daily data are first averaged to months),
    pooled over sites.
``anomaly``
    Monthly values minus the site's mean seasonal cycle; (site, month of year) pairs seen in
    fewer than two years are left out (their anomaly is zero by construction).
``interannual``
    Per-site annual means (years with at least ``min_months_per_year`` months) minus the site's
    mean of them; sites with at least two such years.

Only records where the observation and every model named are finite are used, so all models are
scored on identical samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fluxbridge.errors import InputError

log = logging.getLogger(__name__)

SCALES: tuple[str, ...] = ("all", "across_site", "seasonal", "anomaly", "interannual")
GROUP_KEYS: tuple[str, ...] = ("igbp", "region")
SCORE_COLUMNS: tuple[str, ...] = ("r2", "r2_pearson", "rmse", "bias", "n")

_SCORE_ATTRS = {
    "r2": "modelling efficiency 1 - SSE/SST [1]",
    "r2_pearson": "squared Pearson correlation [1]",
    "rmse": "root mean square error of NEE [g m-2 d-1]",
    "bias": "mean of predicted minus observed NEE [g m-2 d-1]",
    "n": "number of values scored [1]",
}


def scores(observed: np.ndarray, predicted: np.ndarray,
           weight: np.ndarray | None = None) -> dict[str, float]:
    """R², squared Pearson correlation, RMSE and bias of one set of pairs.

    Parameters
    ----------
    observed, predicted
        Values of the same quantity (e.g. NEE [g m-2 d-1]); pairs with a NaN are ignored.
    weight
        Optional non-negative weights [1]; ``None`` gives the standard unweighted scores.

    Returns
    -------
    dict
        ``r2`` = 1 − SSE/SST (modelling efficiency; NaN when SST = 0), ``r2_pearson``,
        ``rmse`` and ``bias`` (mean of predicted − observed) in the units of the input, ``n``.
    """
    obs = np.asarray(observed, dtype=float)
    pred = np.asarray(predicted, dtype=float)
    w = np.ones_like(obs) if weight is None else np.asarray(weight, dtype=float)
    ok = np.isfinite(obs) & np.isfinite(pred) & np.isfinite(w) & (w > 0)
    obs, pred, w = obs[ok], pred[ok], w[ok]
    n = int(obs.size)
    if n == 0:
        return {"r2": np.nan, "r2_pearson": np.nan, "rmse": np.nan, "bias": np.nan, "n": 0}
    err = pred - obs
    sse = float(np.sum(w * err**2))
    obs_mean = float(np.average(obs, weights=w))
    sst = float(np.sum(w * (obs - obs_mean) ** 2))
    r2 = 1.0 - sse / sst if n > 1 and sst > 0 else np.nan
    pred_mean = float(np.average(pred, weights=w))
    cov = float(np.sum(w * (obs - obs_mean) * (pred - pred_mean)))
    var_p = float(np.sum(w * (pred - pred_mean) ** 2))
    r2p = cov**2 / (sst * var_p) if n > 1 and sst > 0 and var_p > 0 else np.nan
    return {
        "r2": r2,
        "r2_pearson": r2p,
        "rmse": float(np.sqrt(sse / np.sum(w))),
        "bias": float(np.average(err, weights=w)),
        "n": n,
    }


def _check(predictions: pd.DataFrame, models: Sequence[str]) -> None:
    need = ["site", "time", "observed", *models]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise InputError(f"site predictions lack columns {missing}", variable=", ".join(missing),
                         expected="columns site, time, observed and one per model")
    if not models:
        raise InputError("no model columns given", variable="models",
                         expected="at least one prediction column name")


def _parse_time(time: pd.Series) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(time.astype(str)))
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot parse times ({exc})", variable="time",
                         expected="YYYY-MM, YYYY-MM-DD or datetimes") from exc


def infer_step_days(time: pd.DatetimeIndex | pd.Series) -> float:
    """Median spacing [days] of the distinct times of a site predictions table."""
    t = np.unique(pd.DatetimeIndex(time).values)
    if t.size < 2:
        raise InputError("cannot tell the time step from fewer than two times", variable="time",
                         expected="daily or monthly records")
    return float(np.median(np.diff(t).astype("timedelta64[s]").astype(float)) / 86_400.0)


def scale_tables(
    predictions: pd.DataFrame,
    models: Sequence[str],
    *,
    min_days_per_month: int = 15,
    min_months_per_year: int = 10,
) -> dict[str, pd.DataFrame]:
    """The pairs scored at each time scale.

    Parameters
    ----------
    predictions
        Site predictions table (see module docstring).
    models
        Names of the prediction columns.
    min_days_per_month
        Daily data: months with fewer valid days are left out of the monthly scales.
    min_months_per_year
        Years with fewer valid months are left out of the interannual scale.

    Returns
    -------
    dict
        Scale name → DataFrame with ``site``, the site attributes present (``igbp``, ``region``),
        ``observed`` and the model columns (plus ``weight`` for ``all``), in the units of the
        input [g m-2 d-1].
    """
    models = list(models)
    _check(predictions, models)
    attrs = [c for c in GROUP_KEYS if c in predictions.columns]
    df = predictions.copy()
    df["time"] = _parse_time(df["time"])
    if "weight" not in df.columns:
        df["weight"] = 1.0
    value_cols = ["observed", *models]
    ok = np.isfinite(df[value_cols].to_numpy(dtype=float)).all(axis=1)
    if not ok.all():
        log.debug("scoring %d of %d records (others lack an observation or a prediction)",
                  int(ok.sum()), len(df))
    df = df.loc[ok]
    if df.empty:
        raise InputError("no record has an observation and every model's prediction",
                         variable="observed", expected="finite observed and predicted values")
    site_attrs = df.groupby("site", sort=True)[attrs].first() if attrs else None

    def with_attrs(frame: pd.DataFrame) -> pd.DataFrame:
        if site_attrs is None:
            return frame.reset_index(drop=True)
        return frame.merge(site_attrs, left_on="site", right_index=True, how="left")

    out = {"all": df[["site", *attrs, "time", "weight", *value_cols]].reset_index(drop=True)}
    out["across_site"] = with_attrs(df.groupby("site", sort=True)[value_cols].mean().reset_index())

    step = infer_step_days(df["time"])
    if step < 27:
        month = df.assign(time=df["time"].dt.to_period("M").dt.to_timestamp())
        grouped = month.groupby(["site", "time"], sort=True)
        monthly = grouped[value_cols].mean()
        monthly = monthly[grouped.size() >= min_days_per_month].reset_index()
    else:
        monthly = df[["site", "time", *value_cols]].copy()
    monthly["moy"] = monthly["time"].dt.month
    monthly["year"] = monthly["time"].dt.year

    msc = monthly.groupby(["site", "moy"], sort=True)[value_cols]
    out["seasonal"] = with_attrs(msc.mean().reset_index())

    years_seen = monthly.groupby(["site", "moy"])["observed"].transform("size")
    anomaly = monthly[["site", "time"]].copy()
    anomaly[value_cols] = monthly[value_cols] - msc.transform("mean")
    out["anomaly"] = with_attrs(anomaly.loc[years_seen >= 2].reset_index(drop=True))

    yearly = monthly.groupby(["site", "year"], sort=True)
    annual = yearly[value_cols].mean()[yearly.size() >= min_months_per_year].reset_index()
    n_years = annual.groupby("site")["year"].transform("size")
    annual = annual.loc[n_years >= 2].copy()
    annual[value_cols] = annual[value_cols] - annual.groupby("site")[value_cols].transform("mean")
    out["interannual"] = with_attrs(annual.reset_index(drop=True))
    return out


def site_metrics(
    predictions: pd.DataFrame,
    models: Sequence[str],
    by: str | None = None,
    *,
    weighted: bool = False,
    scales: Sequence[str] = SCALES,
    min_days_per_month: int = 15,
    min_months_per_year: int = 10,
) -> pd.DataFrame:
    """Site-level skill of each model at each time scale, optionally by vegetation class or region.

    Parameters
    ----------
    predictions
        Site predictions table: ``site, time, observed`` [g m-2 d-1], ``igbp``, ``weight`` [1],
        optional ``region``, one column per model [g m-2 d-1].
    models
        Names of the prediction columns to score.
    by
        ``None``, ``"igbp"`` or ``"region"``: score separately within each group.
    weighted
        Use the ``weight`` column at the ``all`` scale (the aggregated scales are unweighted).
    scales
        Time scales to score, a subset of :data:`SCALES`.
    min_days_per_month, min_months_per_year
        Completeness thresholds, see :func:`scale_tables`.

    Returns
    -------
    pd.DataFrame
        Long table ``model, scale, [by], r2, r2_pearson, rmse, bias, n``; ``rmse`` and ``bias`` in
        g m-2 d-1. ``df.attrs["long_names"]`` describes the score columns.
    """
    if by is not None and by not in GROUP_KEYS:
        raise InputError(f"cannot group by {by!r}", variable="by", expected=f"one of {GROUP_KEYS}")
    if by is not None and by not in predictions.columns:
        raise InputError(f"site predictions lack the column {by!r}", variable=by,
                         expected=f"a {by!r} column to group by")
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        raise InputError(f"unknown time scales {unknown}", variable="scales",
                         expected=f"a subset of {SCALES}")
    tables = scale_tables(predictions, models, min_days_per_month=min_days_per_month,
                          min_months_per_year=min_months_per_year)
    rows = []
    for scale in scales:
        table = tables[scale]
        groups = [(None, table)] if by is None else table.groupby(by, sort=True)
        for key, part in groups:
            w = part["weight"].to_numpy() if weighted and scale == "all" else None
            for model in models:
                row = {"model": model, "scale": scale}
                if by is not None:
                    row[by] = key
                row.update(scores(part["observed"].to_numpy(), part[model].to_numpy(), w))
                rows.append(row)
    columns = ["model", "scale", *([by] if by else []), *SCORE_COLUMNS]
    result = pd.DataFrame(rows, columns=columns)
    result["n"] = result["n"].astype(int)
    result.attrs["long_names"] = dict(_SCORE_ATTRS)
    return result
