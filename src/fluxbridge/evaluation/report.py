"""The self-contained HTML report: sections of text, tables and figures, and the metrics as JSON.

The report embeds every figure as a base64 PNG and carries its own CSS: it opens offline, with no
external file, script or font. Writing it is :func:`fluxbridge.outputs.report.write_report`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fluxbridge import __version__

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


def render_html(title: str, sections: Sequence[ReportSection], *, dpi: int = 110,
                version: str = __version__) -> str:
    """The whole report as one HTML document (figures inline, CSS inline).

    Parameters
    ----------
    title
        Report title.
    sections
        The report's sections in order.
    dpi
        Resolution of the embedded figures [dots per inch].
    version
        Version of fluxbridge named in the footer (by default the package's).
    """
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(_section_html(s, dpi) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n"
        f'<p class="meta">fluxbridge {html.escape(version)}, {now}. NEE is positive '
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
