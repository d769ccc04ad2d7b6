"""The self-contained HTML report and ``metrics.json``.

The report embeds every figure as a base64 PNG and carries its own CSS: it opens offline, with no
external file, script or font.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fluxbridge.outputs.files import atomic_path, code_version, write_json

Captioned = tuple[str, Any]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption, .caption { font-size: .9em; color: #555; }
table.data { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
table.data th, table.data td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
table.data th { background: #f0f0f0; }
.meta { font-size: .8em; color: #777; margin-top: 3em; }
"""


@dataclass
class ReportSection:
    """One section of the report.

    Attributes
    ----------
    title
        Section heading.
    text
        Plain text (escaped; blank lines separate paragraphs).
    html
        Trusted HTML inserted as is (built by the package, never from user files).
    figures
        Figures, or ``(caption, Figure)`` pairs.
    tables
        DataFrames, or ``(caption, DataFrame)`` pairs.
    """

    title: str
    text: str = ""
    html: str = ""
    figures: Sequence[Figure | Captioned] = field(default_factory=list)
    tables: Sequence[pd.DataFrame | Captioned] = field(default_factory=list)


def figure_png_base64(fig: Figure, dpi: int = 110) -> str:
    """PNG of a figure, base64-encoded for a ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _captioned(item: Any) -> tuple[str, Any]:
    return item if isinstance(item, tuple) else ("", item)


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="data", na_rep="–",
                      float_format=lambda v: f"{v:.3g}")


def _section_html(section: ReportSection, dpi: int) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    for para in (p.strip() for p in section.text.split("\n\n")):
        if para:
            parts.append(f"<p>{html.escape(para)}</p>")
    if section.html:
        parts.append(section.html)
    for caption, table in map(_captioned, section.tables):
        if caption:
            parts.append(f'<p class="caption">{html.escape(caption)}</p>')
        parts.append(_table_html(table))
    for caption, fig in map(_captioned, section.figures):
        data = figure_png_base64(fig, dpi)
        alt = html.escape(caption or section.title)
        parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                     + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "")
                     + "</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(title: str, sections: Sequence[ReportSection], *, dpi: int = 110) -> str:
    """The whole report as one HTML document (figures inline, CSS inline)."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(_section_html(s, dpi) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n"
        f'<p class="meta">fluxbridge {html.escape(code_version())}, {now}. NEE is positive '
        "to the atmosphere (a source); uptake is negative.</p>\n</body></html>\n"
    )


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from metrics: DataFrames become lists of records, NaN becomes null."""
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    sections: Sequence[ReportSection],
    metrics: Mapping[str, Any],
    dpi: int = 110,
) -> Path:
    """Write ``report.html`` (self-contained) and ``metrics.json`` into ``out_dir``, atomically.

    Parameters
    ----------
    out_dir
        Directory to write into (created if needed).
    title
        Report title.
    sections
        The report's sections in order.
    metrics
        Numbers of the run; DataFrames are stored as lists of records, NaN as null.
    dpi
        Resolution of the embedded figures [dots per inch].

    Returns
    -------
    Path
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(to_jsonable(metrics), out / "metrics.json")
    path = out / "report.html"
    document = render_html(title, sections, dpi=dpi)
    with atomic_path(path) as tmp:
        tmp.write_text(document, encoding="utf-8")
    return path


FLUXCOM_NEE_SKILL = pd.DataFrame({
    "scale": ["all", "across_site", "seasonal", "anomaly"],
    "published_r2": ["< 0.5", "> 0.7", "> 0.7", "low (near 0)"],
})
"""Published FLUXCOM site-level NEE skill (Tramontana et al. 2016, Biogeosciences 13:4291),
qualitative, as summarised in the project's issue #6."""


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
    from fluxbridge.evaluation.figures import site_scatter
    from fluxbridge.evaluation.metrics import site_metrics

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
    from fluxbridge.evaluation.figures import global_series, regional_cycles
    from fluxbridge.evaluation.regional import global_annual, regional_metrics

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
    from fluxbridge.evaluation.figures import inversion_bands

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
