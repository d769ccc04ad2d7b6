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
from fluxbridge.evaluation.headline import label

Captioned = tuple[str, Any]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1300px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin: .5em 0 .1em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #bbb; font-size: 1.25em; }
p.lead { margin: 0 0 .3em; color: #444; }
figure { margin: .5em 0; } figure img { max-width: 100%; height: auto; }
figcaption, .caption { font-size: .9em; color: #555; }
table.data { border-collapse: collapse; font-size: .85em; margin: .3em 0 1.2em;
             max-width: 100%; }
table.data th, table.data td { border: 1px solid #ccc; padding: .15em .5em; text-align: right; }
table.data th { background: #f0f0f0; }
table.data td:first-child, table.data th:first-child { text-align: left; }
table.headline { font-size: .9em; width: 100%; }
table.headline td:last-child, table.headline th:last-child { text-align: left; width: 45%; }
details { margin: .2em 0 1em; } summary { cursor: pointer; color: #335; }
.meta { font-size: .8em; color: #777; margin-top: 3em; }
"""

@dataclass
class ReportSection:
    """One section of the report, rendered in the order of its attributes.

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
        DataFrames, or ``(caption, DataFrame)`` pairs, shown open.
    details
        ``(caption, DataFrame)`` pairs folded in ``<details>``: long tables.
    headline
        The section is the report's answer: its tables span the page and leave their last
        column (the meaning of each row) as text.
    """

    title: str
    text: str = ""
    html: str = ""
    figures: Sequence[Figure | Captioned] = field(default_factory=list)
    tables: Sequence[pd.DataFrame | Captioned] = field(default_factory=list)
    details: Sequence[Captioned] = field(default_factory=list)
    headline: bool = False


def figure_png_base64(fig: Figure, dpi: int = 100, colors: int = 128) -> str:
    """PNG of a figure with a palette of ``colors`` colours (a third of the bytes of a
    full-colour PNG of line plots), base64-encoded for a ``data:`` URI."""
    from PIL import Image

    full, small = io.BytesIO(), io.BytesIO()
    fig.savefig(full, format="png", dpi=dpi)
    full.seek(0)
    with Image.open(full) as image:
        image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(
            small, format="png", optimize=True)
    return base64.b64encode(small.getvalue()).decode("ascii")


def _captioned(item: Any) -> tuple[str, Any]:
    return item if isinstance(item, tuple) else ("", item)


def format_number(value: float) -> str:
    """A table's number: three significant digits (trailing zeros kept, so a column reads
    alike), whole numbers from 100, thousands separated, small numbers in exponent form."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 0.1 or value == 0:
        return f"{value:.{2 - int(np.floor(np.log10(size)))}f}" if value else "0"
    return f"{value:.2g}"


def _table_html(df: pd.DataFrame, classes: str = "data") -> str:
    shown = df.rename(columns=lambda c: label(str(c)).replace("_", " "))
    return shown.to_html(index=False, border=0, classes=classes, na_rep="–",
                         float_format=format_number)


def _section_html(section: ReportSection, dpi: int) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    for para in (p.strip() for p in section.text.split("\n\n")):
        if para:
            parts.append(f'<p class="lead">{html.escape(para)}</p>')
    if section.html:
        parts.append(section.html)
    for caption, fig in map(_captioned, section.figures):
        data = figure_png_base64(fig, dpi)
        alt = html.escape(caption or section.title)
        parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                     + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "")
                     + "</figure>")
    classes = "data headline" if section.headline else "data"
    for caption, table in map(_captioned, section.tables):
        if caption:
            parts.append(f'<p class="caption">{html.escape(caption)}</p>')
        parts.append(_table_html(table, classes))
    for caption, table in section.details:
        parts.append(f"<details><summary>{html.escape(caption)} ({len(table)} rows)</summary>"
                     f"{_table_html(table)}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(title: str, sections: Sequence[ReportSection], *, dpi: int = 100,
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
