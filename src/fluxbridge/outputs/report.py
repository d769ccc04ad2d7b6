"""Writing the report: ``report.html`` and ``metrics.json`` of a run, atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fluxbridge.evaluation.report import ReportSection, render_html, to_jsonable
from fluxbridge.outputs.files import atomic_path, code_version, write_json


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
    document = render_html(title, sections, dpi=dpi, version=code_version())
    with atomic_path(path) as tmp:
        tmp.write_text(document, encoding="utf-8")
    return path
