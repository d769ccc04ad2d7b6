"""The report's layout: the answer first (one figure, one table of headline numbers), details
below in compact tables, long tables folded, nothing wider than the page, a small file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from evaluation_data import TIMES, inversion_targets, regional_series, site_predictions

from fluxbridge.evaluation.report import render_html
from fluxbridge.evaluation.summary import QUESTION, summarise_run
from fluxbridge.outputs.report import write_report

MAX_COLUMNS = 8
"""Columns a table may have and still fit the page."""


@pytest.fixture(scope="module")
def summary():
    truth = regional_series(10)
    series = {"site_only": regional_series(5), "dual": regional_series(9),
              "rf": regional_series(6)}
    predictions = site_predictions().rename(columns={"nn": "dual", "rf": "site_only"})
    predictions["rf"] = predictions["site_only"] * 0.9
    heldout = truth[truth.region.isin(["North", "South"])].assign(
        heldout=lambda d: d.region, nee_tgc=lambda d: d.nee_tgc + 2.0)
    lat, lon = np.arange(60.0, -61, -30), np.arange(-150.0, 180, 60)
    field = xr.DataArray(np.ones((2, lat.size, lon.size)), dims=("time", "lat", "lon"),
                         coords={"time": TIMES[:2], "lat": lat, "lon": lon})
    return summarise_run(predictions, series, inversion_targets(), truth=truth,
                         maps={"site_only": field, "dual": field * 0.5, "truth": field},
                         heldout=heldout)


@pytest.fixture(scope="module")
def html(summary) -> str:
    return render_html("fluxbridge — test", summary.sections)


def _sections(html: str) -> list[str]:
    return re.findall(r"<section>.*?</section>", html, re.S)


def test_the_first_section_is_the_answer_one_figure_then_the_headline_table(html):
    first = _sections(html)[0]
    assert f"<h2>{QUESTION}</h2>" in first
    assert first.count("<img") == 1 and first.count("<table") == 1
    assert first.index("<img") < first.index("<table")
    assert 'class="dataframe data headline"' in first
    assert "meaning" in first


def test_the_headline_table_precedes_every_other_table_and_figure(html):
    tables = [m.start() for m in re.finditer("<table", html)]
    images = [m.start() for m in re.finditer("<img", html)]
    assert "headline" in html[tables[0]:html.index(">", tables[0])]
    assert sum("headline" in html[t:html.index(">", t)] for t in tables) == 1
    assert images[0] < tables[0] < min(images[1:])


def test_no_table_is_wider_than_the_page(html):
    for table in re.findall(r"<table.*?</table>", html, re.S):
        body_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", table, re.S).group(1)
        assert body_row.count("<td") + body_row.count("<th") <= MAX_COLUMNS


def test_long_tables_are_folded(html):
    open_part = re.sub(r"<details>.*?</details>", "", html, flags=re.S)
    for table in re.findall(r"<table.*?</table>", open_part, re.S):
        assert table.count("<tr>") <= 12
    assert html.count("<details>") >= 3


def test_every_figure_states_its_units_and_nee_figures_the_sign(summary):
    for section in summary.sections:
        for item in section.figures:
            caption, fig = item if isinstance(item, tuple) else ("", item)
            texts = [caption, fig.get_suptitle(),
                     *(t for ax in fig.axes for t in (ax.get_ylabel(), ax.get_xlabel())),
                     *(t.get_text() for leg in fig.legends for t in leg.get_texts())]
            words = " ".join(texts)
            assert re.search(r"\[[^\]]+\]", words), section.title
            assert "source" in words or "σ" in words, section.title


def test_no_words_about_how_the_project_is_made(html):
    text = re.sub(r"<[^>]+>|data:image/png;base64,[^\"]+", " ", html).lower()
    for word in ("issue", "ticket", "todo", "pull request", "benchmark"):
        assert word not in text


def test_written_report_is_small_and_the_headline_png_beside_it(summary, tmp_path):
    path = write_report(tmp_path, title="t", sections=summary.sections, metrics={},
                        pngs={"headline.png": summary.headline_figure})
    assert path.stat().st_size < 1.5e6
    png = tmp_path / "headline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
