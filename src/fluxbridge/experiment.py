"""The steps of one experiment, each resumable from what it left on disk.

:class:`Experiment` wires library functions together; it holds no science of its own.
Layout of a run directory::

    run.json, config.resolved.yaml, manifest.json
    world/                       the twin world (when synthesised)
    cv/predictions.csv           out-of-fold site predictions of every model (identical folds)
    cv/checkpoints/              per-epoch training checkpoints (resume after a kill)
    models/{name}.pt             final model artifacts (one file each, safe to load)
    upscaled/{name}/             gridded NEE (CF NetCDF), regional and global totals
    report.html, metrics.json    the evaluation
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fluxbridge.outputs import write_csv, write_json

if TYPE_CHECKING:
    from fluxbridge.config import ExperimentConfig
    from fluxbridge.pipeline import RunResult, RunState

log = logging.getLogger(__name__)

SITE_ONLY, DUAL, RF, XGB = "site_only", "dual", "rf", "xgboost"


class Experiment:
    """One experiment in its run directory.

    Parameters
    ----------
    cfg
        Validated, resolved configuration.
    state
        The run's ``run.json`` record (finished steps).
    progress
        Show progress bars.
    """

    def __init__(self, cfg: ExperimentConfig, state: RunState, progress: bool = True) -> None:
        self.cfg = cfg
        self.state = state
        self.progress = progress
        self.out = cfg.out_dir
        self.models_dir = self.out / "models"
        self.cv_dir = self.out / "cv"
        self.upscaled_dir = self.out / "upscaled"
        self.timings: dict[str, float] = {}

    # -- data -------------------------------------------------------------------------------
    @cached_property
    def manifest_path(self) -> Path:
        from fluxbridge.pipeline import ensure_world

        return self._step("world", lambda: ensure_world(self.cfg, self.progress))

    @cached_property
    def world(self) -> Any:
        from fluxbridge.io.world import open_world

        return open_world(self.manifest_path)

    @cached_property
    def samples(self) -> pd.DataFrame:
        from fluxbridge.features import site_samples

        return site_samples(self.world.sites, self.world.predictors,
                            features=self.cfg.features, meteo_from=self.cfg.meteo_from)

    @cached_property
    def grid(self) -> Any:
        from fluxbridge.features import GridFeatures

        return GridFeatures.from_dataset(self.world.predictors, self.world.regions,
                                         features=self.cfg.features)

    @property
    def model_names(self) -> list[str]:
        from fluxbridge.pipeline import baseline_kinds

        return [SITE_ONLY, DUAL, *baseline_kinds(self.cfg)]

    def _step(self, name: str, func: Any, **info: Any) -> Any:
        t0 = time.perf_counter()
        result = func()
        seconds = time.perf_counter() - t0
        self.timings[name] = seconds
        self.state.mark(name, seconds, **info)
        log.info("step %s finished in %.1f s", name, seconds)
        return result

    # -- training ---------------------------------------------------------------------------
    def cross_validate(self) -> pd.DataFrame:
        """Out-of-fold predictions of every model on identical site folds (cached on disk)."""
        path = self.cv_dir / "predictions.csv"
        if path.exists():
            return pd.read_csv(path, parse_dates=["time"])

        def run() -> pd.DataFrame:
            from fluxbridge.pipeline import baseline_kinds, train_settings
            from fluxbridge.training import cross_validate, make_folds

            cfg = self.cfg
            folds = make_folds(self.samples, cfg.validation.folds, kind=cfg.validation.split,
                               seed=cfg.seed)
            site_only = cross_validate(
                self.samples, train_settings(cfg, 0.0), kinds=("nn", *baseline_kinds(cfg)),
                folds=folds, checkpoint_dir=self.cv_dir / "checkpoints" / SITE_ONLY,
                progress=self.progress)
            dual = cross_validate(
                self.samples, train_settings(cfg, cfg.constraint.lambda_regional), kinds=("nn",),
                folds=folds, grid=self.grid, targets=self.world.targets,
                regions=self.world.regions, checkpoint_dir=self.cv_dir / "checkpoints" / DUAL,
                progress=self.progress)
            out = site_only.rename(columns={"nn": SITE_ONLY})
            out[DUAL] = dual["nn"].to_numpy()
            write_csv(out, path)
            return out

        return self._step("cross_validation", run)

    def train(self) -> dict[str, Path]:
        """Cross-validate, then fit the final models on all sites; returns artifact paths."""
        self.cross_validate()
        paths = {name: self.models_dir / f"{name}.pt" for name in self.model_names}
        if all(p.exists() for p in paths.values()):
            return paths

        def run() -> dict[str, Path]:
            from fluxbridge.pipeline import train_settings
            from fluxbridge.training import train_baseline, train_ensemble

            cfg = self.cfg
            sites = np.unique(self.samples["site"])
            for name in self.model_names:
                if paths[name].exists():
                    continue
                if name in (SITE_ONLY, DUAL):
                    lam = 0.0 if name == SITE_ONLY else cfg.constraint.lambda_regional
                    members = train_ensemble(
                        self.samples, train_settings(cfg, lam), train_sites=sites,
                        grid=self.grid, targets=self.world.targets, regions=self.world.regions,
                        checkpoint_dir=self.models_dir / "checkpoints" / name,
                        progress=self.progress)
                    model = members[0] if len(members) == 1 else members
                else:
                    model = train_baseline(name, self.samples, train_settings(cfg, 0.0),
                                           train_sites=sites)
                _save_models(model, paths[name], name)
            return paths

        return self._step("train", run)

    def load_models(self) -> dict[str, Any]:
        """The final models (a FittedModel or a list for ensembles) by name."""
        from fluxbridge.models.artifact import load_model

        out: dict[str, Any] = {}
        for name in self.model_names:
            files = sorted(self.models_dir.glob(f"{name}.pt")) or sorted(
                self.models_dir.glob(f"{name}.member*.pt"))
            members = [load_model(f) for f in files]
            out[name] = members[0] if len(members) == 1 else members
        return out

    # -- upscaling --------------------------------------------------------------------------
    def upscale(self) -> dict[str, Any]:
        """Gridded NEE, regional and global totals of every model (resumes by chunk)."""
        self.train()

        def run() -> dict[str, Any]:
            from fluxbridge.upscaling import upscale

            up = self.cfg.upscaling
            return upscale(
                self.load_models(), self.world.predictors, self.world.regions, self.upscaled_dir,
                scheduler=up.scheduler, n_workers=up.n_workers, time_chunk=up.time_chunk,
                fmt=up.format, provenance=self._provenance(), progress=self.progress)

        return self._step("upscale", run)

    def _provenance(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "inputs": [str(p) for p in self.world.files_list()]
            if hasattr(self.world, "files_list") else [str(self.manifest_path)],
            "corrections": self.world.targets.attrs.get("corrections", "none"),
        }

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> RunResult:
        """Score every model, draw the figures, write the report and the run manifest."""
        results = self.upscale()
        from fluxbridge.evaluation.experiment import evaluate_experiment

        return self._step("evaluate", lambda: evaluate_experiment(self, results))

    def run(self) -> RunResult:
        """All steps."""
        return self.evaluate()


def _save_models(model: Any, path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, list):
        for i, member in enumerate(model):
            member.name = name
            member.save(path.with_name(f"{name}.member{i}.pt"))
    else:
        model.name = name
        model.save(path)


__all__ = ["Experiment", "write_json"]
