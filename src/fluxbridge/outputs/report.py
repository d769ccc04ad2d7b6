"""Writing the report: ``report.html``, ``metrics.json`` and the headline PNG of a run,
atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fluxbridge.evaluation.report import ReportSection, render_html, to_jsonable
from fluxbridge.outputs.files import atomic_path, code_version, write_json


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    sections: Sequence[ReportSection],
    metrics: Mapping[str, Any],
    pngs: Mapping[str, Figure] | None = None,
    dpi: int = 100,
    png_dpi: int = 150,
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
    pngs
        File name → figure, each also written as a PNG beside the report (the headline
        figure, for slides).
    dpi
        Resolution of the embedded figures [dots per inch].
    png_dpi
        Resolution of the PNG files [dots per inch].

    Returns
    -------
    Path
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(to_jsonable(metrics), out / "metrics.json")
    path = out / "report.html"
    document = render_html(title, sections, dpi=dpi, version=code_version())
    with atomic_path(path) as tmp:
        tmp.write_text(document, encoding="utf-8")
    for name, fig in (pngs or {}).items():
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=png_dpi)
    return path
