"""Sections of the report, each built from tables and datasets already in memory.

Every function returns a :class:`~fluxbridge.evaluation.report.ReportSection` (and, where the
run's metrics keep them, its tables); none reads a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.evaluation.figures import (
    estimator_error,
    inversion_bands,
    leave_region_out,
    regional_cycles,
    site_scatter,
    sparsity,
)
from fluxbridge.evaluation.leave_region_out import (
    leave_region_out_table,
)
from fluxbridge.evaluation.maps import nee_maps
from fluxbridge.evaluation.metrics import site_metrics
from fluxbridge.evaluation.regional import OVERALL, global_annual, regional_metrics
from fluxbridge.evaluation.report import Captioned, ReportSection

FLUXCOM_NEE_SKILL = pd.DataFrame({
    "scale": ["all", "across_site", "seasonal", "anomaly"],
    "published_r2": ["< 0.5", "> 0.7", "> 0.7", "low (near 0)"],
})
"""Published FLUXCOM site-level NEE skill (Tramontana et al. 2016, Biogeosciences 13:4291),
qualitative."""


def _by(table: pd.DataFrame, index: str, value: str, models: Sequence[str]) -> pd.DataFrame:
    """``value`` of a long table with ``index`` as rows and the models as columns."""
    wide = table.pivot_table(index=index, columns="model", values=value, sort=False)
    return wide.reindex(columns=[m for m in models if m in wide.columns]).reset_index()


def site_skill_section(predictions: pd.DataFrame, models: Sequence[str], *,
                       title: str = "Site-level skill (cross-validation)",
                       by_igbp: bool = True) -> tuple[ReportSection, dict[str, pd.DataFrame]]:
    """Report section of site-level skill by time scale, with the FLUXCOM reference.

    Parameters
    ----------
    predictions
        Out-of-fold site predictions table [g m-2 d-1] (see :mod:`.metrics`).
    models
        Prediction columns to score.
    title
        Section heading.
    by_igbp
        Add the table by vegetation class.

    Returns
    -------
    section, tables
        The section and its metric tables (``"by_scale"``, optionally ``"by_igbp"``) for
        ``metrics.json``.
    """
    by_scale = site_metrics(predictions, models)
    tables: dict[str, pd.DataFrame] = {"by_scale": by_scale}
    r2 = _by(by_scale, "scale", "r2", models).merge(FLUXCOM_NEE_SKILL, on="scale", how="left")
    details: list[Captioned] = [
        ("RMSE by time scale [gC m-2 d-1]", _by(by_scale, "scale", "rmse", models)),
        ("Bias by time scale [gC m-2 d-1] (+: too much release)",
         _by(by_scale, "scale", "bias", models))]
    if by_igbp and "igbp" in predictions.columns:
        by_class = site_metrics(predictions, models, by="igbp", scales=("all", "seasonal"))
        tables["by_igbp"] = by_class
        every = by_class[by_class["scale"] == "all"]
        details.append(("R² of NEE by IGBP vegetation class", _by(every, "igbp", "r2",
                                                                   models)))
    n_sites = predictions["site"].nunique()
    text = (f"Out-of-fold predictions at {n_sites} towers, grouped by site (no tower is in the "
            "training and the test data of one fold). Time scales as FLUXCOM: all records; "
            "across-site (site means); mean seasonal cycle; anomalies from it; interannual. "
            "R² is 1 - SSE/SST.")
    figure = ("Predicted against observed NEE by time scale [gC m-2 d-1], > 0: source",
              site_scatter(predictions, models))
    shown: list[Captioned] = [("R² by time scale, next to the published FLUXCOM NEE skill", r2)]
    cost = predictions.attrs.get("seconds_per_fold") or {}
    if cost:
        tables["cost"] = pd.DataFrame([{"cost": "seconds per fold",
                                        **{m: round(cost[m], 1) for m in models if m in cost}}])
        shown.append(("Cost: seconds to train each model on one fold's towers and predict "
                      "the rest, on this machine", tables["cost"]))
    section = ReportSection(title, text=text, figures=[figure], details=details, tables=shown)
    return section, tables


def _overall(tables: Mapping[str, pd.DataFrame], models: Sequence[str]) -> pd.DataFrame:
    """The scores over all regions, one row per score and reference, models as columns."""
    rows = []
    for against, scores in tables.items():
        overall = scores[scores["region"] == OVERALL].set_index("model")
        for column, name in _SCORES.items():
            if column == "frac_in_spread" and against == "truth":
                continue
            rows.append({"score": f"{name} vs {against}",
                         **overall[column].reindex(models).to_dict()})
    return pd.DataFrame(rows)


_SCORES = {"monthly_rmse": "monthly error [TgC/month]",
           "annual_bias": "annual bias of the regions' sum [TgC/yr]",
           "msc_corr": "seasonal-cycle correlation [1]",
           "frac_in_spread": "months within the spread [1]"}


def regional_section(series: Mapping[str, pd.DataFrame], *, reference: pd.DataFrame,
                     spread: pd.DataFrame | None = None, truth: pd.DataFrame | None = None,
                     title: str = "Regional NEE") -> tuple[ReportSection, dict[str, pd.DataFrame]]:
    """Report section comparing regional series with the inversions (and the truth if known).

    Parameters
    ----------
    series
        Model name → ``region, time, nee_tgc`` [Tg month-1].
    reference, spread
        Corrected inversion ensemble mean and spread [Tg month-1].
    truth
        True regional totals (twin world) [Tg month-1], or ``None``.

    Returns
    -------
    section, tables
        The section and its tables (``"vs_inversions"``, ``"vs_truth"``, ``"global_annual"``).
    """
    models = list(series)
    tables = {"vs_inversions": regional_metrics(series, reference, spread)}
    if truth is not None:
        tables["vs_truth"] = regional_metrics(series, truth)
    named = {"truth" if k == "vs_truth" else "inversions": v for k, v in tables.items()}
    details: list[Captioned] = []
    for against, scores in sorted(named.items(), key=lambda kv: kv[0] != "truth"):
        per_region = scores[scores["region"] != OVERALL]
        details += [(f"Monthly error of each region vs {against} [TgC/month]",
                     _by(per_region, "region", "monthly_rmse", models)),
                    (f"Annual bias of each region vs {against} [TgC/yr]",
                     _by(per_region, "region", "annual_bias", models))]
    tables["global_annual"] = global_annual(series)
    text = ("Monthly totals of each region, against the inversion ensemble corrected to NEE"
            + (" and the truth of the twin world." if truth is not None else "."))
    figure = ("Mean seasonal cycle of each region [TgC/month], NEE > 0: source",
              regional_cycles(series, reference=reference, spread=spread, truth=truth))
    section = ReportSection(title, text=text, figures=[figure], details=details, tables=[
        ("Scores over all regions", _overall(named, models))])
    return section, tables


def correction_terms(record: str) -> str:
    """The correction terms of the targets' ``corrections`` record, in words: each term and
    its global total [PgC/yr]."""
    try:
        terms = json.loads(record)
    except (TypeError, ValueError):
        return record or "none recorded"
    if not isinstance(terms, list) or not terms:
        return "none"
    return ", ".join(f"{t.get('term', '?')} ({float(t.get('global_pgc_yr', np.nan)):+.2f} "
                     "PgC/yr)" for t in terms if isinstance(t, dict))


def inversion_section(targets: Any, *, title: str = "Top-down reference: inversion ensemble"
                      ) -> ReportSection:
    """Report section showing the inversion ensemble by region (members, mean, spread).

    Parameters
    ----------
    targets
        Canonical targets dataset (:mod:`fluxbridge.schema`), e.g. latitude bands from the
        real GCB or zonal inversion files.
    """
    members = int(targets.sizes.get("member", 0))
    names = (targets["region_name"].values if "region_name" in targets.coords
             else targets["region"].values)
    mean = targets["nee_mean"]
    spread = targets["nee_spread"]
    summary = pd.DataFrame({
        "region": [str(n) for n in names],
        "mean_tgc_per_month": mean.mean("time").values,
        "mean_spread_tgc_per_month": spread.mean("time").values,
    })
    corrections = correction_terms(targets.attrs.get("corrections", ""))
    text = (f"{members} inversion members read as regional monthly totals; the ensemble mean is "
            "the top-down reference and the spread (standard deviation across members) its "
            f"uncertainty. Corrections applied: {corrections}.")
    return ReportSection(title, text=text,
                         details=[("Time means by region [TgC/month]", summary)],
                         figures=[("Inversion members, mean and ± spread [TgC/month]",
                                   inversion_bands(targets))])


def leave_region_out_section(
    heldout: pd.DataFrame,
    series: Mapping[str, pd.DataFrame],
    *,
    reference: pd.DataFrame,
    spread: pd.DataFrame,
    truth: pd.DataFrame | None = None,
) -> tuple[ReportSection, pd.DataFrame]:
    """Report section of leave-region-out: each region scored from the run that withheld it.

    Parameters
    ----------
    heldout
        ``heldout, region, time, nee_tgc`` [Tg month-1] from
        :func:`fluxbridge.studies.leave_region_out.leave_region_out`.
    series
        The models to compare with (the dual model that saw every region, the site-only
        model): name → ``region, time, nee_tgc`` [Tg month-1].
    reference, spread, truth
        As in :func:`regional_section`.

    Returns
    -------
    section, table
        The section and the scores (:func:`~fluxbridge.evaluation.leave_region_out.
        leave_region_out_table`).
    """
    table = leave_region_out_table(heldout, series, reference=reference, spread=spread,
                                   truth=truth)
    text = (f"Each region's inversion withheld in turn: the dual model is trained again "
            f"({heldout['heldout'].nunique()} runs, the final dual model's settings, seeds "
            f"and towers) without that region's inversion, and the region is scored "
            "from the run that did not see it, next to the dual model that saw "
            "every region and the site-only model. Against the inversions this is how the "
            "constraint can be judged on real data, where no truth exists; in the twin "
            "world the truth tells whether that judgement is right. A withheld region gains "
            "from the other regions' constraint through the shared network and, with the "
            "hierarchical correction, through the mean of the other regions' grid "
            "corrections. In a twin world, oracle_without_region is the site-only model with "
            "that mean fitted to the other regions' truth instead of their inversions: what "
            "the shared correction could carry at best.")
    return ReportSection(
        "Leave-region-out: judging the constraint without truth", text=text,
        tables=[("Monthly error of each withheld region [TgC/month]",
                 _heldout_wide(table, "monthly_rmse"))],
        details=[("Annual bias of each withheld region [TgC/yr]",
                  _heldout_wide(table, "annual_bias"))],
        figures=[("Monthly error of each region when its inversion is withheld [TgC/month]",
                  leave_region_out(table))]), table


def _heldout_wide(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """``value`` by withheld region (rows, ``all`` last), columns (reference, model)."""
    wide = table.pivot_table(index="region", columns=["against", "model"], values=value,
                             sort=False)
    order = [*sorted(r for r in wide.index if r != OVERALL), OVERALL]
    wide = wide.reindex([r for r in order if r in wide.index])
    wide.columns = pd.MultiIndex.from_tuples([(f"vs {a}", m) for a, m in wide.columns])
    return wide.rename_axis(None).reset_index(names=[("", "region")])


def estimator_section(table: pd.DataFrame) -> ReportSection:
    """Report section of the sparse estimators' error against K on the dual model's field.

    Parameters
    ----------
    table
        From :func:`fluxbridge.evaluation.estimators.estimator_error_table`, errors in units of
        the inversion spread σ.
    """
    return ReportSection(
        "Sparse operator: estimator error against K",
        text="Error of each estimator of the regional monthly totals of the dual model's "
             "field, in units of the inversion spread σ, over repeated draws; the "
             "control variate uses the site-only field as its cache.",
        figures=[("Estimator error against K [σ]",
                  estimator_error(_with_units(table, "σ"), value="rmse_sigma"))],
        details=[("RMS error of each estimator [σ], cell-days K per region-month as rows",
                  table.pivot_table(index="K", columns="estimator", values="rmse_sigma",
                                    sort=False).reset_index())])


def _with_units(table: pd.DataFrame, units: str) -> pd.DataFrame:
    out = table.copy()
    out.attrs["units"] = units
    return out


def sparsity_section(table: pd.DataFrame, settings: Mapping[str, Any]) -> ReportSection:
    """Report section of the sparsity study of this run.

    Parameters
    ----------
    table
        From :func:`fluxbridge.studies.sparsity.sparsity_study`.
    settings
        ``epochs`` (per training run) and ``reference`` (what the runs are scored against:
        ``"truth"`` or ``"inversions"``).
    """
    origin = (f"Run by this experiment (validation.sparsity_study: true) with its own settings, "
              f"{settings.get('epochs')} epochs, scored against the "
              f"{settings.get('reference')}.")
    text = ("The paper's hypothesis: a sparse sample of K cell-days per region-month constrains "
            "the site-level model as well as the full regional sum. The dual model is trained "
            "with the exact operator and with the fixed, resampled and control-variate "
            "estimators at each K, and the site-only model as the baseline; each is scored by "
            "its regional monthly RMSE and mean absolute annual bias against the truth, and "
            "its training time.\n\n" + origin)
    shown = table.copy()
    return ReportSection("Sparsity: does a sparse sample constrain the model?", text=text,
                         tables=[("Dual model by estimator and K", shown)],
                         figures=[("Regional RMSE against the truth and training time against "
                                   "K", sparsity(shown))])


def maps_section(dual: xr.DataArray, site_only: xr.DataArray,
                 truth: xr.DataArray | None = None) -> ReportSection:
    """Report section of maps: mean NEE of the models (and the truth) on one colour scale,
    and what the constraint changed beside what it should have.

    Parameters
    ----------
    dual, site_only
        NEE of the dual and the site-only model [gC m-2 d-1], (lat, lon) or (time, lat, lon)
        (averaged over time).
    truth
        True NEE (twin world) on the same grid [gC m-2 d-1], or ``None``.
    """
    mean = {**({} if truth is None else {"truth": truth}), "site-only": site_only,
            "dual": dual}
    change = {"dual − site-only": _mean(dual) - _mean(site_only)}
    if truth is not None:
        change["truth − site-only: what the constraint should add"] = (
            _mean(truth) - _mean(site_only))
    return ReportSection("Maps", figures=[
        ("Mean NEE over the period [gC m-2 d-1], one colour scale", nee_maps(mean)),
        ("What the constraint changed [gC m-2 d-1], one colour scale",
         nee_maps(change, difference=True, ncols=2))])


def _mean(field: xr.DataArray) -> xr.DataArray:
    return field.mean("time") if "time" in field.dims else field
