"""The evaluation of an experiment: its headline, its report's sections and its metrics.

Pure: every input is a table or a dataset already in memory (out-of-fold site predictions,
each model's regional series, the inversion targets, the truth where it is known, the results
of the studies); reading the upscaled products and writing the report are the pipeline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from fluxbridge.evaluation.budget import budget_section, budget_sentence
from fluxbridge.evaluation.figures import global_series
from fluxbridge.evaluation.headline import headline_numbers, regional_annual_means
from fluxbridge.evaluation.headline_figure import headline_figure
from fluxbridge.evaluation.leave_region_out import ORACLE
from fluxbridge.evaluation.regional import (
    global_annual,
    global_spread_check,
    member_global_annual,
    regional_summary,
    targets_frames,
)
from fluxbridge.evaluation.report import Captioned, ReportSection
from fluxbridge.evaluation.sections import (
    estimator_section,
    inversion_section,
    leave_region_out_section,
    maps_section,
    regional_section,
    site_skill_section,
    sparsity_section,
)

SITE_ONLY, DUAL = "site_only", "dual"
"""Names of the site-only model (λ = 0) and the dual model (λ > 0) in the series."""

QUESTION = "Does adding atmospheric inversions to a tower-trained model improve regional NEE?"

LEAD = ("Site-only: a network trained on eddy-covariance towers alone; dual: the same network "
        "also fitted to the inversion ensemble's regional monthly totals; random forest and "
        "XGBoost: tower-only baselines.{published} {against}")

PUBLISHED_LEAD = (" Published setting: the network itself fitted to the inversions, without the "
                  "dual model's grid correction, from one fixed sample of grid cells (Upton et "
                  "al. 2024).")

GLOBAL_TEXT = (
    "Is a model's global annual NEE within the inversion ensemble's spread of the truth? The "
    "spread is that of the members' global totals (standard deviation across the corrected "
    "members, each summed over the regions), not a sum of regional spreads, since one "
    "inversion's errors are correlated between regions. z = (model − truth) / spread; "
    "within_spread: |model − truth| ≤ spread. Means over the years that the model, the truth "
    "and the members share; frac_years_within counts single years."
)


@dataclass
class RunSummary:
    """The evaluation of one run.

    Attributes
    ----------
    sections
        The report's sections in order.
    metrics
        The run's numbers for ``metrics.json`` (DataFrames, or None for what was not run).
    headline
        One row per model (:func:`headline_table`).
    headline_figure
        The figure of the report's first section (:func:`~fluxbridge.evaluation.
        headline_figure.headline_figure`), also written as a PNG.
    """

    sections: list[ReportSection]
    metrics: dict[str, Any]
    headline: pd.DataFrame
    headline_figure: Figure


def headline_table(site_scales: pd.DataFrame, vs_truth: pd.DataFrame | None,
                   annual: pd.DataFrame, names: list[str],
                   global_check: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model: site R² by time scale, regional error and global NEE against truth.

    Columns: ``r2_<scale>``; ``regional_monthly_rmse_tgc`` and
    ``regional_mean_abs_annual_bias_tgc`` (mean absolute annual bias over regions [Tg yr-1]);
    ``global_nee_pgc``, ``truth_global_nee_pgc`` and ``inversion_global_nee_pgc`` (means over
    years [Pg yr-1]); with ``global_check`` (:func:`~fluxbridge.evaluation.regional.
    global_spread_check`) also ``inversion_global_spread_pgc`` (spread of the members' global
    totals), ``global_z`` ((model − truth) / spread) and ``global_within_spread``.
    """
    r2 = site_scales.pivot(index="model", columns="scale", values="r2").add_prefix("r2_")
    out = r2
    if vs_truth is not None:
        out = r2.join(regional_summary(vs_truth), how="outer")
    glob = annual.groupby("model")["nee_pgc"].mean()
    out["global_nee_pgc"] = glob.reindex(out.index)
    out["truth_global_nee_pgc"] = float(glob.get("truth", np.nan))
    out["inversion_global_nee_pgc"] = float(glob.get("inversions", np.nan))
    if global_check is not None:
        g = global_check.set_index("model")
        out["inversion_global_spread_pgc"] = g["inversion_spread_pgc"].reindex(out.index)
        out["global_z"] = g["z"].reindex(out.index)
        out["global_within_spread"] = g["within_spread"].reindex(out.index)
    return out.reindex([n for n in names if n in out.index]).rename_axis("model").reset_index()


def global_section(annual: pd.DataFrame, members: pd.DataFrame,
                   global_check: pd.DataFrame | None = None) -> ReportSection:
    """Report section of global annual NEE, judged by the inversion members' spread.

    Parameters
    ----------
    annual
        ``model, year, nee_pgc`` [Pg yr-1] (:func:`~fluxbridge.evaluation.regional.
        global_annual`) of the models, the truth and the inversion mean.
    members
        Each inversion member's global annual totals [Pg yr-1].
    global_check
        :func:`~fluxbridge.evaluation.regional.global_spread_check` (the truth is known), or
        None.
    """
    by_year = annual.pivot_table(index="year", columns="model", values="nee_pgc", sort=False)
    details: list[Captioned] = []
    text = ""
    if global_check is not None:
        check = global_check.set_index("model").drop(columns="n_years", errors="ignore")
        details = [("Mean global NEE against the truth, judged by the spread of the members' "
                    "global totals [PgC/yr]", check.T.rename_axis("score").reset_index())]
        text = GLOBAL_TEXT
    return ReportSection("Global annual NEE", text=text, figures=[
        ("Global annual NEE [PgC/yr], > 0: source", global_series(annual, members=members))],
        tables=[("Global annual NEE [PgC/yr]", by_year.reset_index())], details=details)


def _study_sections(series: Mapping[str, pd.DataFrame], reference: pd.DataFrame,
                    spread: pd.DataFrame, truth: pd.DataFrame | None,
                    heldout: pd.DataFrame | None, heldout_oracle: pd.DataFrame | None,
                    estimator_error: pd.DataFrame | None,
                    sparsity: pd.DataFrame | None, sparsity_settings: Mapping[str, Any]
                    ) -> tuple[list[ReportSection], pd.DataFrame | None]:
    """Sections of what the run studied besides its models (each only when it was run), and
    the leave-region-out scores."""
    sections, lro_table = [], None
    if heldout is not None and len(heldout):
        others = {SITE_ONLY: series[SITE_ONLY], DUAL: series[DUAL]}
        if heldout_oracle is not None:
            others[ORACLE] = heldout_oracle
        section, lro_table = leave_region_out_section(
            heldout, others, reference=reference, spread=spread, truth=truth)
        sections.append(section)
    if estimator_error is not None:
        sections.append(estimator_section(estimator_error))
    if sparsity is not None and len(sparsity):
        sections.append(sparsity_section(sparsity, sparsity_settings))
    return sections, lro_table


def _answer(series: Mapping[str, pd.DataFrame], targets: xr.Dataset,
            truth: pd.DataFrame | None, headline: pd.DataFrame,
            reg_tables: Mapping[str, pd.DataFrame], annual: pd.DataFrame,
            members: pd.DataFrame, lro_table: pd.DataFrame | None, budget: pd.DataFrame
            ) -> tuple[ReportSection, pd.DataFrame, Figure]:
    """The report's first section: the headline figure, the headline numbers and, on real
    data, the budget against the inversions in words."""
    truth_known = truth is not None
    against = ("Scored against the truth of this twin world and the inversion ensemble."
               if truth_known else "Scored against the inversion ensemble.")
    numbers = headline_numbers(headline, reg_tables["vs_truth" if truth_known
                                                   else "vs_inversions"],
                               truth_known=truth_known, leave_region_out=lro_table)
    named = {**({"truth": truth} if truth_known else {}), **series}
    figure = headline_figure(regional_annual_means(named, targets), annual,
                             models=list(series), members=members,
                             leave_region_out=lro_table,
                             against="truth" if truth_known else "inversions")
    text = LEAD.format(against=against,
                       published=PUBLISHED_LEAD if "published" in series else "")
    if not truth_known and len(budget.attrs["members"]) > 1:
        text += "\n\n" + budget_sentence(budget)
    section = ReportSection(QUESTION, text=text, figures=[figure], tables=[numbers],
                            headline=True)
    return section, numbers, figure


def summarise_run(
    predictions: pd.DataFrame,
    series: Mapping[str, pd.DataFrame],
    targets: xr.Dataset,
    *,
    truth: pd.DataFrame | None = None,
    maps: Mapping[str, xr.DataArray] | None = None,
    heldout: pd.DataFrame | None = None,
    heldout_oracle: pd.DataFrame | None = None,
    estimator_error: pd.DataFrame | None = None,
    sparsity: pd.DataFrame | None = None,
    sparsity_settings: Mapping[str, Any] | None = None,
    predictors_period: str | None = None,
) -> RunSummary:
    """Score every model of a run; the report's sections and the run's metrics.

    Parameters
    ----------
    predictions
        Out-of-fold site predictions of every model on identical folds [g m-2 d-1]
        (``site, time, observed, weight, <model>…``; see :mod:`fluxbridge.evaluation.metrics`).
    series
        Model name → its upscaled regional totals ``region, time (YYYY-MM), nee_tgc``
        [Tg month-1], in the report's order; ``site_only`` and ``dual`` among them.
    targets
        Corrected inversion targets (member, region, time) [Tg month-1].
    truth
        True regional totals (twin world) [Tg month-1], or None on real data.
    maps
        NEE fields [gC m-2 d-1] of ``dual``, ``site_only`` and optionally ``truth``, (lat, lon)
        or (time, lat, lon); None leaves the maps out.
    heldout
        Leave-region-out series (:func:`fluxbridge.studies.leave_region_out.leave_region_out`),
        or None.
    heldout_oracle
        Each region's totals from the site-only model and the shared correction fitted to the
        other regions' truth (:func:`fluxbridge.readback.transfer_oracle`), or None.
    estimator_error
        :func:`~fluxbridge.evaluation.estimators.estimator_error_table` on the dual model's
        field, or None.
    sparsity, sparsity_settings
        The sparsity study's table (:func:`fluxbridge.studies.sparsity.sparsity_study`) and its
        ``epochs`` and ``reference``, or None.
    predictors_period
        Base period of climatological predictors (e.g. ``"1981-2010"``), for the text; None
        for predictors of real years.

    Returns
    -------
    RunSummary
        Sections, metrics and the headline table.
    """
    names = list(series)
    reference, spread = targets_frames(targets)
    site_sec, site_tables = site_skill_section(predictions, names)
    reg_sec, reg_tables = regional_section(series, reference=reference, spread=spread,
                                           truth=truth)
    vs_truth = reg_tables.get("vs_truth")
    annual = global_annual({**series, **({"truth": truth} if truth is not None else {}),
                            "inversions": reference})
    members = member_global_annual(targets)
    global_check, global_years = (global_spread_check(annual, members) if truth is not None
                                  else (None, None))
    studies, lro_table = _study_sections(series, reference, spread, truth, heldout,
                                         heldout_oracle,
                                         estimator_error, sparsity, sparsity_settings or {})
    headline = headline_table(site_tables["by_scale"], vs_truth, annual, names, global_check)
    budget_sec, budget = budget_section(series, targets, predictors_period)
    answer, numbers, figure = _answer(series, targets, truth, headline, reg_tables, annual,
                                      members, lro_table, budget)
    sections = [
        answer, *([budget_sec] if truth is None else []), reg_sec,
        global_section(annual, members, global_check),
        *studies[:1], site_sec,
        *([] if maps is None else [maps_section(maps[DUAL], maps[SITE_ONLY], maps.get("truth"))]),
        inversion_section(targets), *studies[1:],
    ]
    metrics = {
        "headline": headline,
        "headline_numbers": numbers,
        "site": site_tables,
        "regional_vs_truth": vs_truth,
        "regional_vs_inversions": reg_tables["vs_inversions"],
        "regional_tables": reg_tables,
        "global_annual": annual,
        "budget_pgc_yr": budget.reset_index(),
        "global_vs_truth": global_check,
        "global_vs_truth_by_year": global_years,
        "inversion_members_global_annual": members,
        "leave_region_out": lro_table,
        "estimator_error": estimator_error,
        "sparsity": None if sparsity is None else {
            "table": sparsity if len(sparsity) else None, "meta": dict(sparsity_settings or {})},
    }
    return RunSummary(sections, metrics, headline, figure)
