"""Writing the report: one self-contained HTML file and the metrics as JSON, atomically."""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.figure import Figure

from fluxbridge.evaluation.report import ReportSection
from fluxbridge.outputs.files import code_version
from fluxbridge.outputs.report import write_report


def test_write_report_writes_html_and_metrics(tmp_path):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    table = pd.DataFrame({"model": ["nn"], "r2": [0.5]})
    sections = [ReportSection("Skill", text="Text.", figures=[("line", fig)],
                              tables=[("scores", table)])]
    path = write_report(tmp_path / "rep", title="Test", sections=sections,
                        metrics={"site": table, "x": float("nan")})
    doc = path.read_text()
    assert path == tmp_path / "rep" / "report.html"
    assert doc.count("<figure>") == 1 and "Skill" in doc
    assert f"fluxbridge {code_version()}" in doc
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics == {"site": [{"model": "nn", "r2": 0.5}], "x": None}
    assert not list((tmp_path / "rep").glob(".*tmp"))
