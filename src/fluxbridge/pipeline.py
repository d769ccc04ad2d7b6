"""The experiment workflow: world → samples → cross-validation → models → upscaling → report.

Each step writes its outputs atomically and records itself in ``run.json``; a rerun after a
kill skips finished steps, and training resumes from its per-epoch checkpoints. A finished run
directory is never overwritten without ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fluxbridge.config import ExperimentConfig, load_config, parse_config
from fluxbridge.errors import ConfigError
from fluxbridge.experiment import RF, XGB, Experiment
from fluxbridge.outputs.files import code_version, write_json

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    out_dir: Path
    manifest: Path
    report: Path
    headline: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """The headline table and where the report is, as printable text."""
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            table = self.headline.to_string(float_format=lambda v: f"{v:.3f}")
        return (f"{table}\n\nsteps (s): "
                + ", ".join(f"{k} {v:.0f}" for k, v in self.timings.items())
                + f"\nmanifest: {self.manifest}\nreport: {self.report}")


class RunState:
    """The ``run.json`` record of a run directory: finished steps, version, inputs."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / "run.json"
        self.data: dict[str, Any] = (json.loads(self.path.read_text()) if self.path.exists()
                                     else {"status": "running", "steps": {}})

    @property
    def complete(self) -> bool:
        return self.data.get("status") == "complete"

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def mark(self, step: str, seconds: float, **info: Any) -> None:
        self.data["steps"][step] = {"seconds": round(seconds, 2), **info}
        self.save()

    def save(self) -> None:
        write_json(self.data, self.path)

    def record_inputs(self, files: list[Path]) -> None:
        """Store the run's input files (absolute path, size in bytes, modification time)."""
        entries = []
        for f in files:
            path = Path(f).resolve()
            stat = path.stat() if path.exists() else None
            entries.append({"path": str(path), "bytes": stat.st_size if stat else None,
                            "modified": (datetime.fromtimestamp(stat.st_mtime, UTC)
                                         .isoformat(timespec="seconds") if stat else None)})
        self.data["inputs"] = entries
        self.save()


def _record_inputs(state: RunState, exp: Experiment) -> None:
    state.record_inputs([exp.manifest_path, *exp.world.files_list()])


def _as_config(config: str | Path | ExperimentConfig) -> ExperimentConfig:
    return config if isinstance(config, ExperimentConfig) else load_config(config)


def prepare_run(cfg: ExperimentConfig, overwrite: bool = False) -> RunState:
    """Check inputs before any work, set up the run directory, store the resolved config.

    Raises
    ------
    ConfigError
        If the run directory holds a finished run (and ``overwrite`` is false), or if the
        configuration points at files that do not exist.
    """
    out = cfg.out_dir
    if (out / "run.json").exists():
        state = RunState(out)
        if state.complete and not overwrite:
            raise ConfigError("run directory holds a finished run; pass --overwrite to replace it",
                              path=out)
        if overwrite:
            shutil.rmtree(out)
    if not cfg.world.manifest.exists() and not cfg.world.synthesize:
        raise ConfigError("world manifest not found and world.synthesize is false",
                          path=cfg.world.manifest, variable="world.manifest",
                          expected="an existing manifest.json")
    if cfg.world.config is not None and not cfg.world.config.is_file():
        raise ConfigError("world configuration not found", path=cfg.world.config,
                          variable="world.config", expected="an existing YAML file")
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out)
    state.data.update(fluxbridge_version=code_version(), name=cfg.name)
    state.save()
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return state


def ensure_world(cfg: ExperimentConfig, progress: bool = True) -> Path:
    """The world's manifest path, synthesising the twin world first when needed."""
    manifest = cfg.world.manifest
    if manifest.exists():
        return manifest
    from fluxbridge.synthetic import synthesize

    return synthesize(manifest.parent, config=cfg.world.config, seed=cfg.world.seed,
                      overwrite=True, progress=progress)


def train_settings(cfg: ExperimentConfig, lambda_regional: float) -> Any:
    """Map the experiment configuration to the training settings of :mod:`fluxbridge.training`."""
    from fluxbridge.training import TrainSettings

    fields = {**cfg.network.model_dump(), **cfg.constraint.model_dump(),
              **cfg.baselines.model_dump(exclude={"random_forest", "xgboost"})}
    fields.update(lambda_regional=lambda_regional, seed=cfg.seed, features=tuple(cfg.features))
    return TrainSettings(**fields)


def baseline_kinds(cfg: ExperimentConfig) -> list[str]:
    """The baseline learners an experiment runs."""
    return ([RF] if cfg.baselines.random_forest else []) + (
        [XGB] if cfg.baselines.xgboost else [])


def run_experiment(config: str | Path | ExperimentConfig, overwrite: bool = False,
                   progress: bool = True) -> RunResult:
    """Run every step of an experiment; resumes a killed run from its finished steps.

    Parameters
    ----------
    config
        Path of the experiment YAML, or a validated configuration.
    overwrite
        Replace a finished run in the same directory.
    progress
        Show progress bars.

    Returns
    -------
    RunResult
        Paths of the manifest and report, the headline table and step timings.
    """
    cfg = _as_config(config)
    progress = progress and cfg.progress
    state = prepare_run(cfg, overwrite=overwrite)

    exp = Experiment(cfg, state, progress=progress)
    try:
        result = exp.run()
    except Exception as exc:  # recorded for the user, then raised unchanged
        state.data.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        state.save()
        raise
    _record_inputs(state, exp)
    state.data["status"] = "complete"
    state.data.pop("error", None)
    state.save()
    return result


def demo_config(out: str | Path) -> ExperimentConfig:
    """The configuration of ``make demo``: the twin-world experiment in ``out``."""
    return parse_config({"name": "demo", "out_dir": str(Path(out).resolve())})


def run_demo(out: str | Path = "runs/demo", overwrite: bool = False,
             progress: bool = True) -> RunResult:
    """Run the twin-world demo experiment into ``out`` (see :func:`run_experiment`)."""
    return run_experiment(demo_config(out), overwrite=overwrite, progress=progress)


def train_step(config: str | Path | ExperimentConfig, overwrite: bool = False,
               progress: bool = True) -> Path:
    """Train the models of an experiment (and its cross-validation); returns the models dir."""
    cfg = _as_config(config)
    state = prepare_run(cfg, overwrite=overwrite)

    exp = Experiment(cfg, state, progress=progress and cfg.progress)
    exp.train()
    _record_inputs(state, exp)
    return exp.models_dir


def upscale_step(config: str | Path | ExperimentConfig, scheduler: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> Path:
    """Upscale the trained models of an experiment; returns the directory of gridded NEE."""
    cfg = _as_config(config)
    if scheduler is not None:
        cfg = cfg.model_copy(update={"upscaling": cfg.upscaling.model_copy(
            update={"scheduler": scheduler})})
    state = prepare_run(cfg, overwrite=overwrite)

    exp = Experiment(cfg, state, progress=progress and cfg.progress)
    exp.upscale()
    _record_inputs(state, exp)
    return exp.upscaled_dir


def evaluate_step(config: str | Path | ExperimentConfig, overwrite: bool = False) -> Path:
    """Evaluate an experiment's upscaled models and write the report; returns its path."""
    cfg = _as_config(config)
    state = prepare_run(cfg, overwrite=overwrite)

    exp = Experiment(cfg, state, progress=cfg.progress)
    report = exp.evaluate().report
    _record_inputs(state, exp)
    return report

