"""Figures of the report; each function returns a matplotlib Figure.

Figures are built on :class:`matplotlib.figure.Figure` directly, not through pyplot: no display
or global figure registry is involved (nothing to close), and they render with Agg when saved.
NEE is positive to the atmosphere (a source) throughout; uptake is negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from fluxbridge.errors import InputError
from fluxbridge.evaluation.headline import label
from fluxbridge.evaluation.metrics import scale_tables, site_metrics

STYLE = {
    "truth": {"color": "black", "lw": 2.0},
    "site_only": {"color": "tab:blue"},
    "dual": {"color": "tab:red"},
    "rf": {"color": "tab:green", "ls": "--"},
    "xgboost": {"color": "tab:purple", "ls": "--"},
    "published": {"color": "tab:brown", "ls": ":"},
    "nn": {"color": "tab:orange"},
    "inversions": {"color": "0.45", "ls": "-.", "lw": 1.5},
    "dual_without_region": {"color": "tab:orange"},
}
_MONTHS = np.arange(1, 13)


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.2, 2.6)):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _monthly(df: pd.DataFrame, value: str = "nee_tgc") -> pd.DataFrame:
    out = df[["region", "time", value]].copy()
    out["region"] = out["region"].astype(str)
    out["moy"] = pd.to_datetime(out["time"].astype(str)).dt.month
    return out


def regional_cycles(
    series: Mapping[str, pd.DataFrame],
    *,
    reference: pd.DataFrame | None = None,
    spread: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
    ncols: int = 4,
) -> Figure:
    """Mean seasonal cycle of each region: truth, inversion mean ± spread and the models.

    Parameters
    ----------
    series
        Model name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    reference, spread
        Inversion ensemble mean ``nee_tgc`` and spread ``nee_spread`` [Tg month-1], same layout.
    truth
        True regional totals (twin world), same layout as a series.
    """
    frames = {name: _monthly(df) for name, df in series.items()}
    if truth is not None:
        frames = {"truth": _monthly(truth), **frames}
    ref = _monthly(reference) if reference is not None else None
    sp = _monthly(spread, "nee_spread") if spread is not None else None
    regions = sorted({r for f in frames.values() for r in f["region"].unique()}
                     | (set(ref["region"]) if ref is not None else set()))
    if not regions:
        raise InputError("no regional series to plot", variable="series",
                         expected="at least one non-empty table")
    fig, axes = _grid(len(regions), ncols)
    for ax, region in zip(axes, regions):
        if ref is not None:
            r = ref[ref["region"] == region].groupby("moy")["nee_tgc"].mean()
            ax.plot(r.index, r.values, color="0.4", lw=1.5, label="inversion mean")
            if sp is not None:
                s = sp[sp["region"] == region].groupby("moy")["nee_spread"].mean()
                s = s.reindex(r.index)
                ax.fill_between(r.index, r - s, r + s, color="0.6", alpha=0.35,
                                label="inversion spread")
        for name, f in frames.items():
            m = f[f["region"] == region].groupby("moy")["nee_tgc"].mean()
            ax.plot(m.index, m.values, label=label(name), **STYLE.get(name, {}))
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_title(region, fontsize=9)
        ax.set_xticks([1, 4, 7, 10])
    axes[0].set_ylabel("NEE [TgC/month]")
    axes[0].legend(fontsize=7)
    fig.suptitle("Mean seasonal cycle of regional NEE (+ = source)")
    return fig


def site_scatter(predictions: pd.DataFrame, models: Sequence[str],
                 scales: Sequence[str] = ("all", "across_site", "seasonal", "anomaly")) -> Figure:
    """Predicted against observed NEE at each time scale (rows: models, columns: scales).

    Parameters
    ----------
    predictions
        Site predictions table (see :mod:`fluxbridge.evaluation.metrics`) [g m-2 d-1].
    models
        Prediction columns to plot.
    scales
        Time scales (columns of the figure); those without a value are left out.
    """
    tables = scale_tables(predictions, models)
    # a climatological year has no anomalies
    scales = [s for s in scales if tables[s]["observed"].notna().any()]
    skill = site_metrics(predictions, models, scales=scales).set_index(["model", "scale"])
    fig = Figure(figsize=(3.0 * len(scales), 3.0 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), len(scales), squeeze=False)
    for i, model in enumerate(models):
        for j, scale in enumerate(scales):
            ax = axes[i, j]
            t = tables[scale]
            ax.scatter(t["observed"], t[model], s=4 if len(t) > 500 else 10, alpha=0.4,
                       color=STYLE.get(model, {}).get("color", "tab:blue"), linewidths=0)
            lim = [np.nanmin([t["observed"].min(), t[model].min()]),
                   np.nanmax([t["observed"].max(), t[model].max()])]
            ax.plot(lim, lim, color="0.3", lw=0.8)
            s = skill.loc[(model, scale)]
            ax.set_title(f"{label(model)} · {scale}\nR²={s.r2:.2f} RMSE={s.rmse:.2f} n={int(s.n)}",
                         fontsize=8)
            if i == len(models) - 1:
                ax.set_xlabel("observed [g m-2 d-1]")
            if j == 0:
                ax.set_ylabel("predicted [g m-2 d-1]")
    return fig


def global_series(annual: pd.DataFrame, *, members: pd.DataFrame | None = None) -> Figure:
    """Global annual NEE of each model (and of the truth and the inversion mean, when
    ``annual`` holds them).

    Parameters
    ----------
    annual
        ``model, year, nee_pgc`` [Pg yr-1] (from :func:`fluxbridge.evaluation.regional.
        global_annual`).
    members
        Optional global totals of the inversion members in the same layout
        (:func:`fluxbridge.evaluation.regional.member_global_annual`): their mean ± one standard
        deviation is drawn as a grey band.
    """
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.subplots()
    if members is not None and len(members):
        by_year = members.pivot_table(index="year", columns="model", values="nee_pgc")
        mean, sd = by_year.mean(axis=1), by_year.std(axis=1, ddof=1)
        ax.fill_between(by_year.index, mean - sd, mean + sd, color="0.85",
                        label="inversions ±1 sd")
    for model, part in annual.groupby("model", sort=False):
        ax.plot(part["year"], part["nee_pgc"], marker="o", label=label(model),
                **STYLE.get(model, {}))
    ax.axhline(0, color="0.8", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="year", ylabel="NEE [PgC/yr]", title="Global land NEE (+ = source)")
    ax.legend(fontsize=8, ncols=2)
    return fig


def estimator_error(table: pd.DataFrame, value: str | None = None) -> Figure:
    """Error of the sparse regional-total estimators against the number of sampled cells K.

    Parameters
    ----------
    table
        Columns ``estimator``, ``K`` and an error column (``rmse`` or ``std_sigma``, in units of
        the ensemble spread σ or Tg month-1 as the caller states in ``table.attrs["units"]``).
    value
        Error column to plot (default: the first of ``rmse``, ``std_sigma``, ``error`` present).
    """
    if value is None:
        value = next((c for c in ("rmse", "std_sigma", "error") if c in table.columns), None)
    if value is None or not {"estimator", "K", value} <= set(table.columns):
        raise InputError("estimator table lacks columns", variable="estimator, K, rmse",
                         expected="columns estimator, K and an error column")
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for name, part in table.groupby("estimator", sort=True):
        part = part.sort_values("K")
        ax.plot(part["K"], part[value], marker="o", label=str(name))
    k = np.sort(table["K"].unique())
    if k.size > 1 and (table[value] > 0).all():
        ax.set_xscale("log")
        ax.set_yscale("log")
        first = table[table["K"] == k[0]][value].max()
        ax.plot(k, first * np.sqrt(k[0] / k), color="0.6", ls=":", label="∝ K^-1/2")
    units = table.attrs.get("units", "")
    ax.set(xlabel="cells sampled per region K", ylabel=f"{value}" + (f" [{units}]" if units
                                                                      else ""),
           title="Regional-total estimator error")
    ax.legend(fontsize=8)
    return fig


def against_k(table: pd.DataFrame, panels: Sequence[tuple[str, str, str]], *,
              reference_styles: Mapping[str, Mapping[str, object]] | None = None) -> Figure:
    """Columns of a benchmark table against K, one panel each; rows without K are lines.

    Parameters
    ----------
    table
        Columns ``estimator``, ``K`` (None/NaN for rows such as ``exact`` or ``site_only``,
        drawn as horizontal lines) and the panels' columns.
    panels
        ``(column, y label, title)`` of each panel.
    reference_styles
        Line style of each row without K, by estimator name.
    """
    cols = {c for c, _, _ in panels}
    if not {"estimator", "K"} | cols <= set(table.columns):
        raise InputError("benchmark table lacks columns", variable="estimator, K, "
                         + ", ".join(sorted(cols)),
                         expected="columns estimator, K and the plotted columns")
    styles = {"exact": {"color": "black", "ls": "--"},
              "site_only": {"color": "0.45", "ls": ":"}, **(reference_styles or {})}
    k = pd.to_numeric(table["K"], errors="coerce")
    swept, flat = table[k.notna()].assign(K=k[k.notna()]), table[k.isna()]
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (col, ylabel, title) in zip(axes, panels):
        for name, part in swept.groupby("estimator", sort=True):
            part = part.sort_values("K")
            ax.plot(part["K"], part[col], marker="o", label=str(name))
        for _, row in flat.iterrows():
            if pd.notna(row[col]):
                ax.axhline(row[col], label=str(row["estimator"]),
                           **styles.get(str(row["estimator"]), {"color": "0.5"}))
        if len(swept):
            ax.set_xscale("log", base=2)
        values = pd.to_numeric(table[col], errors="coerce").dropna()
        if len(values) and (values > 0).all():
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            if values.max() / values.min() < 10:  # label minor ticks only within a decade
                ax.yaxis.set_minor_formatter(plain)
            else:
                ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="cell-days sampled per region-month K", ylabel=ylabel)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    return fig


def sparsity(table: pd.DataFrame, value: str = "regional_rmse_tgc") -> Figure:
    """The sparsity study: regional error and training time of the dual model against K.

    Parameters
    ----------
    table
        Columns ``estimator``, ``K`` (None/NaN for the ``exact`` and ``site_only`` rows, drawn
        as horizontal lines), ``value`` [Tg month-1] and ``train_seconds`` [s], as from
        :func:`fluxbridge.studies.sparsity.sparsity_study`.
    value
        Error column of the left panel.
    """
    return against_k(table, [
        (value, "regional monthly RMSE vs truth [Tg month-1]",
         "Does a sparse sample constrain as well as the full sum?"),
        ("train_seconds", "training time [s]", "What does it cost?")])


def leave_region_out(table: pd.DataFrame, value: str = "monthly_rmse") -> Figure:
    """Leave-region-out: each withheld region's error, next to the models that saw it.

    Parameters
    ----------
    table
        Long table ``against, model, region, value`` (from
        :func:`fluxbridge.evaluation.leave_region_out.leave_region_out_table`); one panel per
        ``against`` (inversions, truth), one bar per model and region.
    value
        Column to draw [Tg month-1].
    """
    if not {"against", "model", "region", value} <= set(table.columns):
        raise InputError("leave-region-out table lacks columns", variable=value,
                         expected="columns against, model, region and the value")
    refs = list(dict.fromkeys(table["against"]))
    models = list(dict.fromkeys(table["model"]))
    regions = [*sorted(r for r in table["region"].unique() if r != "all"), "all"]
    fig = Figure(figsize=(max(7.0, 0.9 * len(regions) + 2), 3.3 * len(refs)),
                 layout="constrained")
    axes = fig.subplots(len(refs), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(models))
    x = np.arange(len(regions))
    for ax, ref in zip(axes, refs):
        part = table[table["against"] == ref].set_index(["model", "region"])[value]
        for i, model in enumerate(models):
            y = [part.get((model, r), np.nan) for r in regions]
            style = {k: v for k, v in STYLE.get(model, {}).items() if k == "color"}
            ax.bar(x + (i - (len(models) - 1) / 2) * width, y, width, label=label(model),
                   **style)
        ax.set_xticks(x, regions, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel=f"{value.replace('_', ' ')} [TgC/month]", title=f"against the {ref}")
    axes[0].legend(fontsize=8)
    fig.suptitle("Error of regional NEE with each region's inversion withheld "
                 "(NEE > 0: source)", fontsize=10)
    return fig


def inversion_bands(targets: xr.Dataset, *, ncols: int = 3) -> Figure:
    """Inversion ensemble of each region: members, mean and ± spread (the top-down reference).

    Parameters
    ----------
    targets
        Canonical targets dataset: ``nee`` (member, region, time), ``nee_mean`` and
        ``nee_spread`` (region, time) [Tg month-1]; coordinate ``region_name``.
    """
    for name in ("nee_mean", "nee_spread"):
        if name not in targets:
            raise InputError("targets dataset lacks it", variable=name,
                             expected="a canonical targets dataset (fluxbridge.schema)")
    names = (targets["region_name"].values if "region_name" in targets.coords
             else targets["region"].values)
    fig, axes = _grid(targets.sizes["region"], ncols, size=(4.5, 2.8))
    time = pd.DatetimeIndex(targets["time"].values)
    members = targets["nee"] if "nee" in targets else None
    for i, ax in enumerate(axes):
        mean = targets["nee_mean"].isel(region=i).values
        spread = targets["nee_spread"].isel(region=i).values
        ax.fill_between(time, mean - spread, mean + spread, color="tab:blue", alpha=0.25,
                        label="± spread")
        if members is not None:
            for j in range(members.sizes["member"]):
                ax.plot(time, members.isel(region=i, member=j).values, color="0.5", lw=0.5,
                        alpha=0.7, label="members" if j == 0 else None)
        ax.plot(time, mean, color="tab:blue", lw=1.5, label="ensemble mean")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_title(str(names[i]), fontsize=9)
        locator = AutoDateLocator(minticks=3, maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    units = targets["nee_mean"].attrs.get("units", "Tg month-1")
    axes[0].set_ylabel(f"NEE [{units}]")
    axes[0].legend(fontsize=7)
    n = targets.sizes.get("member", 0)
    fig.suptitle(f"Inversion ensemble by region ({n} members; + = source)")
    return fig
