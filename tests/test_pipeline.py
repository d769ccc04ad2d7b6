"""The whole experiment on a tiny twin world: outputs, manifest, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxbridge.config import load_config
from fluxbridge.errors import ConfigError, InputError
from fluxbridge.pipeline import run_experiment
from fluxbridge.rundir import prepare_run

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 24, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}

FAST = {
    "network": {"width": 16, "depth": 2, "epochs": 3, "patience": 2, "batch_size": 512},
    "constraint": {"K": 8},
    "validation": {"folds": 2},
    "upscaling": {"scheduler": "synchronous", "time_chunk": 31},
    "tuning": {"regional": {"obs_per_step": 8}, "cache": {"refresh_every": 1},
               "baselines": {"rf_n_estimators": 8, "xgb_n_estimators": 20}},
    "progress": False,
}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("tiny")
    synthesize(root / "world", config=dict(TINY_WORLD), seed=1, progress=False)
    return root / "world"


def _config(tmp: Path, world: Path, name: str, **extra) -> Path:
    data = {"name": name, "out_dir": name, "inputs": str(world / "inputs.yaml"), **FAST,
            **extra}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, world_dir):
    import torch

    from fluxbridge.cli import torch_threads

    tmp = tmp_path_factory.mktemp("runs")
    cfg = _config(tmp, world_dir, "reference")
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads())  # as the command line runs it: float sums alike
    try:
        result = run_experiment(cfg, progress=False)
    finally:
        torch.set_num_threads(before)
    return tmp, cfg, result


def test_run_writes_the_documented_manifest(finished_run, world_dir):
    _, _, result = finished_run
    manifest = json.loads(result.manifest.read_text())
    root = result.manifest.parent
    assert (root / manifest["inputs"]["regions"]).resolve() == (
        world_dir / json.loads((world_dir / "manifest.json").read_text())["files"]["regions"]
    ).resolve()
    truth = pd.read_csv(world_dir / json.loads((world_dir / "manifest.json").read_text())
                        ["files"]["truth_regional"])
    with xr.open_dataset(world_dir / "truth" / "nee_true.nc") as t:
        truth_times, truth_lat = t["time"].values, t["lat"].values
    for name in ("site_only", "dual", "rf", "xgboost", "published"):
        entry = manifest["models"][name]
        with xr.open_dataset(root / entry["grid"]) as ds:
            assert ds["nee"].attrs["units"] == "g m-2 d-1"
            np.testing.assert_array_equal(ds["time"].values, truth_times)
            np.testing.assert_allclose(ds["lat"].values, truth_lat)
        regional = pd.read_csv(root / entry["regional"])
        assert list(regional.columns[:3]) == ["region", "time", "nee_tgc"]
        assert set(regional["region"]) == set(truth["region"])
    metrics = json.loads((root / manifest["metrics"]).read_text())
    assert "headline" in metrics
    html = (root / manifest["report"]).read_text()
    assert "data:image/png;base64," in html and "<script src" not in html


def test_cv_predictions_share_folds_and_models(finished_run):
    _, _, result = finished_run
    cv = pd.read_csv(result.out_dir / "cv" / "predictions.csv")
    for col in ("site", "time", "fold", "observed", "site_only", "dual", "rf", "xgboost",
                "published"):
        assert col in cv.columns
    assert cv.groupby("site")["fold"].nunique().max() == 1


def test_run_records_config_version_and_every_input(finished_run, world_dir):
    _, _, result = finished_run
    record = json.loads((result.out_dir / "run.json").read_text())
    assert record["status"] == "complete"
    assert record["fluxbridge_version"]
    world_manifest = json.loads((world_dir / "manifest.json").read_text())
    listed = []
    for value in world_manifest["files"].values():
        listed.extend(value if isinstance(value, list) else [value])
    expected = {str((world_dir / f).resolve()) for f in listed}
    recorded = {entry["path"]: entry for entry in record["inputs"]}
    assert expected <= set(recorded)
    for path, entry in recorded.items():
        assert entry["bytes"] == Path(path).stat().st_size
    resolved = yaml.safe_load((result.out_dir / "config.resolved.yaml").read_text())
    assert load_config(result.out_dir / "config.resolved.yaml").to_dict() == resolved


def test_finished_run_is_not_overwritten(finished_run):
    _, cfg, result = finished_run
    before = result.manifest.stat().st_mtime_ns
    with pytest.raises(ConfigError, match="--overwrite"):
        prepare_run(load_config(cfg))
    assert result.manifest.stat().st_mtime_ns == before


def test_config_with_missing_file_is_refused_before_work(tmp_path, world_dir):
    spec = yaml.safe_load((world_dir / "inputs.yaml").read_text())
    spec = {role: [str(world_dir / p) for p in v] if isinstance(v, list) else str(world_dir / v)
            for role, v in spec.items()}
    spec["regions"] = str(tmp_path / "nowhere" / "regions.nc")
    cfg = tmp_path / "e.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": "run", "inputs": spec}))
    with pytest.raises(InputError, match="regions"):
        run_experiment(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_overwrite_removes_only_the_runs_own_products(finished_run, world_dir):
    tmp, _, _ = finished_run
    cfg = _config(tmp, world_dir, "replaced", validation={"folds": 2,
                                                           "leave_region_out": False})
    out = tmp / "replaced"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    (out / "run.json").write_text(json.dumps({"status": "complete", "steps": {},
                                              "products": ["run.json", "models"]}))
    (out / "models").mkdir()
    (out / "models" / "stale.pt").write_text("x")
    prepare_run(load_config(cfg), overwrite=True).release()
    assert keep.read_text() == "mine" and cfg.exists()
    assert not (out / "models").exists()


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(root.glob(pattern)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_kill_during_training_and_upscaling_then_resume(finished_run, world_dir):
    tmp, _, reference = finished_run
    cfg = _config(tmp, world_dir, "killed")
    out = tmp / "killed"
    cmd = [sys.executable, "-m", "fluxbridge.cli", "-q", "run", str(cfg)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for pattern in ("cv/checkpoints/**/checkpoint.pt", "upscaled/*/.chunks/*.npz"):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        reached = _wait_for(pattern, out, proc, timeout=600)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert reached, f"run ended before {pattern} appeared"
        assert not (out / "manifest.json").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    a = pd.read_csv(reference.out_dir / "cv" / "predictions.csv")
    b = pd.read_csv(out / "cv" / "predictions.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)
    for name in ("site_only", "dual", "rf", "xgboost", "published"):
        ra = pd.read_csv(reference.out_dir / "upscaled" / name / "regional.csv")
        rb = pd.read_csv(out / "upscaled" / name / "regional.csv")
        pd.testing.assert_frame_equal(ra, rb, rtol=1e-5)


def test_a_model_added_to_an_unfinished_run_is_cross_validated_beside_the_others(
        tmp_path, world_dir):
    from fluxbridge.pipeline import train_step

    off = {"random_forest": False, "xgboost": False}
    cfg = _config(tmp_path, world_dir, "grown", baselines={**off, "published": False})
    train_step(cfg, progress=False)
    before = pd.read_csv(tmp_path / "grown" / "cv" / "predictions.csv")
    assert "published" not in before
    cfg = _config(tmp_path, world_dir, "grown", baselines={**off, "published": True})
    train_step(cfg, progress=False)
    after = pd.read_csv(tmp_path / "grown" / "cv" / "predictions.csv")
    pd.testing.assert_frame_equal(after[before.columns], before)  # the same networks' folds
    assert after["published"].notna().all()
    assert (tmp_path / "grown" / "models" / "published.pt").exists()
