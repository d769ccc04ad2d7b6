"""The run directory is fluxbridge's own: other files are never touched, one run at a time,
and a run resumes after a failure in any step to the products of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fluxbridge.config import load_config
from fluxbridge.errors import ConfigError
from fluxbridge.pipeline import evaluate_step, run_experiment, train_step, upscale_step
from fluxbridge.rundir import prepare_run
from fluxbridge.runlock import LOCK_NAME, RunLockedError

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 16, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}

CHEAP = {
    "network": {"width": 8, "depth": 1, "epochs": 2, "patience": 2, "batch_size": 512},
    "constraint": {"K": 4},
    "baselines": {"random_forest": False, "xgboost": False},
    "validation": {"folds": 2, "leave_region_out": False},
    "upscaling": {"scheduler": "synchronous", "time_chunk": 92},
    "tuning": {"regional": {"obs_per_step": 4}},
    "progress": False,
}
MODELS = ("site_only", "dual")


class Injected(RuntimeError):
    """A failure injected into a step."""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A user's folder: a twin world, an unrelated notes file."""
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("user")
    synthesize(root / "world", config=dict(TINY_WORLD), seed=3, progress=False)
    (root / "notes.txt").write_text("my notes\n")
    return root


def _yaml(root: Path, name: str, **extra) -> Path:
    """An experiment YAML in ``root`` (no out_dir unless given: runs/<name> beside it)."""
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "inputs": "world/inputs.yaml", **CHEAP,
                                    **extra}))
    return path


def _products(out: Path) -> dict[str, pd.DataFrame]:
    tables = {"cv": pd.read_csv(out / "cv" / "predictions.csv")}
    for name in MODELS:
        tables[name] = pd.read_csv(out / "upscaled" / name / "regional.csv")
    return tables


def _snapshot(folder: Path, skip: Path) -> dict[str, str]:
    """Digest of every file under ``folder`` outside ``skip``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_relative_to(skip)}


@pytest.fixture(scope="module")
def reference(root: Path) -> Iterator[Path]:
    """An uninterrupted run into runs/reference beside its YAML (torch threads as the command
    line sets them, so that float sums agree between runs)."""
    import torch

    from fluxbridge.cli import torch_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads())
    result = run_experiment(_yaml(root, "reference"), progress=False)
    assert result.out_dir == (root / "runs" / "reference").resolve()
    yield result.out_dir
    torch.set_num_threads(threads)


def _fail_on(monkeypatch: pytest.MonkeyPatch, target: object, name: str, call: int) -> None:
    """Make the ``call``-th call of ``target.name`` raise :class:`Injected` (earlier calls do
    their work)."""
    original = getattr(target, name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Injected(f"injected failure in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def test_failure_in_each_step_then_rerun_gives_the_uninterrupted_products(
        root, reference, monkeypatch):
    import fluxbridge.outputs.report as report
    import fluxbridge.pipeline as pipeline
    import fluxbridge.training as training
    import fluxbridge.upscaling.workflow as workflow

    cfg = _yaml(root, "resumed")
    out = root / "runs" / "resumed"
    before = _snapshot(root, skip=root / "runs")
    # each command fails, then runs again without --overwrite; a second call failing leaves
    # the site-only model's work of that step done and the dual model's not
    commands = [(train_step, (training, "cross_validate", 2)),
                (train_step, (pipeline.Experiment, "_fit", 2)), (train_step, None),
                (upscale_step, (workflow, "_assemble", 2)), (upscale_step, None),
                (evaluate_step, (report, "write_report", 1)), (evaluate_step, None)]
    for step, injection in commands:
        if injection is None:
            step(cfg)
            continue
        with monkeypatch.context() as m:
            _fail_on(m, *injection)
            with pytest.raises(Injected):
                step(cfg)
        assert json.loads((out / "run.json").read_text())["status"] == "failed"
        assert not (out / LOCK_NAME).exists()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    for key, table in _products(reference).items():
        pd.testing.assert_frame_equal(_products(out)[key], table, check_exact=True, obj=key)
    assert _snapshot(root, skip=root / "runs") == before


def test_overwrite_and_failed_runs_touch_no_other_file(root, reference, monkeypatch):
    import fluxbridge.upscaling.workflow as workflow

    cfg = _yaml(root, "reference")
    out = root / "runs" / "reference"
    (out / "mine.txt").write_text("the user's, in the run directory")
    before = _snapshot(root, skip=out)
    expected = _products(out)
    with monkeypatch.context() as m:
        _fail_on(m, workflow, "_assemble", 1)
        with pytest.raises(Injected):
            run_experiment(cfg, overwrite=True, progress=False)
    assert not (out / "upscaled" / "site_only" / "upscale.json").exists()  # products removed
    run_experiment(cfg, progress=False)
    assert _snapshot(root, skip=out) == before
    assert (out / "mine.txt").read_text() == "the user's, in the run directory"
    for key, table in expected.items():
        pd.testing.assert_frame_equal(_products(out)[key], table, check_exact=True, obj=key)


@pytest.mark.parametrize("out_dir", [".", "world"])
def test_folder_fluxbridge_did_not_make_is_refused(root, out_dir):
    cfg = _yaml(root, "intruder", out_dir=out_dir)
    before = _snapshot(root, skip=root / "runs")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="did not write"):
            run_experiment(cfg, overwrite=overwrite, progress=False)
    cfg.unlink()
    assert _snapshot(root, skip=root / "runs") == {k: v for k, v in before.items()
                                                   if k != "intruder.yaml"}


def test_overwrite_refuses_products_the_record_does_not_list(root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "complete", "steps": {},
                                              "products": ["run.json", "cv"]}))
    (out / "cv").mkdir()
    (out / "models").mkdir()
    (out / "models" / "theirs.pt").write_text("x")
    cfg = load_config(_yaml(root, "listed", out_dir=str(out)))
    with pytest.raises(ConfigError, match="models"):
        prepare_run(cfg, overwrite=True)
    assert (out / "models" / "theirs.pt").exists() and (out / "cv").exists()
    assert not (out / LOCK_NAME).exists()


def test_second_run_is_refused_naming_the_first_pid_and_a_stale_lock_is_taken_over(
        root, tmp_path):
    cfg = load_config(_yaml(root, "locked", out_dir=str(tmp_path / "run")))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            prepare_run(cfg)
    finally:
        holder.kill()
        holder.wait()
    state = prepare_run(cfg)  # the holder is gone: its lock is stale
    try:
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        state.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_cli_second_run_is_one_line(root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "running", "steps": {}}))
    (out / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(),
                                             "host": socket.gethostname()}))
    cfg = _yaml(root, "busy", out_dir=str(out))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "fluxbridge.cli", "-q", "train", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"process {os.getpid()}" in done.stderr
    shutil.rmtree(out)
