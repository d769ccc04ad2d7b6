"""The report's answer on one screen: a few numbers, each with one sentence saying what it means.

Pure: built from the run's score tables (:mod:`fluxbridge.evaluation.summary`). Everything is
against the truth in a twin world, against the inversion ensemble on real data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.evaluation.leave_region_out import HELDOUT
from fluxbridge.evaluation.regional import OVERALL, regional_summary

SITE_ONLY, DUAL = "site_only", "dual"

LABELS = {SITE_ONLY: "site-only", DUAL: "dual", "rf": "random forest", "xgboost": "XGBoost",
          "published": "published setting",
          HELDOUT: "dual, region withheld", "truth": "truth", "inversions": "inversions"}
"""How the report names each model and reference."""


def label(name: str) -> str:
    """The report's name of a model or reference."""
    return LABELS.get(name, name)


def _cut(before: float, after: float) -> float:
    """Reduction from ``before`` to ``after`` [%]."""
    return 100.0 * (before - after) / before if before else float("nan")


def _row(quantity: str, values: Mapping[str, float], meaning: str) -> dict[str, object]:
    return {"quantity": quantity, **values, "meaning": meaning}


def _regional_rows(scores: pd.DataFrame, models: list[str], against: str
                   ) -> list[dict[str, object]]:
    """Regional monthly error and mean absolute annual bias of each model."""
    summary = regional_summary(scores).reindex(models)
    rmse, bias = (summary["regional_monthly_rmse_tgc"],
                  summary["regional_mean_abs_annual_bias_tgc"])
    return [
        _row(f"regional monthly error vs {against} [TgC/month]", rmse.to_dict(),
             f"Typical error of one region's monthly NEE: {_cut(rmse[SITE_ONLY], rmse[DUAL]):.0f}"
             " % smaller with the inversions (dual) than with towers alone (site-only)."),
        _row(f"regional annual bias vs {against} [TgC/yr]", bias.to_dict(),
             "How far a region's annual carbon budget is off, on average over the regions: "
             f"{_cut(bias[SITE_ONLY], bias[DUAL]):.0f} % smaller with the inversions."),
    ]


def _global_row(h: pd.DataFrame, truth_known: bool) -> dict[str, object]:
    """Global NEE of each model, with the truth and the inversions in its sentence."""
    inv = h["inversion_global_nee_pgc"].iloc[0]
    if truth_known and "inversion_global_spread_pgc" in h:
        du = h.loc[DUAL]
        where = "within" if bool(du["global_within_spread"]) else "outside"
        meaning = (f"The land's net flux (negative: a sink). Truth "
                   f"{du['truth_global_nee_pgc']:.2f}, inversions {inv:.2f} ± "
                   f"{du['inversion_global_spread_pgc']:.2f}: the dual model is {where} the "
                   "inversions' spread of the truth.")
    else:
        meaning = f"The land's net flux (negative: a sink); the inversions give {inv:.2f}."
    return _row("global NEE [PgC/yr]", h["global_nee_pgc"].to_dict(), meaning)


def _site_row(h: pd.DataFrame) -> dict[str, object]:
    so, du = h.loc[SITE_ONLY, "r2_all"], h.loc[DUAL, "r2_all"]
    verb = "keeps" if du >= so - 0.02 else "loses some of"
    return _row("site R², towers left out of training", h["r2_all"].to_dict(),
                f"NEE at towers the model never saw (1 is perfect): the constraint {verb} "
                f"the towers' skill ({so:.2f} → {du:.2f}).")


def _heldout_row(lro: pd.DataFrame, against: str) -> dict[str, object] | None:
    """Error on the withheld regions: site-only, dual, and dual trained without them."""
    t = lro[(lro["region"] == OVERALL) & (lro["against"] == against)]
    t = t.set_index("model")["monthly_rmse"]
    if not {SITE_ONLY, DUAL, HELDOUT} <= set(t.index):
        return None
    so, du, held = t[SITE_ONLY], t[DUAL], t[HELDOUT]
    n = lro.loc[lro["region"] != OVERALL, "region"].nunique()
    return _row(f"error where a region's inversion was withheld [TgC/month] ({n} region"
                f"{'s' if n != 1 else ''})",
                {SITE_ONLY: so, DUAL: du, HELDOUT: held},
                "Each region scored by a dual model trained without that region's inversion "
                f"(the test that needs no truth): {_carried_over(so, du, held)}")


