"""Regional skill against the corrected inversion ensemble (or, in the twin world, the truth).

Regional series are long tables ``region, time (YYYY-MM), nee_tgc`` [Tg month-1] of carbon,
positive to the atmosphere, as written by :mod:`fluxbridge.upscaling` (``regional.csv``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.operators import totals_frame

OVERALL = "all"
"""Name of the row that summarises every region."""

REGIONAL_COLUMNS: tuple[str, ...] = (
    "monthly_rmse", "annual_bias", "msc_corr", "msc_amplitude_ratio", "iav_corr",
    "frac_in_spread", "n_months",
)
LONG_NAMES = {
    "monthly_rmse": "root mean square error of monthly totals [Tg month-1]",
    "annual_bias": "mean over complete years of model minus reference annual total [Tg yr-1]",
    "msc_corr": "correlation of the mean seasonal cycles [1]",
    "msc_amplitude_ratio": "peak-to-trough amplitude of the model's mean seasonal cycle over "
                           "the reference's [1]",
    "iav_corr": "correlation of annual-total anomalies (needs 3 complete years) [1]",
    "frac_in_spread": "fraction of region-months within the reference spread [1]",
    "n_months": "number of region-months compared [1]",
}


def _series(df: pd.DataFrame, value: str, what: str) -> pd.DataFrame:
    missing = [c for c in ("region", "time", value) if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks columns {missing}", variable=", ".join(missing),
                         expected=f"columns region, time (YYYY-MM), {value}")
    out = df[["region", "time", value]].copy()
    out["region"] = out["region"].astype(str)
    try:
        out["time"] = pd.to_datetime(out["time"].astype(str)).dt.to_period("M").dt.to_timestamp()
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: cannot parse times ({exc})", variable="time",
                         expected="YYYY-MM") from exc
    out[value] = out[value].astype(float)
    if out.duplicated(["region", "time"]).any():
        raise InputError(f"{what} has duplicate (region, time) rows", variable="time",
                         expected="one row per region and month")
    return out


def targets_frames(targets: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and spread tables from a canonical targets dataset.

    Parameters
    ----------
    targets
        Canonical targets dataset (:mod:`fluxbridge.schema`) with ``nee_mean`` and
        ``nee_spread`` (region, time) [Tg month-1] and coordinate ``region_name``.

    Returns
    -------
    reference, spread
        ``region, time (YYYY-MM), nee_tgc`` and ``region, time, nee_spread`` [Tg month-1].
    """
    for name in ("nee_mean", "nee_spread"):
        if name not in targets:
            raise InputError("targets dataset lacks it", variable=name,
                             expected="a canonical targets dataset (fluxbridge.schema)")
    reference = totals_frame(targets["nee_mean"], "nee_tgc")
    spread = totals_frame(targets["nee_spread"], "nee_spread")
    return reference, spread


