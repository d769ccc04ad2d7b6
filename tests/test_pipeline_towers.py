"""Tall towers in a run: the dual model takes the footprint term, the site-only model does
not, broken tower inputs are refused before any training, and the run compares the terms
(footprints only, regional only) in its report unless switched off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fluxbridge.errors import InputError
from fluxbridge.evaluation.tower_section import TITLE
from fluxbridge.io.inputs import World
from fluxbridge.models.artifact import load_model
from fluxbridge.pipeline import run_experiment, train_step
from fluxbridge.rundir import RunResult

TOWER_WORLD = {"resolution_deg": 10.0, "n_years": 1, "n_sites": 16, "n_members": 3,
               "site_years_min": 1, "site_years_max": 1, "n_towers": 3,
               "tower_every_days": 30, "tower_noise_ppm": 0.0}
FAST = {"network": {"width": 8, "depth": 2, "epochs": 2, "patience": 2, "batch_size": 512},
        "constraint": {"K": 8}, "validation": {"folds": 2, "leave_region_out": False},
        "baselines": {"random_forest": False, "xgboost": False, "published": False},
        "upscaling": {"scheduler": "synchronous"},
        "tuning": {"regional": {"obs_per_step": 8}, "footprint": {"obs_per_step": 8,
                                                                  "K": 8}},
        "progress": False}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("towerworld")
    synthesize(root / "world", config=TOWER_WORLD, seed=2, progress=False)
    return root / "world"


@pytest.fixture
def world(world_dir) -> World:
    """The world's inputs, opened lazily."""
    from fluxbridge.io.inputs import open_world

    return open_world(world_dir / "manifest.json")


def _config(tmp: Path, inputs: Path, name: str, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "out_dir": str(tmp / name),
                                    "inputs": str(inputs), **FAST, **extra}))
    return path


def _inputs(tmp: Path, world_dir: Path, drop: tuple[str, ...] = (), **replace: str) -> Path:
    """The world's inputs.yaml with absolute paths, some roles dropped or replaced."""
    inputs = yaml.safe_load((world_dir / "inputs.yaml").read_text())
    spec = {role: (str(world_dir / v) if isinstance(v, str) else [str(world_dir / p)
                                                                  for p in v])
            for role, v in inputs.items() if role not in drop}
    (tmp / "inputs.yaml").write_text(yaml.safe_dump({**spec, **replace}))
    return tmp / "inputs.yaml"


def test_dual_model_takes_the_towers_site_only_does_not(tmp_path, world_dir):
    models = train_step(_config(tmp_path, world_dir / "inputs.yaml", "towers"),
                        progress=False)
    n_receptors = len(pd.read_csv(world_dir / "towers" / "tower_priors.csv"))
    assert load_model(models / "dual.pt").provenance["n_receptors"] == n_receptors
    assert load_model(models / "site_only.pt").provenance["n_receptors"] == 0


def test_receptor_without_background_is_refused_before_training(tmp_path, world_dir):
    priors = pd.read_csv(world_dir / "towers" / "tower_priors.csv").iloc[1:]
    priors.to_csv(tmp_path / "priors.csv", index=False)
    inputs = _inputs(tmp_path, world_dir, tower_priors=str(tmp_path / "priors.csv"))
    with pytest.raises(InputError, match="without a background"):
        train_step(_config(tmp_path, inputs, "broken"), progress=False)
    assert not list((tmp_path / "broken").rglob("*.pt"))


def test_the_true_flux_fits_noiseless_towers(world):
    """H·NEE_true through the model's cells equals the observed enhancement that the tower
    files and priors give (this world's towers have no noise): the fit's observations and
    rows match receptor by receptor."""
    from fluxbridge.evaluation.tower_section import enhancement_fit, observed_enhancement
    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.towers import towers_of
    from fluxbridge.training.footprint import footprint_operator

    towers = towers_of(world.files)
    grid = GridFeatures.from_dataset(world.predictors, world.regions)
    op = footprint_operator(towers, grid, world.regions)
    truth = world.truth_grid.values[:, grid.lat_index, grid.lon_index]
    fit = enhancement_fit(op, observed_enhancement(towers, op), {"truth": truth}).iloc[0]
    assert fit["n_receptors"] == len(towers.table)
    assert fit["towers_rmse_ppm"] < 1e-3  # the files' rounding only


@pytest.fixture(scope="module")
def compared(tmp_path_factory, world_dir) -> RunResult:
    """An uninterrupted run with towers (the comparison on, by default)."""
    tmp = tmp_path_factory.mktemp("compare")
    return run_experiment(_config(tmp, world_dir / "inputs.yaml", "compare"), progress=False)