def _carried_over(site_only: float, dual: float, withheld: float) -> str:
    """In words: how much of the constraint's gain a region keeps when its inversion is
    withheld (errors [Tg month-1] of the site-only model, the dual model, the withheld run)."""
    gain = site_only - dual
    if gain <= 0:
        return "the constraint does not reduce the error of these regions."
    kept = 100.0 * (site_only - withheld) / gain
    if kept < 0:
        return ("it is worse there than the site-only model: the gain stays in the regions "
                "whose inversion the model saw.")
    if kept < 50:
        return f"it keeps only {kept:.0f} % of the constraint's gain; most of the gain is local."
    return f"it keeps {kept:.0f} % of the constraint's gain there."


def headline_numbers(headline: pd.DataFrame, regional: pd.DataFrame, *, truth_known: bool,
                     leave_region_out: pd.DataFrame | None = None) -> pd.DataFrame:
    """The headline table: one row per number, models as columns, one sentence each.

    Parameters
    ----------
    headline
        From :func:`~fluxbridge.evaluation.summary.headline_table`, with rows ``site_only``
        and ``dual``.
    regional
        :func:`~fluxbridge.evaluation.regional.regional_metrics` against the truth (twin
        world) or the inversions [Tg month-1, Tg yr-1].
    truth_known
        Whether ``regional`` is against the truth.
    leave_region_out
        :func:`~fluxbridge.evaluation.leave_region_out.leave_region_out_table`, or None.

    Returns
    -------
    pd.DataFrame
        ``quantity``, one column per model (and ``dual_without_region`` with the
        leave-region-out), ``meaning``; NaN where a model has no such number.
    """
    h = headline.set_index("model")
    models = list(h.index)
    against = "truth" if truth_known else "inversions"
    rows = [*_regional_rows(regional, models, against), _global_row(h, truth_known),
            _site_row(h)]
    if leave_region_out is not None:
        held = _heldout_row(leave_region_out, against)
        rows += [] if held is None else [held]
    out = pd.DataFrame(rows)
    value_cols = [c for c in [*models, HELDOUT] if c in out.columns]
    return out[["quantity", *value_cols, "meaning"]]


def regional_annual_means(series: Mapping[str, pd.DataFrame], targets: xr.Dataset
                          ) -> pd.DataFrame:
    """Each region's mean annual NEE of every series and of the inversions, with the members'
    spread.

    Parameters
    ----------
    series
        Name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1] (models, and the truth).
    targets
        Canonical targets: ``nee_mean`` (region, time) and, where there are members, ``nee``
        (member, region, time) [Tg month-1], coordinate ``region_name``.

    Returns
    -------
    pd.DataFrame
        Indexed by region name; one column per series and ``inversions`` (mean of the monthly
        totals × 12 [Tg yr-1]), and ``inversion_spread``: the standard deviation across members
        of that mean [Tg yr-1] (without members, the mean monthly spread × 12).
    """
    names = (targets["region_name"].values if "region_name" in targets.coords
             else targets["region"].values)
    names = [str(n) for n in names]
    out = pd.DataFrame(index=pd.Index(names, name="region"))
    for name, df in series.items():
        out[name] = df.groupby(df["region"].astype(str))["nee_tgc"].mean() * 12.0
    out["inversions"] = targets["nee_mean"].mean("time").values * 12.0
    if "nee" in targets and "member" in targets["nee"].dims:
        per_member = targets["nee"].mean("time") * 12.0
        out["inversion_spread"] = per_member.std("member", ddof=1).values
    else:
        out["inversion_spread"] = targets["nee_spread"].mean("time").values * 12.0
    return out.astype(np.float64)
