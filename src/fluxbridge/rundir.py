"""The run directory: its ``run.json`` record of finished steps, and what may replace it.

Layout of a run directory::

    run.json, config.resolved.yaml, manifest.json
    cv/predictions.csv           out-of-fold site predictions of every model (identical folds)
    cv/checkpoints/              per-epoch training checkpoints (resume after a kill)
    models/{name}.pt             final model artifacts (one file each, safe to load)
    upscaled/{name}/             gridded NEE (CF NetCDF), regional and global totals
    leave_region_out/            each region's totals from the run that withheld its targets
    report.html, metrics.json    the evaluation
    headline.png                 the report's headline figure, for slides
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import ConfigError
from fluxbridge.models.artifact import FittedModel
from fluxbridge.outputs.files import code_version, write_json

RUN_RECORD = "run.json"
# what a run writes in its directory: --overwrite removes these and nothing else
RUN_PRODUCTS = (RUN_RECORD, "config.resolved.yaml", "manifest.json", "cv", "models", "upscaled",
                "leave_region_out", "sparsity", "report.html", "metrics.json", "headline.png",
                "figures")


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
        self.path = out_dir / RUN_RECORD
        self.data: dict[str, Any] = (json.loads(self.path.read_text()) if self.path.exists()
                                     else {"status": "running", "steps": {}})

    @property
    def complete(self) -> bool:
        """Whether every step finished."""
        return self.data.get("status") == "complete"

    def mark(self, step: str, seconds: float, **info: Any) -> None:
        """Record a finished step and its duration [s]."""
        self.data["steps"][step] = {"seconds": round(seconds, 2), **info}
        self.save()

    def save(self) -> None:
        """Write the record (atomically)."""
        write_json(self.data, self.path)

    def finish(self, files: list[Path]) -> None:
        """Mark the run complete and store its input files (path, size [byte], time)."""
        entries = []
        for f in files:
            path = Path(f).resolve()
            stat = path.stat() if path.exists() else None
            entries.append({"path": str(path), "bytes": stat.st_size if stat else None,
                            "modified": (datetime.fromtimestamp(stat.st_mtime, UTC)
                                         .isoformat(timespec="seconds") if stat else None)})
        self.data.update(inputs=entries, status="complete")
        self.data.pop("error", None)
        self.save()

    def fail(self, exc: BaseException) -> None:
        """Record why the run stopped."""
        self.data.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        self.save()


def _remove_products(out: Path) -> None:
    """Remove what a run wrote in ``out`` (the files and folders of :data:`RUN_PRODUCTS`)."""
    for name in RUN_PRODUCTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def prepare_run(cfg: ExperimentConfig, overwrite: bool = False) -> RunState:
    """Set up the run directory and store the resolved configuration.

    Raises
    ------
    ConfigError
        If the run directory holds a finished run and ``overwrite`` is false. With
        ``overwrite`` only the run's own products are removed, never other files there.
    """
    out = cfg.out_dir
    if (out / RUN_RECORD).exists():
        if RunState(out).complete and not overwrite:
            raise ConfigError("run directory holds a finished run; pass --overwrite to replace it",
                              path=out)
        if overwrite:
            _remove_products(out)
    if cfg.world is not None and cfg.world.config is not None \
            and not cfg.world.config.is_file():
        raise ConfigError("world configuration not found", path=cfg.world.config,
                          variable="world.config", expected="an existing YAML file")
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out)
    state.data.update(fluxbridge_version=code_version(), name=cfg.name)
    state.save()
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return state


def write_run_manifest(out: Path, *, name: str, inputs: dict[str, Path | list[Path]],
                       models: dict[str, dict[str, Path]], report: Path) -> Path:
    """Write ``manifest.json``: the run's inputs by role and its products, paths relative to
    the run directory where they lie in it, with the products' units."""
    def rel(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(out)) if p.is_relative_to(out) else str(p)

    manifest = {
        "name": name,
        "inputs": {role: [rel(p) for p in paths] if isinstance(paths, list) else rel(paths)
                   for role, paths in inputs.items()},
        "models": {m: {k: rel(p) for k, p in entry.items()} for m, entry in models.items()},
        "cv_predictions": rel(out / "cv" / "predictions.csv"),
        "metrics": rel(out / "metrics.json"),
        "report": rel(report),
        "config": "config.resolved.yaml",
        "units": {"grid": "g m-2 d-1 (carbon, positive to the atmosphere)",
                  "regional": "Tg month-1 of carbon"},
    }
    return write_json(manifest, out / "manifest.json")


def model_files(models_dir: Path, name: str) -> list[Path]:
    """Artifact files of a model: ``{name}.pt``, or ``{name}.member{i}.pt`` for ensembles."""
    return sorted(models_dir.glob(f"{name}.pt")) or sorted(
        models_dir.glob(f"{name}.member*.pt"))


def save_models(model: FittedModel | list[FittedModel], models_dir: Path, name: str) -> None:
    """Save a model (``{name}.pt``) or an ensemble (``{name}.member{i}.pt``) under ``name``."""
    models_dir.mkdir(parents=True, exist_ok=True)
    for i, member in enumerate(model if isinstance(model, list) else [model]):
        member.name = name
        member.save(models_dir / (f"{name}.member{i}.pt" if isinstance(model, list)
                                  else f"{name}.pt"))
