"""The evaluation of a run from tables in memory: headline, sections and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from evaluation_data import TIMES, inversion_targets, regional_series, site_predictions

from fluxbridge.evaluation.leave_region_out import HELDOUT
from fluxbridge.evaluation.summary import QUESTION, headline_table, summarise_run


def _site_scales() -> pd.DataFrame:
    return pd.DataFrame({"model": ["dual", "site_only", "dual", "site_only"],
                         "scale": ["all", "all", "seasonal", "seasonal"],
                         "r2": [0.6, 0.5, 0.9, 0.8]})


def _vs_truth() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["site_only"] * 3 + ["dual"] * 3,
        "region": ["A", "B", "all"] * 2,
        "monthly_rmse": [8.0, 12.0, 10.0, 4.0, 6.0, 5.0],
        "annual_bias": [-30.0, 10.0, -10.0, 2.0, -4.0, -1.0]})


def _annual() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["site_only", "site_only", "dual", "dual", "truth", "truth", "inversions"],
        "year": [2001, 2002, 2001, 2002, 2001, 2002, 2001],
        "nee_pgc": [-6.0, -8.0, -3.0, -4.0, -2.0, -3.0, -2.5]})


def test_headline_table_by_hand():
    head = headline_table(_site_scales(), _vs_truth(), _annual(), ["site_only", "dual", "rf"])
    assert list(head["model"]) == ["site_only", "dual"]  # the names' order, present models only
    h = head.set_index("model")
    assert h.loc["site_only", "r2_all"] == 0.5 and h.loc["dual", "r2_seasonal"] == 0.9
    assert h.loc["site_only", "regional_monthly_rmse_tgc"] == 10.0
    assert h.loc["site_only", "regional_mean_abs_annual_bias_tgc"] == pytest.approx(20.0)
    assert h.loc["dual", "regional_mean_abs_annual_bias_tgc"] == pytest.approx(3.0)
    assert h.loc["site_only", "global_nee_pgc"] == pytest.approx(-7.0)
    assert h.loc["dual", "global_nee_pgc"] == pytest.approx(-3.5)
    assert (h["truth_global_nee_pgc"] == -2.5).all()
    assert (h["inversion_global_nee_pgc"] == -2.5).all()
    assert "global_z" not in h


def _maps() -> dict[str, xr.DataArray]:
    lat, lon = np.arange(60.0, -61, -30), np.arange(-150.0, 180, 60)
    field = xr.DataArray(np.ones((2, lat.size, lon.size)), dims=("time", "lat", "lon"),
                         coords={"time": TIMES[:2], "lat": lat, "lon": lon})
    return {"site_only": field, "dual": field * 0.5}


def test_summarise_run_with_truth_and_studies():
    truth = regional_series(10)
    series = {"site_only": regional_series(5), "dual": truth}
    predictions = site_predictions().rename(columns={"nn": "dual", "rf": "site_only"})
    heldout = truth[truth.region == "North"].assign(heldout="North",
                                                    nee_tgc=lambda d: d.nee_tgc + 2.0)
    sparsity = pd.DataFrame({"estimator": ["site_only", "fixed", "exact"], "K": [None, 4, None],
                             "regional_rmse_tgc": [30.0, 12.0, 10.0],
                             "train_seconds": [1.0, 2.0, 9.0]})
    out = summarise_run(predictions, series, inversion_targets(), truth=truth, maps=_maps(),
                        heldout=heldout, sparsity=sparsity,
                        sparsity_settings={"epochs": 2, "reference": "truth"})
    titles = [s.title for s in out.sections]
    assert titles[0] == QUESTION and out.sections[0].headline
    assert titles[1:4] == ["Regional NEE", "Global annual NEE",
                           "Leave-region-out: judging the constraint without truth"]
    assert titles[4:7] == ["Site-level skill (cross-validation)", "Maps",
                           "Top-down reference: inversion ensemble"]
    assert titles[7].startswith("Sparsity")
    assert len(titles) == 8  # no estimator table was given
    assert out.headline_figure is out.sections[0].figures[0]
    h = out.headline.set_index("model")
    assert list(h.index) == ["site_only", "dual"]
    assert h.loc["dual", "regional_monthly_rmse_tgc"] == pytest.approx(0.0)
    assert h.loc["dual", "global_nee_pgc"] == pytest.approx(h.loc["dual",
                                                                  "truth_global_nee_pgc"])
    lro = out.metrics["leave_region_out"].set_index(["against", "model", "region"])
    assert lro.loc[("truth", HELDOUT, "North"), "monthly_rmse"] == pytest.approx(2.0)
    assert out.metrics["sparsity"]["meta"] == {"epochs": 2, "reference": "truth"}
    assert out.metrics["global_vs_truth"] is not None
    assert all("issue" not in s.text.lower() for s in out.sections)
    numbers = out.metrics["headline_numbers"]
    assert list(numbers.columns) == ["quantity", "site_only", "dual", HELDOUT, "meaning"]


def test_summarise_run_without_truth_or_studies():
    series = {"site_only": regional_series(5), "dual": regional_series(10)}
    predictions = site_predictions().rename(columns={"nn": "dual", "rf": "site_only"})
    out = summarise_run(predictions, series, inversion_targets())
    titles = [s.title for s in out.sections]
    assert "Maps" not in titles and not any(t.startswith("Leave") for t in titles)
    assert titles[1] == "Land carbon budget against each inversion"  # real data: no truth
    budget = out.metrics["budget_pgc_yr"].set_index("estimate")
    assert {"site_only", "dual", "inversion mean", "inversion spread"} <= set(budget.index)
    assert "Global land NEE: inversions" in out.sections[0].text
    assert out.metrics["regional_vs_truth"] is None
    assert out.metrics["global_vs_truth"] is None
    assert out.metrics["leave_region_out"] is None and out.metrics["sparsity"] is None
    assert out.metrics["estimator_error"] is None
    assert "regional_monthly_rmse_tgc" not in out.headline
