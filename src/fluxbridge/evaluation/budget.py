"""The land carbon budget by region and globally: every model against every inversion member.

Pure: each model's regional series and the inversion targets in, tables and a section out. A
region's annual NEE is the mean of its monthly totals times 12 [Tg yr-1]; the global value sums
the regions (the latitude bands cover all land). The ensemble's spread is the standard
deviation across members of their own annual totals (ddof = 1): one inversion's errors are
correlated between months and regions, so the spread of the annual total is not a sum of
monthly spreads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.evaluation.headline import label
from fluxbridge.evaluation.report import ReportSection

GLOBAL = "Global"
MEAN, SPREAD = "inversion mean", "inversion spread"
_PG_PER_TG = G_PER_TG / G_PER_PG


def _regions(targets: xr.Dataset) -> list[str]:
    coord = "region_name" if "region_name" in targets.coords else "region"
    return [str(n) for n in targets[coord].values]


def _with_global(table: pd.DataFrame) -> pd.DataFrame:
    table[GLOBAL] = table.sum(axis=1, min_count=1)
    return table


def budget_table(series: Mapping[str, pd.DataFrame], targets: xr.Dataset) -> pd.DataFrame:
    """Annual NEE of each model and each inversion member, by region and globally [Pg yr-1].

    Parameters
    ----------
    series
        Model name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    targets
        Canonical targets with ``nee`` (member, region, time) [Tg month-1] and
        ``region_name``.

    Returns
    -------
    pd.DataFrame
        Rows: the models, then each member, then ``inversion mean`` and ``inversion spread``
        (standard deviation across the members' annual totals); columns: each region and
        ``Global`` [Pg yr-1], negative = uptake. ``attrs["models"]`` and ``attrs["members"]``
        list the rows of each kind.
    """
    regions = _regions(targets)
    rows: dict[str, pd.Series] = {}
    for name, df in series.items():
        monthly = df.groupby(df["region"].astype(str))["nee_tgc"].mean()
        rows[name] = monthly.reindex(regions) * 12.0 * _PG_PER_TG
    members = [str(m) for m in targets["member"].values]
    per_member = (targets["nee"].mean("time") * 12.0 * _PG_PER_TG).transpose("member", "region")
    for i, member in enumerate(members):
        rows[member] = pd.Series(per_member.values[i], index=regions)
    table = _with_global(pd.DataFrame(rows).T[regions].astype(np.float64))
    member_rows = table.loc[members]
    table.loc[MEAN] = member_rows.mean(axis=0)
    table.loc[SPREAD] = member_rows.std(axis=0, ddof=1)
    table.index.name = "estimate"
    table.attrs = {"models": list(series), "members": members}
    return table


def budget_z(table: pd.DataFrame) -> pd.DataFrame:
    """Each model's distance from the inversion mean in units of the spread [1], and whether
    it lies within ± one spread."""
    models = table.attrs["models"]
    z = (table.loc[models] - table.loc[MEAN]) / table.loc[SPREAD]
    return z.round(2)


def _value(x: float) -> str:
    return f"{x:+.2f}".replace("+-", "-")


def budget_sentence(table: pd.DataFrame) -> str:
    """The global and regional budget of each model against the inversions, in words."""
    models, regions = table.attrs["models"], [c for c in table.columns if c != GLOBAL]
    mean, spread = table.loc[MEAN], table.loc[SPREAD]
    n = len(table.attrs["members"])
    parts = [f"Global land NEE: inversions {_value(mean[GLOBAL])} ± {spread[GLOBAL]:.2f} "
             f"PgC/yr (mean ± spread of {n} members, corrected to NEE); "
             + "; ".join(f"{label(m)} {_value(table.loc[m, GLOBAL])}" for m in models) + "."]
    for region in regions:
        parts.append(f"{region}: inversions {_value(mean[region])} ± {spread[region]:.2f}; "
                     + "; ".join(f"{label(m)} {_value(table.loc[m, region])}" for m in models)
                     + ".")
    return " ".join(parts)


def period_text(targets: xr.Dataset, predictors_period: str | None = None) -> str:
    """What the times stand for: a climatological year and the periods it averages, or ''."""
    if str(targets.attrs.get("climatology", "false")) != "true":
        return ""
    met = f"predictors {predictors_period} long-term means; " if predictors_period else ""
    return ("A climatological year: each month is a mean seasonal cycle (" + met
            + f"inversions averaged over {targets.attrs.get('climatology_period', '?')}; "
            "each tower's years averaged by calendar month), not a particular year.")


def budget_section(series: Mapping[str, pd.DataFrame], targets: xr.Dataset,
                   predictors_period: str | None = None
                   ) -> tuple[ReportSection, pd.DataFrame]:
    """Report section: annual NEE by region and globally, every model against every member.

    Returns
    -------
    section, table
        The section and :func:`budget_table`.
    """
    table = budget_table(series, targets)
    corrections = ", ".join(
        f"{c['term']} ({c['global_pgc_yr']:+.2f} PgC/yr)" if "global_pgc_yr" in c else "none"
        for c in json.loads(targets.attrs.get("corrections", "[]")))
    text = (budget_sentence(table) + " " + period_text(targets, predictors_period)
            + f" Inversions corrected to NEE by: {corrections or 'none'}; NEE = NBE − term.")
    shown = table.rename(index=lambda n: label(n) if n in table.attrs["models"] else n)
    section = ReportSection(
        "Land carbon budget against each inversion", text=text, tables=[
            ("Annual NEE by region and globally [PgC/yr], < 0: uptake; rows: each model, "
             "each inversion member, the members' mean and spread", shown.reset_index()),
            ("Distance of each model from the inversion mean, in inversion spreads [1] "
             "(|z| ≤ 1: within the spread)",
             budget_z(table).rename(index=label).rename_axis("model").reset_index())])
    return section, table
