"""The headline figure: regional and global NEE of every model against the inversions (and the
truth), with the leave-region-out result beside them. Also written as a PNG for slides."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fluxbridge.evaluation.figures import STYLE
from fluxbridge.evaluation.headline import label
from fluxbridge.evaluation.leave_region_out import HELDOUT
from fluxbridge.evaluation.regional import OVERALL

SITE_ONLY, DUAL = "site_only", "dual"
SIGN = "NEE > 0: source to the atmosphere; < 0: uptake by the land"


def _style(name: str) -> dict[str, object]:
    return dict(STYLE.get(name, {}))


def _regional_panel(ax: Axes, means: pd.DataFrame, models: list[str]) -> None:
    """Mean annual NEE by region: inversions ± members' spread, truth, models as dots."""
    means = means.sort_values("inversions")
    x = np.arange(len(means))
    ax.bar(x, means["inversions"], 0.8, color="0.88", label="inversions (mean)")
    ax.errorbar(x, means["inversions"], yerr=means["inversion_spread"], fmt="none",
                ecolor="0.45", capsize=3, lw=1, label="inversions ± spread")
    if "truth" in means:
        ax.scatter(x, means["truth"], marker="_", s=260, color="black", lw=2.5, zorder=4,
                   label="truth")
    shift = np.linspace(-0.28, 0.28, max(1, len(models)))
    for dx, name in zip(shift, models):
        ax.scatter(x + dx, means[name], s=22, zorder=5, label=label(name),
                   color=_style(name).get("color"))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xticks(x, means.index, rotation=28, ha="right", fontsize=8)
    ax.set_ylabel("NEE [TgC/yr]")
    ax.set_title("Regional NEE, mean over the years", fontsize=10)


def _global_panel(ax: Axes, annual: pd.DataFrame, members: pd.DataFrame | None,
                  models: list[str]) -> None:
    """Global annual NEE: the members' mean ± spread, the truth and each model."""
    if members is not None and len(members):
        by_year = members.pivot_table(index="year", columns="model", values="nee_pgc")
        mean, sd = by_year.mean(axis=1), by_year.std(axis=1, ddof=1)
        if len(by_year) > 1:
            ax.fill_between(by_year.index, mean - sd, mean + sd, color="0.85",
                            label="inversions ± spread")
        else:  # one year (a climatological year): a bar of ± one spread
            ax.errorbar(by_year.index, mean, yerr=sd, fmt="_", ms=14, color="0.45",
                        capsize=4, label="inversions ± spread")
    for name in ["truth", *models]:
        part = annual[annual["model"] == name]
        if len(part):
            ax.plot(part["year"], part["nee_pgc"], marker="o", ms=3, label=label(name),
                    **_style(name))
    years = np.unique(annual["year"])
    if years.size == 1:
        ax.set_xticks(years)
        ax.set_xlim(years[0] - 1, years[0] + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="year", ylabel="NEE [PgC/yr]")
    ax.set_title("Global land NEE", fontsize=10)


def _heldout_panel(ax: Axes, lro: pd.DataFrame, against: str) -> None:
    """Monthly error of each withheld region: site-only, dual, dual trained without it."""
    t = lro[lro["against"] == against].set_index(["model", "region"])["monthly_rmse"]
    regions = [*sorted(r for r in lro["region"].unique() if r != OVERALL), OVERALL]
    models = [m for m in (SITE_ONLY, DUAL, HELDOUT) if m in t.index.get_level_values(0)]
    width = 0.8 / max(1, len(models))
    y = np.arange(len(regions))
    for i, name in enumerate(models):
        values = [t.get((name, r), np.nan) for r in regions]
        ax.barh(y + (i - (len(models) - 1) / 2) * width, values, width, label=label(name),
                color=_style(name).get("color"))
    ax.set_yticks(y, [r if r != OVERALL else "all withheld" for r in regions], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"monthly error vs {against} [TgC/month]")
    ax.set_title("Region's own inversion withheld", fontsize=10)


def headline_figure(means: pd.DataFrame, annual: pd.DataFrame, *, models: list[str],
                    members: pd.DataFrame | None = None,
                    leave_region_out: pd.DataFrame | None = None,
                    against: str = "truth") -> Figure:
    """Regional and global NEE of the models against the inversions and the truth, and the
    leave-region-out result beside them.

    Parameters
    ----------
    means
        :func:`~fluxbridge.evaluation.headline.regional_annual_means` [Tg yr-1].
    annual
        ``model, year, nee_pgc`` [Pg yr-1] of the models and, where known, ``truth``.
    models
        The models to draw, in order.
    members
        The inversion members' global annual totals (same layout), or None.
    leave_region_out
        :func:`~fluxbridge.evaluation.leave_region_out.leave_region_out_table`, or None.
    against
        Reference of the leave-region-out panel: ``"truth"`` or ``"inversions"``.
    """
    widths = [2.5, 1.1] + ([1.3] if leave_region_out is not None else [])
    fig = Figure(figsize=(13.0, 4.6), layout="constrained")
    axes = fig.subplots(1, len(widths), width_ratios=widths)
    _regional_panel(axes[0], means, models)
    _global_panel(axes[1], annual, members, models)
    if leave_region_out is not None:
        _heldout_panel(axes[2], leave_region_out, against)
    handles: dict[str, object] = {}
    for ax in axes:
        ax.grid(alpha=0.3, lw=0.5)
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center",
               ncols=min(8, len(handles)), fontsize=8, frameon=False)
    reference = "the truth and " if "truth" in means else ""
    fig.suptitle(f"Models against {reference}the inversion ensemble  ({SIGN})", fontsize=11)
    return fig
