"""The run directory: its ``run.json`` record of finished steps, and what may replace it.

A run directory is fluxbridge's own: made by it (or empty when named), marked by its run record,
and locked while a run works there (:mod:`fluxbridge.runlock`). ``--overwrite`` removes only
the products the record lists, never other files.

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
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import ConfigError, InputError
from fluxbridge.models.artifact import FittedModel
from fluxbridge.models.torchfile import read_torch_file
from fluxbridge.outputs.files import code_version, write_json
from fluxbridge.runlock import LOCK_NAME, RunLock

log = logging.getLogger(__name__)

RUN_RECORD = "run.json"
TEMPORARY_NAME = re.compile(r"\..+\.\d+\.tmp")
"""Names of fluxbridge's temporaries (:func:`fluxbridge.outputs.files.atomic_path`:
``.{name}.{pid}.tmp``), left by writes that a kill interrupted."""
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
    """The ``run.json`` record of a run directory: finished steps, version, inputs, and the
    products the run owns there.

    Parameters
    ----------
    out_dir
        The run directory.
    lock
        The directory's lock, held by this process while it works there.
    """

    def __init__(self, out_dir: Path, lock: RunLock | None = None) -> None:
        self.path = out_dir / RUN_RECORD
        self.lock = lock
        self.data: dict[str, Any] = (json.loads(self.path.read_text()) if self.path.exists()
                                     else {"status": "running", "steps": {}})

    def release(self) -> None:
        """Release the run directory's lock (another run may then work there)."""
        if self.lock is not None:
            self.lock.release()

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


def _read_record(out: Path) -> dict[str, Any] | None:
    """The run record of ``out``, or None when there is none (a folder fluxbridge did not
    make)."""
    path = out / RUN_RECORD
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable run record ({type(exc).__name__}); remove the folder "
                          "or choose another out_dir", path=path, variable="out_dir",
                          expected="run.json written by fluxbridge") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
        raise ConfigError("not a fluxbridge run record", path=path, variable="out_dir",
                          expected="run.json written by fluxbridge")
    return data


def _check_owned(out: Path, keep: set[Path]) -> None:
    """Refuse a folder that holds files and no fluxbridge run record.

    ``keep`` are paths in it that the experiment itself names (its twin world's folder).
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError("not a folder", path=out, variable="out_dir",
                          expected="a new or empty folder, or a fluxbridge run directory")
    if (out / RUN_RECORD).exists():
        return
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name != LOCK_NAME and p.resolve() not in keep)
    if foreign:
        raise ConfigError(
            f"folder holds {len(foreign)} file(s) fluxbridge did not write ({foreign[:3]}) and "
            "no run record", path=out, variable="out_dir",
            expected="a new or empty folder, or a fluxbridge run directory (with run.json)")


def _remove_products(out: Path, record: dict[str, Any]) -> None:
    """Remove what the run record lists as the run's own (names of :data:`RUN_PRODUCTS`
    only); refuse when a product name is present that the record does not list."""
    listed = [n for n in record.get("products", []) if n in RUN_PRODUCTS]
    unlisted = [n for n in RUN_PRODUCTS if n not in listed and (out / n).exists()]
    if unlisted:
        raise ConfigError(f"{unlisted} not written by this run; --overwrite leaves them, so "
                          "move them away first", path=out, variable="out_dir",
                          expected="only files the run record lists")
    for name in listed:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_temporaries(out: Path) -> list[Path]:
    """Remove fluxbridge's temporaries (:data:`TEMPORARY_NAME`) that killed writes left in
    the run directory ``out`` (not following links); call it holding the directory's lock.

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    for root, dirs, files in os.walk(out):
        for name in [*files, *dirs]:
            path = Path(root, name)
            if not TEMPORARY_NAME.fullmatch(name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                dirs.remove(name)
            else:
                path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of interrupted writes in %s", len(removed), out)
    return removed


def discard_corrupt_checkpoints(out: Path) -> list[str]:
    """Remove training checkpoints under ``out`` that cannot be read (a disk error, a copy cut
    short), each with a warning naming it: the model they belong to trains again from its
    first epoch. Call it holding the run directory's lock.

    Returns
    -------
    list of str
        The one-line reason of each checkpoint removed.
    """
    from fluxbridge.training.checkpoint import CHECKPOINT_NAME

    discarded = []
    for path in sorted(out.rglob(CHECKPOINT_NAME)):
        try:
            read_torch_file(path, expected="a training checkpoint written by fluxbridge")
        except InputError as exc:
            path.unlink()
            log.warning("%s; discarded, its model trains again from the first epoch", exc)
            discarded.append(str(exc))
    return discarded


def prepare_run(cfg: ExperimentConfig, overwrite: bool = False) -> RunState:
    """Set up the run directory, lock it and store the resolved configuration.

    The directory is fluxbridge's own: made by it, or holding its run record. Its record lists
    the products the run may write there (:data:`RUN_PRODUCTS` not present before).

    Returns
    -------
    RunState
        The run's record, holding the directory's lock (:meth:`RunState.release` it).

    Raises
    ------
    ConfigError
        If the folder holds files and no run record; if another process runs in it; if it holds
        a finished run and ``overwrite`` is false. With ``overwrite`` only what the record lists
        is removed, never other files there. Temporaries of writes a kill interrupted are
        removed (:func:`remove_temporaries`), and so are unreadable training checkpoints
        (:func:`discard_corrupt_checkpoints`: their models train again, with a warning that
        run.json keeps under ``discarded_checkpoints``).
    """
    out = cfg.out_dir
    if cfg.world is not None and cfg.world.config is not None \
            and not cfg.world.config.is_file():
        raise ConfigError("world configuration not found", path=cfg.world.config,
                          variable="world.config", expected="an existing YAML file")
    _check_owned(out, {cfg.world.dir.resolve()} if cfg.world is not None else set())
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out).acquire()
    try:
        record = _read_record(out)
        discarded = []
        if record is not None:
            remove_temporaries(out)
            discarded = discard_corrupt_checkpoints(out)
        if record is not None and overwrite:
            _remove_products(out, record)
        elif record is not None and record.get("status") == "complete":
            raise ConfigError("run directory holds a finished run; pass --overwrite to "
                              "replace it", path=out)
        state = RunState(out, lock)
        if record is None or overwrite:
            state.data["products"] = [n for n in RUN_PRODUCTS if not (out / n).exists()]
        state.data.update(fluxbridge_version=code_version(), name=cfg.name)
        if discarded:
            state.data.setdefault("discarded_checkpoints", []).extend(discarded)
        state.save()
        (out / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    except BaseException:
        lock.release()
        raise
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
