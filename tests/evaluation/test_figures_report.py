"""Figures and the self-contained report."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from evaluation_data import inversion_targets, regional_series, site_predictions
from matplotlib.figure import Figure

from fluxbridge.errors import InputError
from fluxbridge.evaluation import figures
from fluxbridge.evaluation.regional import global_annual
from fluxbridge.evaluation.report import ReportSection, render_html, to_jsonable


def test_regional_cycles_one_panel_per_region_with_every_curve():
    ref = regional_series(10)
    spread = ref.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=2.0)
    fig = figures.regional_cycles({"site_only": regional_series(8), "dual": regional_series(11)},
                                  reference=ref, spread=spread, truth=regional_series(10))
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert sorted(ax.get_title() for ax in visible) == ["North", "South", "Tropical"]
    labels = {line.get_label() for line in visible[0].get_lines()}
    assert {"truth", "site-only", "dual", "inversion mean"} <= labels  # the report's names


def test_site_scatter_grid_and_skill_in_titles():
    fig = figures.site_scatter(site_predictions(), ["nn", "rf"])
    assert len(fig.axes) == 2 * 4
    assert "nn · all" in fig.axes[0].get_title()


def test_global_series_estimator_error_inversion_bands():
    annual = global_annual({"dual": regional_series(10), "site_only": regional_series(5)})
    fig = figures.global_series(annual)
    assert [ln.get_label() for ln in fig.axes[0].get_lines()][:2] == ["dual", "site-only"]
    table = pd.DataFrame({"estimator": ["fixed"] * 3 + ["control_variate"] * 3,
                          "K": [4, 16, 64] * 2, "rmse": [4.0, 2.0, 1.0, 0.4, 0.2, 0.1]})
    fig = figures.estimator_error(table)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(InputError):
        figures.estimator_error(table.drop(columns="rmse"))
    fig = figures.inversion_bands(inversion_targets())
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["North", "Tropical", "South"]
    assert len(fig.axes[0].get_lines()) == 4 + 2  # members, mean, zero line


def test_to_jsonable_handles_frames_nan_and_numpy():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"]})
    out = to_jsonable({"t": df, "v": np.float32(2.5), "k": np.int64(3), "arr": np.array([1, 2])})
    assert out == {"t": [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}], "v": 2.5, "k": 3,
                   "arr": [1, 2]}


def test_rendered_report_is_self_contained():
    fig = figures.inversion_bands(inversion_targets())
    table = pd.DataFrame({"model": ["nn"], "r2": [0.5]})
    sections = [ReportSection("Site <skill>", text="First.\n\nSecond & last.",
                              figures=[("bands", fig)], tables=[("scores", table)])]
    doc = render_html("Test", sections, version="9.9")
    assert "Site &lt;skill&gt;" in doc and "Second &amp; last." in doc
    assert "fluxbridge 9.9" in doc
    assert not re.search(r'(src|href)="(?!data:)', doc)  # nothing external
    assert "<script" not in doc
    png = re.search(r'src="data:image/png;base64,([^"]+)"', doc).group(1)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_not_registered_with_pyplot():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    assert isinstance(figures.global_series(global_annual({"a": regional_series(1)})), Figure)
    assert len(plt.get_fignums()) == before


def test_sparsity_figure_sweeps_k_and_draws_reference_rows_as_lines():
    rows = [{"estimator": "site_only", "K": None, "regional_rmse_tgc": 50.0,
             "train_seconds": 5.0},
            {"estimator": "exact", "K": None, "regional_rmse_tgc": 20.0, "train_seconds": 600.0}]
    rows += [{"estimator": e, "K": k, "regional_rmse_tgc": 20.0 + 100 / k, "train_seconds": 9.0}
             for e in ("fixed", "control_variate") for k in (4, 16, 64)]
    fig = figures.sparsity(pd.DataFrame(rows))
    left, right = fig.axes[:2]
    assert left.get_xscale() == "log" and right.get_xscale() == "log"
    swept = [ln for ln in left.get_lines() if len(ln.get_xdata()) == 3]
    assert len(swept) == 2
    flat = {ln.get_label(): ln.get_ydata()[0] for ln in left.get_lines()
            if ln.get_label() in ("exact", "site_only")}
    assert flat == {"exact": 20.0, "site_only": 50.0}
    with pytest.raises(InputError):
        figures.sparsity(pd.DataFrame(rows).drop(columns="train_seconds"))


def test_leave_region_out_figure_one_panel_per_reference_one_bar_per_model_region():
    rows = [{"against": a, "model": m, "region": r, "monthly_rmse": 1.0 + i}
            for a in ("inversions", "truth")
            for i, m in enumerate(("site_only", "dual", "dual_without_region"))
            for r in ("A", "B", "all")]
    fig = figures.leave_region_out(pd.DataFrame(rows))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert len(axes[0].patches) == 3 * 3
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["A", "B", "all"]


def test_global_series_band_is_members_mean_plus_minus_sd():
    annual = pd.DataFrame({"model": "dual", "year": [2010, 2011], "nee_pgc": [-3.0, -4.0]})
    members = pd.DataFrame({"model": ["a", "b", "a", "b"], "year": [2010, 2010, 2011, 2011],
                            "nee_pgc": [-2.0, -4.0, -5.0, -3.0]})
    fig = figures.global_series(annual, members=members)
    band = fig.axes[0].collections[0]
    lower_upper = band.get_paths()[0].vertices[:, 1]
    sd = np.std([-2.0, -4.0], ddof=1)  # both years: mean -3 and -4, the same sd
    assert np.isclose(lower_upper.min(), -4.0 - sd) and np.isclose(lower_upper.max(), -3.0 + sd)
