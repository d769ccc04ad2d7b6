"""The experiment's evaluation on a tiny twin world: leave-region-out, global NEE against the
inversion spread of the truth, and the sparsity study in metrics.json and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from fluxbridge.pipeline import run_experiment

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 24, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}
FAST = {
    "network": {"width": 8, "depth": 1, "epochs": 2, "patience": 2, "batch_size": 512},
    "constraint": {"K": 8},
    "baselines": {"random_forest": False, "xgboost": False},
    "validation": {"folds": 2, "leave_region_out": True},
    "upscaling": {"scheduler": "synchronous", "time_chunk": 92},
    "tuning": {"regional": {"obs_per_step": 8}, "cache": {"refresh_every": 1}},
    "progress": False,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("exp")
    world = synthesize(root / "world", config=dict(TINY_WORLD), seed=1, progress=False)
    cfg = root / "e.yaml"
    cfg.write_text(yaml.safe_dump({"name": "tiny", "out_dir": "run",
                                   "inputs": str(world.parent / "inputs.yaml"), **FAST}))
    result = run_experiment(cfg, progress=False)
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    return result, metrics, world


def test_leave_region_out_runs_once_per_region_and_is_reported(run):
    result, metrics, world = run
    truth = pd.read_csv(world.parent / json.loads(world.read_text())["files"]
                        ["truth_regional"])
    series = pd.read_csv(result.out_dir / "leave_region_out" / "series.csv")
    # one run per region, each contributing only its own region's rows
    assert (series["heldout"] == series["region"]).all()
    assert set(series["heldout"]) == set(truth["region"])
    assert len(list((result.out_dir / "leave_region_out").glob("region*.csv"))) == \
        series["heldout"].nunique()
    table = pd.DataFrame(metrics["leave_region_out"])
    assert set(table["against"]) == {"inversions", "truth"}
    # with a truth, the oracle of the shared correction beside them
    assert set(table["model"]) == {"site_only", "dual", "dual_without_region",
                                   "oracle_without_region"}
    assert set(table["region"]) == {*truth["region"], "all"}
    html = (result.out_dir / "report.html").read_text()
    assert "Leave-region-out" in html
    assert "leave_region_out" in json.loads((result.out_dir / "run.json").read_text())["steps"]


def test_global_nee_is_judged_against_the_members_spread(run):
    result, metrics, _ = run
    check = pd.DataFrame(metrics["global_vs_truth"]).set_index("model")
    members = pd.DataFrame(metrics["inversion_members_global_annual"])
    assert members["model"].nunique() == TINY_WORLD["n_members"]
    means = members.groupby("model")["nee_pgc"].mean()
    for name in ("site_only", "dual"):
        row = check.loc[name]
        assert row["inversion_spread_pgc"] == pytest.approx(means.std(ddof=1), rel=1e-9)
        assert row["inversion_mean_pgc"] == pytest.approx(means.mean(), rel=1e-9)
        assert row["z"] == pytest.approx(row["error_pgc"] / row["inversion_spread_pgc"])
        assert row["within_spread"] == (abs(row["error_pgc"]) <= row["inversion_spread_pgc"])
    head = result.headline.set_index("model")
    for col in ("global_nee_pgc", "truth_global_nee_pgc", "inversion_global_nee_pgc",
                "inversion_global_spread_pgc", "global_z", "global_within_spread"):
        assert col in head.columns
    assert head.loc["dual", "global_z"] == pytest.approx(check.loc["dual", "z"])
    assert np.isfinite(head["inversion_global_spread_pgc"]).all()
    assert "inversion_global_spread_pgc" in result.summary()


def test_report_shows_only_what_the_run_computed(run):
    result, metrics, _ = run
    html = (result.out_dir / "report.html").read_text()
    assert "benchmarks/" not in html and "not of this run" not in html
    assert metrics["sparsity"] is None  # sparsity_study is off


def test_sparsity_study_flag_runs_the_study_in_the_experiment(run, monkeypatch):
    from fluxbridge.config import load_config
    from fluxbridge.evaluation.report import render_html
    from fluxbridge.evaluation.sections import sparsity_section
    from fluxbridge.pipeline import Experiment
    from fluxbridge.rundir import RunState
    from fluxbridge.studies import sparsity as sp

    result, _, _ = run
    cfg = load_config(result.out_dir / "config.resolved.yaml")
    cfg = cfg.model_copy(update={"validation": cfg.validation.model_copy(
        update={"sparsity_study": True})})
    real = sp.sparsity_study

    def small(*args, **kw):  # one estimator and K keep the test short
        return real(*args, **{**kw, "Ks": (4,), "estimators": ("fixed",)})

    monkeypatch.setattr(sp, "sparsity_study", small)
    exp = Experiment(cfg, RunState(result.out_dir), progress=False)
    table = exp.sparsity()
    assert list(table["estimator"]) == ["site_only", "fixed", "exact"]
    assert (table["regional_rmse_tgc"] > 0).all() and (table["train_seconds"] > 0).all()
    assert (result.out_dir / "sparsity" / "table.csv").exists()
    html = render_html("t", [sparsity_section(table, {"epochs": 2, "reference": "truth"})])
    assert "sparsity_study" in html


def test_the_report_opens_with_the_headline_and_its_png_is_written(run):
    result, _, _ = run
    html = (result.out_dir / "report.html").read_text()
    assert len(html.encode()) < 1.5e6
    assert (result.out_dir / "headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first_table = html.index("<table")
    assert html.index("<img") < first_table
    assert "headline" in html[first_table:html.index(">", first_table)]


def test_leave_region_out_withholds_only_the_named_regions(run, tmp_path):
    from fluxbridge.config import load_config
    from fluxbridge.errors import ConfigError
    from fluxbridge.pipeline import Experiment
    from fluxbridge.rundir import RunState

    result, _, world = run
    truth = pd.read_csv(world.parent / json.loads(world.read_text())["files"]
                        ["truth_regional"])
    first = sorted(truth["region"].unique())[0]
    cfg = load_config(result.out_dir / "config.resolved.yaml")

    def withholding(*names: str, out: str) -> Experiment:
        (tmp_path / out).mkdir()
        validation = cfg.validation.model_copy(update={"leave_region_out_regions": names})
        return Experiment(cfg.model_copy(update={"out_dir": tmp_path / out,
                                                 "validation": validation}),
                          RunState(tmp_path / out), progress=False)

    exp = withholding(first, out="one")
    exp.lro_dir = tmp_path / "one" / "leave_region_out"
    assert set(exp.leave_region_out()["heldout"]) == {first}
    with pytest.raises(ConfigError, match="Atlantis"):
        withholding("Atlantis", out="bad").leave_region_out()