def test_run_compares_the_terms_in_its_report(compared):
    result = compared
    out = result.out_dir
    for name in ("footprint_only", "regional_only"):
        assert (out / "models" / f"{name}.pt").exists()
        assert (out / "upscaled" / name / "regional.csv").exists()
    assert load_model(out / "models" / "footprint_only.pt").provenance["n_receptors"] > 0
    assert load_model(out / "models" / "regional_only.pt").provenance["n_receptors"] == 0
    assert TITLE in result.report.read_text()
    towers = json.loads((out / "metrics.json").read_text())["towers"]
    assert towers["truth_towers_rmse_ppm"] < 1e-3  # noiseless towers: the truth fits them
    table = pd.DataFrame(towers["table"])
    assert list(table["model"]) == ["site-only", "footprints only", "regional only",
                                    "both (dual)"]
    for column in ("footprint region RMSE [TgC/month]", "footprint cells RMSE [TgC/month]",
                   "everywhere |annual bias| [TgC/yr]", "towers RMSE [ppm]",
                   "towers mean bias [ppm]"):
        assert np.isfinite(table[column]).all(), column
    assert list(pd.read_csv(out / "cv" / "predictions.csv").columns[-2:]) == ["site_only",
                                                                           "dual"]
    assert set(result.headline["model"]) == {"site_only", "dual"}


def test_killed_while_training_the_comparison_resumes_to_the_same_products(
        tmp_path, world_dir, compared, monkeypatch):
    import fluxbridge.pipeline as pipeline

    cfg = _config(tmp_path, world_dir / "inputs.yaml", "compare")
    out = tmp_path / "compare"
    original, calls = pipeline.Experiment._fit, []

    def failing(self, name):
        calls.append(name)
        if name == "footprint_only":
            raise RuntimeError("killed")
        return original(self, name)

    with monkeypatch.context() as m:
        m.setattr(pipeline.Experiment, "_fit", failing)
        with pytest.raises(RuntimeError, match="killed"):
            run_experiment(cfg, progress=False)
    assert calls == ["site_only", "dual", "footprint_only"]
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.pt")}
    assert sorted(kept) == ["dual.pt", "site_only.pt"]
    run_experiment(cfg, progress=False)
    assert all((out / "models" / n).stat().st_mtime_ns == t for n, t in kept.items())
    for name in ("site_only", "dual", "footprint_only", "regional_only"):
        pd.testing.assert_frame_equal(
            pd.read_csv(out / "upscaled" / name / "regional.csv"),
            pd.read_csv(compared.out_dir / "upscaled" / name / "regional.csv"),
            check_exact=True, obj=name)


@pytest.mark.parametrize("case", ["no towers", "switched off"])
def test_no_comparison_without_towers_or_when_switched_off(tmp_path, world_dir, case):
    if case == "no towers":
        inputs = _inputs(tmp_path, world_dir, drop=("footprints", "tower_co2", "tower_priors"))
        extra = {}
    else:
        inputs, extra = world_dir / "inputs.yaml", {
            "constraint": {**FAST["constraint"], "compare_tower_terms": False}}
    result = run_experiment(_config(tmp_path, inputs, "plain", **extra), progress=False)
    assert sorted(p.name for p in (result.out_dir / "models").glob("*.pt")) == [
        "dual.pt", "site_only.pt"]
    assert TITLE not in result.report.read_text()
    assert json.loads((result.out_dir / "metrics.json").read_text()).get("towers") is None


def test_without_a_truth_the_section_gives_the_fit_to_the_towers_only(compared, world):
    """Real data have no truth: the section keeps the towers' columns, the same numbers."""
    from types import SimpleNamespace

    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.towers import towers_of
    from fluxbridge.run_models import add_section

    grid = GridFeatures.from_dataset(world.predictors, world.regions)
    up = compared.out_dir / "upscaled"
    products = {n: SimpleNamespace(grid=up / n / "nee.nc", regional_csv=up / n / "regional.csv")
                for n in ("site_only", "dual", "footprint_only", "regional_only")}
    summary = SimpleNamespace(sections=[], metrics={})
    add_section(summary, products, towers_of(world.files), grid, world, truth=None)
    table = summary.metrics["towers"]["table"]
    assert list(table.columns) == ["model", "towers RMSE [ppm]", "towers mean bias [ppm]"]
    assert [s.title for s in summary.sections] == [TITLE]
    assert "Against the truth" not in summary.sections[0].text
    full = pd.DataFrame(json.loads((compared.out_dir / "metrics.json").read_text())
                        ["towers"]["table"])
    np.testing.assert_allclose(table["towers RMSE [ppm]"], full["towers RMSE [ppm]"],
                               rtol=1e-12)