def _annual(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """Annual totals [Tg yr-1] per region over years with twelve months."""
    g = df.assign(year=df["time"].dt.year).groupby(["region", "year"])[value]
    out = g.sum()[g.count() == 12]
    return out.rename(value).reset_index()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def _region_scores(both: pd.DataFrame) -> dict[str, float]:
    """Scores of one region from the merged table (time, model, reference[, spread])."""
    err = both["model"] - both["reference"]
    out = {"monthly_rmse": float(np.sqrt(np.mean(err**2)))}
    annual = both.assign(year=both["time"].dt.year).groupby("year")
    complete = annual.size() == 12
    sums = annual[["model", "reference"]].sum()[complete]
    out["annual_bias"] = float((sums["model"] - sums["reference"]).mean()) if len(sums) else np.nan
    anomalies = sums - sums.mean()
    out["iav_corr"] = _corr(anomalies["model"].to_numpy(), anomalies["reference"].to_numpy())
    msc = both.groupby(both["time"].dt.month)[["model", "reference"]].mean()
    out["msc_corr"] = _corr(msc["model"].to_numpy(), msc["reference"].to_numpy())
    ref_amp = float(np.ptp(msc["reference"])) if len(msc) else np.nan
    out["msc_amplitude_ratio"] = (float(np.ptp(msc["model"])) / ref_amp
                                  if len(msc) and ref_amp > 0 else np.nan)
    if "spread" in both and both["spread"].notna().any():
        inside = (err.abs() <= both["spread"])[both["spread"].notna()]
        out["frac_in_spread"] = float(inside.mean())
    else:
        out["frac_in_spread"] = np.nan
    out["n_months"] = len(both)
    return out


def regional_metrics(
    series: Mapping[str, pd.DataFrame],
    reference: pd.DataFrame,
    spread: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Regional skill of each model against a reference (inversion mean or truth).

    Parameters
    ----------
    series
        Model name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    reference
        ``region, time, nee_tgc`` [Tg month-1], e.g. from :func:`targets_frames`.
    spread
        ``region, time, nee_spread`` [Tg month-1] (ensemble spread), or ``None``.

    Returns
    -------
    pd.DataFrame
        One row per (model, region) on the months both have, plus a row per model with region
        ``"all"``: RMSE and in-spread fraction pooled over region-months, ``annual_bias`` of the
        sum of the regions (over months where every region has values), and the mean over
        regions of the correlations and amplitude ratio. Columns :data:`REGIONAL_COLUMNS`;
        ``df.attrs["long_names"]`` gives their meaning and units.
    """
    ref = _series(reference, "nee_tgc", "reference").rename(columns={"nee_tgc": "reference"})
    if spread is not None:
        sp = _series(spread, "nee_spread", "spread").rename(columns={"nee_spread": "spread"})
        ref = ref.merge(sp, on=["region", "time"], how="left")
    rows = []
    for model, df in series.items():
        mod = _series(df, "nee_tgc", f"regional series of {model!r}")
        both = mod.rename(columns={"nee_tgc": "model"}).merge(ref, on=["region", "time"])
        both = both.dropna(subset=["model", "reference"])
        if both.empty:
            raise InputError(f"regional series of {model!r} shares no (region, month) with the "
                             "reference", variable="region/time",
                             expected="the same region names and overlapping months")
        per_region = []
        for region, part in both.groupby("region", sort=True):
            per_region.append({"model": model, "region": region, **_region_scores(part)})
        rows.extend(per_region)
        pr = pd.DataFrame(per_region)
        n_regions = both["region"].nunique()
        full = both[both.groupby("time")["region"].transform("size") == n_regions]
        total = full.groupby("time", as_index=False)[["model", "reference"]].sum()
        summary = _region_scores(total.assign(spread=np.nan)) if len(total) else {}
        err = both["model"] - both["reference"]
        in_spread = (err.abs() <= both["spread"])[both["spread"].notna()] \
            if "spread" in both else pd.Series(dtype=bool)
        rows.append({
            "model": model, "region": OVERALL,
            "monthly_rmse": float(np.sqrt(np.mean(err**2))),
            "annual_bias": summary.get("annual_bias", np.nan),
            "msc_corr": float(pr["msc_corr"].mean()),
            "msc_amplitude_ratio": float(pr["msc_amplitude_ratio"].mean()),
            "iav_corr": float(pr["iav_corr"].mean()),
            "frac_in_spread": float(in_spread.mean()) if len(in_spread) else np.nan,
            "n_months": len(both),
        })
    out = pd.DataFrame(rows, columns=["model", "region", *REGIONAL_COLUMNS])
    out.attrs["long_names"] = dict(LONG_NAMES)
    return out


def global_annual(series: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Annual totals summed over the regions of each series.

    Parameters
    ----------
    series
        Name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1]. The sum is global when the
        regions cover the land.

    Returns
    -------
    pd.DataFrame
        ``model, year, nee_pgc`` [Pg yr-1] of carbon, positive to the atmosphere, for years in
        which every region of that series has twelve months.
    """
    rows = []
    for model, df in series.items():
        s = _series(df, "nee_tgc", f"regional series of {model!r}").dropna(subset=["nee_tgc"])
        annual = _annual(s, "nee_tgc")
        n_regions = s["region"].nunique()
        per_year = annual.groupby("year").agg(n=("region", "size"), total=("nee_tgc", "sum"))
        per_year = per_year[per_year["n"] == n_regions]
        rows.extend({"model": model, "year": int(y), "nee_pgc": t / 1000.0}
                    for y, t in per_year["total"].items())
    out = pd.DataFrame(rows, columns=["model", "year", "nee_pgc"])
    out.attrs["long_names"] = {"nee_pgc": "annual total net ecosystem exchange of carbon, "
                                          "positive to the atmosphere [Pg yr-1]"}
    return out


def regional_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Two numbers per model from :func:`regional_metrics`: its error pooled over region-months
    and its mean regional annual bias.

    Parameters
    ----------
    scores
        Table of :func:`regional_metrics` (one reference).

    Returns
    -------
    pd.DataFrame
        Indexed by ``model``: ``regional_monthly_rmse_tgc`` (RMSE over every region-month
        [Tg month-1]) and ``regional_mean_abs_annual_bias_tgc`` (mean over regions of the
        absolute annual bias [Tg yr-1]).
    """
    per_region = scores[scores["region"] != OVERALL]
    return pd.DataFrame({
        "regional_monthly_rmse_tgc": scores[scores["region"] == OVERALL].set_index("model")[
            "monthly_rmse"],
        "regional_mean_abs_annual_bias_tgc": per_region.assign(
            a=per_region["annual_bias"].abs()).groupby("model")["a"].mean(),
    })


def member_global_annual(targets: xr.Dataset, *, variable: str = "nee") -> pd.DataFrame:
    """Global annual totals of each inversion member (summed over the regions).

    Parameters
    ----------
    targets
        Canonical targets dataset with ``variable`` (member, region, time) [Tg month-1]: the
        members corrected to NEE.

    Returns
    -------
    pd.DataFrame
        ``model`` (the member's name), ``year``, ``nee_pgc`` [Pg yr-1], for years in which the
        member has every region's twelve months; empty when there are no members.
    """
    if variable not in targets or "member" not in targets[variable].dims:
        return pd.DataFrame(columns=["model", "year", "nee_pgc"])
    da = targets[variable]
    series = {str(m): totals_frame(da.sel(member=m), "nee_tgc") for m in da["member"].values}
    return global_annual(series)


GLOBAL_COLUMNS: tuple[str, ...] = (
    "nee_pgc", "truth_pgc", "inversion_mean_pgc", "inversion_spread_pgc", "error_pgc", "z",
    "within_spread",
)


def _global_rows(model: pd.Series, truth: pd.Series, members: pd.DataFrame) -> dict[str, Any]:
    """Scores of one model's global NEE over the years common to model, truth and members.

    ``model``, ``truth``: year → Pg yr-1; ``members``: year × member table [Pg yr-1].
    """
    years = sorted(set(model.index) & set(truth.index) & set(members.index))
    m = float(model.loc[years].mean()) if years else np.nan
    t = float(truth.loc[years].mean()) if years else np.nan
    per_member = members.loc[years].mean(axis=0) if years else pd.Series(dtype=float)
    mean = float(per_member.mean()) if len(per_member) else np.nan
    spread = float(per_member.std(ddof=1)) if len(per_member) > 1 else np.nan
    err = m - t
    z = err / spread if spread > 0 else np.nan
    within = bool(abs(err) <= spread) if np.isfinite(err) and np.isfinite(spread) else None
    return {"n_years": len(years), "nee_pgc": m, "truth_pgc": t, "inversion_mean_pgc": mean,
            "inversion_spread_pgc": spread, "error_pgc": err, "z": z, "within_spread": within}


def global_spread_check(annual: pd.DataFrame, members: pd.DataFrame, *,
                        truth: str = "truth") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Is each model's global annual NEE within the inversion ensemble's spread of the truth?

    The spread is that of the members' global totals (standard deviation across members,
    ddof = 1, as the regional ``nee_spread``), not a sum of the regional spreads: errors of
    one inversion are correlated between regions.

    Parameters
    ----------
    annual
        ``model, year, nee_pgc`` [Pg yr-1] (:func:`global_annual`), with the truth's rows
        under the name ``truth``.
    members
        ``model, year, nee_pgc`` of the inversion members (:func:`member_global_annual`).
    truth
        Name of the truth's rows in ``annual``.

    Returns
    -------
    summary, per_year
        ``summary``: one row per model (not the truth) over the years common to the model, the
        truth and the members: ``n_years`` and :data:`GLOBAL_COLUMNS`, where ``nee_pgc``,
        ``truth_pgc`` and ``inversion_mean_pgc`` are means over those years,
        ``inversion_spread_pgc`` is the spread of the members' means over them, ``error_pgc``
        is model − truth, ``z`` is error / spread and ``within_spread`` is
        ``|error| <= spread``; ``frac_years_within`` is the share of single years within that
        year's spread. ``per_year``: the same columns for each (model, year).
    """
    if truth not in set(annual["model"]):
        raise InputError("annual totals lack the truth's rows", variable="model",
                         expected=f"rows with model == {truth!r}")
    by_year = annual.pivot_table(index="year", columns="model", values="nee_pgc")
    mem = (members.pivot_table(index="year", columns="model", values="nee_pgc")
           if len(members) else pd.DataFrame())
    truth_s = by_year[truth].dropna()
    summary, per_year = [], []
    for name in dict.fromkeys(annual["model"]):
        if name == truth:
            continue
        model_s = by_year[name].dropna()
        yearly = [{"model": name, "year": int(y),
                   **_global_rows(model_s.loc[[y]], truth_s, mem)}
                  for y in model_s.index]
        per_year.extend(r for r in yearly if r["n_years"])
        row = {"model": name, **_global_rows(model_s, truth_s, mem)}
        flags = [r["within_spread"] for r in yearly if r["within_spread"] is not None]
        row["frac_years_within"] = float(np.mean(flags)) if flags else np.nan
        summary.append(row)
    cols = ["model", "n_years", *GLOBAL_COLUMNS]
    out = pd.DataFrame(summary, columns=[*cols, "frac_years_within"])
    years = pd.DataFrame(per_year, columns=["model", "year", *cols[1:]]).drop(columns="n_years")
    long_names = {
        "nee_pgc": "global annual NEE of the model [Pg yr-1]",
        "truth_pgc": "true global annual NEE [Pg yr-1]",
        "inversion_mean_pgc": "inversion ensemble mean of the global total [Pg yr-1]",
        "inversion_spread_pgc": "spread (sd across members) of the members' global totals "
                                "[Pg yr-1]",
        "error_pgc": "model minus truth [Pg yr-1]",
        "z": "(model - truth) / inversion spread [1]",
        "within_spread": "|model - truth| <= inversion spread",
        "frac_years_within": "share of single years with |model - truth| <= that year's spread",
    }
    out.attrs["long_names"] = long_names
    years.attrs["long_names"] = long_names
    return out, years
