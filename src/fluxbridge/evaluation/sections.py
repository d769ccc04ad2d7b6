"""Sections of the report, each built from tables and datasets already in memory.

Every function returns a :class:`~fluxbridge.evaluation.report.ReportSection` (and, where the
run's metrics keep them, its tables); none reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import xarray as xr

from fluxbridge.evaluation.figures import (
    estimator_error,
    global_series,
    inversion_bands,
    leave_region_out,
    nee_map,
    regional_cycles,
    site_scatter,
    sparsity,
)
from fluxbridge.evaluation.leave_region_out import (
    HELDOUT,
    leave_region_out_table,
    leave_region_out_wide,
)
from fluxbridge.evaluation.metrics import site_metrics
from fluxbridge.evaluation.regional import global_annual, regional_metrics
from fluxbridge.evaluation.report import Captioned, ReportSection

FLUXCOM_NEE_SKILL = pd.DataFrame({
    "scale": ["all", "across_site", "seasonal", "anomaly"],
    "published_r2": ["< 0.5", "> 0.7", "> 0.7", "low (near 0)"],
})
"""Published FLUXCOM site-level NEE skill (Tramontana et al. 2016, Biogeosciences 13:4291),
qualitative."""


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
    wide = by_scale.pivot(index="scale", columns="model", values="r2").reset_index()
    wide = wide.merge(FLUXCOM_NEE_SKILL, on="scale", how="left")
    tables: dict[str, pd.DataFrame] = {"by_scale": by_scale}
    shown: list[pd.DataFrame | Captioned] = [
        ("R² (modelling efficiency) by time scale, next to the published FLUXCOM NEE skill", wide),
        ("All scores by model and time scale (RMSE and bias in g m-2 d-1)", by_scale),
    ]
    if by_igbp and "igbp" in predictions.columns:
        by_class = site_metrics(predictions, models, by="igbp", scales=("all", "seasonal"))
        tables["by_igbp"] = by_class
        shown.append(("Scores by IGBP vegetation class", by_class))
    n_sites = predictions["site"].nunique()
    text = (f"Out-of-fold predictions of {n_sites} sites, grouped by site (no site is in the "
            "training and test data of one fold). Time scales as FLUXCOM: all records; "
            "across-site (site means); mean seasonal cycle; anomalies from it; interannual "
            "(annual anomalies). R² is 1 - SSE/SST.")
    figure = ("Predicted against observed NEE by time scale", site_scatter(predictions, models))
    return ReportSection(title, text=text, tables=shown, figures=[figure]), tables


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
    tables = {"vs_inversions": regional_metrics(series, reference, spread)}
    shown: list[pd.DataFrame | Captioned] = [
        ("Against the corrected inversion ensemble (Tg month-1, Tg yr-1)",
         tables["vs_inversions"])]
    if truth is not None:
        tables["vs_truth"] = regional_metrics(series, truth)
        shown.append(("Against the true regional totals", tables["vs_truth"]))
    annual = global_annual(series)
    tables["global_annual"] = annual
    named = {"inversion mean": reference, **({"truth": truth} if truth is not None else {})}
    ref_annual = global_annual(named)
    figs = [("Mean seasonal cycles by region",
             regional_cycles(series, reference=reference, spread=spread, truth=truth)),
            ("Annual totals summed over the regions", global_series(annual, reference=ref_annual))]
    text = ("Regional monthly totals of each model against the inversion ensemble corrected to "
            "NEE. frac_in_spread is the fraction of region-months within one ensemble spread.")
    return ReportSection(title, text=text, tables=shown, figures=figs), tables


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
    corrections = targets.attrs.get("corrections", "none recorded")
    text = (f"{members} inversion members read as regional monthly totals; the ensemble mean is "
            "the top-down reference and the spread (standard deviation across members) its "
            f"uncertainty. Corrections applied: {corrections}.")
    return ReportSection(title, text=text, tables=[("Time means by region", summary)],
                         figures=[("Inversion members, mean and ± spread",
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
    wide = leave_region_out_wide(table)
    bias = leave_region_out_wide(table, "annual_bias")
    text = (f"Each region's constraint withheld in turn: the dual model is trained again "
            f"({heldout['heldout'].nunique()} runs, the final dual model's settings, seeds "
            f"and sites) without that region's inversion targets, and the region is scored "
            f"from the run that did not see it ({HELDOUT}), next to the dual model that saw "
            "every region and the site-only model. Against the inversions this is how the "
            "constraint can be judged on real data, where no truth exists; in the twin "
            "world the truth tells whether that judgement is right. A withheld region can "
            "only gain from the other regions' constraint through the shared network (the "
            "per-region grid offsets of the withheld region are never fitted).")
    return ReportSection(
        "Leave-region-out: judging the constraint without truth", text=text,
        tables=[("Monthly RMSE of each withheld region [TgC/month]", wide),
                ("Mean annual bias of each withheld region [TgC/yr]", bias),
                ("All scores", table)],
        figures=[("Monthly RMSE of each region when its constraint is withheld",
                  leave_region_out(table))]), table


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
        figures=[("Estimator error against K", estimator_error(table, value="rmse_sigma"))],
        tables=[("Estimator error", table)])


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


def _time_mean(field: xr.DataArray) -> xr.DataArray:
    return field.mean("time") if "time" in field.dims else field


def maps_section(dual: xr.DataArray, site_only: xr.DataArray,
                 truth: xr.DataArray | None = None) -> ReportSection:
    """Report section of maps: the dual model's mean NEE and what the constraint changed.

    Parameters
    ----------
    dual, site_only
        NEE of the dual and the site-only model [gC m-2 d-1], (lat, lon) or (time, lat, lon)
        (averaged over time).
    truth
        True NEE (twin world) on the same grid [gC m-2 d-1], or ``None``.
    """
    dual, site_only = _time_mean(dual), _time_mean(site_only)
    maps: list[Captioned] = [
        ("Mean NEE of the dual model [gC m-2 d-1]", nee_map(dual, "dual")),
        ("Dual minus site-only [gC m-2 d-1]",
         nee_map(dual - site_only, "dual − site-only", difference=True)),
    ]
    if truth is not None:
        maps.append(("Truth minus site-only [gC m-2 d-1]: what the constraint should add",
                     nee_map(_time_mean(truth) - site_only, "truth − site-only",
                             difference=True)))
    return ReportSection("Maps", figures=maps)
