"""The real monthly example end to end, made tiny: 26 towers, two folds, a few epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxbridge.pipeline import run_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "real-monthly"


@pytest.fixture(scope="module")
def tiny_run(real_data, tmp_path_factory, one_torch_thread):
    data = yaml.safe_load((EXAMPLE / "experiment.yaml").read_text())
    data["inputs"]["sites"] = "{data_dir}/fluxnet2015/MM/FLX_A*_FLUXNET2015_SUBSET_MM_*.csv"
    data["inputs"]["corrections"] = str(EXAMPLE / "river_export.csv")
    data.update(data_dir=str(real_data), out_dir="run", progress=False,
                network={"width": 16, "depth": 2, "epochs": 3, "patience": 1,
                         "batch_size": 256},
                validation={"folds": 2, "leave_region_out": False},
                tuning={"baselines": {"rf_n_estimators": 10, "xgb_n_estimators": 10,
                                      "n_jobs": 1}})
    folder = tmp_path_factory.mktemp("real")
    (path := folder / "experiment.yaml").write_text(yaml.safe_dump(data))
    return run_experiment(path, progress=False)


def test_tiny_real_example_reports_the_budget(tiny_run):
    metrics = json.loads((tiny_run.out_dir / "metrics.json").read_text())
    budget = pd.DataFrame(metrics["budget_pgc_yr"]).set_index("estimate")
    models = ["site_only", "dual", "rf", "xgboost", "published"]
    assert list(budget.index[:5]) == models
    assert len(budget) == 5 + 14 + 2  # models, the 14 members, mean and spread
    assert list(budget.columns) == ["North", "Tropical", "South", "Global"]
    members = budget.iloc[5:19]
    assert budget.loc["inversion mean", "Global"] == pytest.approx(
        members["Global"].mean())
    report = tiny_run.report.read_text()
    assert "Global land NEE: inversions" in report and "climatological year" in report


def test_tiny_real_example_products_are_a_climatological_year(tiny_run):
    with xr.open_dataset(tiny_run.out_dir / "upscaled" / "dual" / "nee.nc") as ds:
        assert ds.attrs["climatology"] == "true" and ds.attrs["frequency"] == "month"
        assert ds.attrs["climatology_period"] == "1981-2010"
        assert ds.attrs["inversions_period"] == "2000-2014"
        assert ds.sizes["time"] == 12 and ds["nee"].attrs["units"] == "g m-2 d-1"
        assert json.loads(ds.attrs["corrections"])[0]["term"] == "river"
