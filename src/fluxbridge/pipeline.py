"""The experiment, step by step: read :meth:`Experiment.run` from top to bottom.

    inputs → cross-validation → models → upscaling → leave-region-out → (sparsity) → evaluation

Each step is named, takes what the steps before it made, records itself in ``run.json`` (and
one line in the log) and is skipped when its outputs are on disk; training resumes from
per-epoch checkpoints and upscaling by chunk. Every input is checked before any training.
The run directory's layout is in :mod:`fluxbridge.rundir`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from fluxbridge import run_models
from fluxbridge.climatology import time_axis_attrs
from fluxbridge.config import ExperimentConfig, load_config
from fluxbridge.errors import InputError
from fluxbridge.features import site_samples
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.inputs import World, open_inputs
from fluxbridge.io.run_products import read_predictions, write_predictions
from fluxbridge.io.towers import TowerObservations, towers_of
from fluxbridge.models.artifact import FittedModel, load_model
from fluxbridge.outputs.files import write_csv
from fluxbridge.progress import format_seconds
from fluxbridge.readback import estimator_error, mean_maps, optional_truth, transfer_oracle
from fluxbridge.run_models import DUAL, SITE_ONLY, TREES
from fluxbridge.rundir import (
    RunResult,
    RunState,
    model_files,
    prepare_run,
    save_models,
    write_run_manifest,
)
from fluxbridge.validate import check_experiment

log = logging.getLogger(__name__)

T = TypeVar("T")
Model = FittedModel | list[FittedModel]


class Experiment:
    """One experiment in its run directory.

    Parameters
    ----------
    cfg
        Validated, resolved configuration.
    state
        The run's ``run.json`` record.
    progress
        Show the progress of each step.
    """

    def __init__(self, cfg: ExperimentConfig, state: RunState, progress: bool = True) -> None:
        self.cfg, self.state, self.progress = cfg, state, progress
        self.out = cfg.out_dir
        self.models_dir = self.out / "models"
        self.cv_dir = self.out / "cv"
        self.upscaled_dir = self.out / "upscaled"
        self.lro_dir = self.out / "leave_region_out"
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def run(self) -> RunResult:
        """Every step, in order."""
        self._step("inputs", self.check)
        predictions = self.cross_validate()
        models = self.train()
        products = self.upscale(models)
        heldout = self.leave_region_out()
        sparsity = self.sparsity()
        return self.evaluate(predictions, products, heldout, sparsity)

    def check(self) -> World:
        """Every input and the dask scheduler checked, all problems listed together."""
        world = check_experiment(self.inputs, self.cfg)
        _ = self.towers  # tower observations matched before any training
        return world

    # -- the data ---------------------------------------------------------------------------
    @cached_property
    def inputs(self) -> World:
        """Every input, by role (a twin world synthesised first when the experiment has one
        and it is absent)."""
        world = self.cfg.world
        if world is not None and not (world.dir / "inputs.yaml").exists():
            from fluxbridge.synthetic import synthesize

            self._step("world", lambda: synthesize(world.dir, config=world.config,
                                                   seed=world.seed, overwrite=True,
                                                   progress=self.progress))
        spec, base = self.cfg.input_spec()
        return open_inputs(spec, base, **self.cfg.input_options())

    @cached_property
    def samples(self) -> pd.DataFrame:
        """Site samples: NEE and the predictors at the towers (sites left out recorded in
        ``run.json``)."""
        samples = site_samples(self.inputs.sites, self.inputs.predictors,
                               features=self.cfg.features, meteo_from=self.cfg.meteo_from)
        self.state.data["dropped_sites"] = samples.attrs["dropped_sites"]
        self.state.save()
        return samples

    @cached_property
    def grid(self) -> GridFeatures:
        """The land cells' predictors in memory, for the observation operator."""
        return GridFeatures.from_dataset(self.inputs.predictors, self.inputs.regions,
                                         features=self.cfg.features)

    @cached_property
    def towers(self) -> TowerObservations | None:
        """Tower observations of the dual model's footprint term (None: no tower inputs)."""
        return towers_of(self.inputs.files)

    @property
    def model_names(self) -> list[str]:
        """Every model of the experiment (:func:`.run_models.model_names`)."""
        return run_models.model_names(self.cfg, self.towers)

    def _constraint(self) -> dict[str, Any]:
        return {"grid": self.grid, "targets": self.inputs.targets,
                "regions": self.inputs.regions}

    def _step(self, name: str, func: Callable[[], T]) -> T:
        """Run one step, record its time and log one line: its time and the run's so far."""
        t0 = time.perf_counter()
        result = func()
        seconds = time.perf_counter() - t0
        self.timings[name] = seconds
        self.state.mark(name, seconds)
        log.info("== %s done in %s (run so far %s)", name.replace("_", "-"),
                 format_seconds(seconds), format_seconds(time.perf_counter() - self.started))
        return result

    # -- the steps --------------------------------------------------------------------------
    def cross_validate(self) -> pd.DataFrame:
        """Out-of-fold site predictions of every model on identical site folds (made again,
        from the folds' checkpoints, when a model was added since)."""
        path = self.cv_dir / "predictions.csv"
        wanted = [n for n in self.model_names if n not in run_models.TOWER_MODELS]
        if path.exists() and set(wanted) <= set(done := read_predictions(path)):
            return done

        def run() -> pd.DataFrame:
            from fluxbridge.training import cross_validate, make_folds

            cfg = self.cfg
            folds = make_folds(self.samples, cfg.validation.folds, kind=cfg.validation.split,
                               seed=cfg.seed)
            trees = tuple(n for n in self.model_names if n in TREES)
            out = cross_validate(
                self.samples, cfg.with_lambda(0.0), kinds=("nn", *trees), folds=folds,
                checkpoint_dir=self.cv_dir / "checkpoints" / SITE_ONLY, progress=self.progress)
            out = out.rename(columns={"nn": SITE_ONLY})
            for name in (n for n in self.model_names if n in run_models.CONSTRAINED):
                net_cfg, towers = run_models.network_terms(name, cfg, self.towers)
                fold = cross_validate(
                    self.samples, net_cfg, kinds=("nn",), folds=folds, **self._constraint(),
                    towers=towers, checkpoint_dir=self.cv_dir / "checkpoints" / name,
                    progress=self.progress, name=name)
                out[name] = fold["nn"].to_numpy()
                out.attrs["seconds_per_fold"].update(fold.attrs["seconds_per_fold"])
            write_predictions(out, path)
            return out

        return self._step("cross_validation", run)

    def train(self) -> dict[str, Model]:
        """The final models, fitted on every site (each saved as soon as it is trained)."""
        def run() -> dict[str, Model]:
            for name in self.model_names:
                if not model_files(self.models_dir, name):
                    t0 = time.perf_counter()
                    save_models(self._fit(name), self.models_dir, name)
                    log.info("%s trained in %s", name, format_seconds(time.perf_counter() - t0))
            return self.load_models()

        if all(model_files(self.models_dir, n) for n in self.model_names):
            return self.load_models()
        return self._step("train", run)

    def _fit(self, name: str) -> Model:
        from fluxbridge.training import train_baseline, train_ensemble

        sites = np.unique(self.samples["site"])
        if name in TREES:
            return train_baseline(name, self.samples, self.cfg, train_sites=sites)
        cfg, towers = run_models.network_terms(name, self.cfg, self.towers)
        members = train_ensemble(self.samples, cfg, train_sites=sites, **self._constraint(),
                                 towers=towers, progress=self.progress, name=name,
                                 checkpoint_dir=self.models_dir / "checkpoints" / name)
        return members[0] if len(members) == 1 else members

    def load_models(self) -> dict[str, Model]:
        """The final models (a FittedModel, or a list for ensembles) by name."""
        out: dict[str, Model] = {}
        for name in self.model_names:
            members = [load_model(f) for f in model_files(self.models_dir, name)]
            out[name] = members[0] if len(members) == 1 else members
        return out

    def upscale(self, models: dict[str, Model]) -> dict[str, Any]:
        """Gridded NEE, regional and global totals of every model (resumes by chunk; complete
        products of the same models are kept)."""
        from fluxbridge.upscaling import upscale

        up = self.cfg.upscaling
        provenance = {"config": self.cfg.to_dict(),
                      "inputs": [str(p) for p in self.inputs.files_list()],
                      "corrections": self.inputs.targets.attrs.get("corrections", "none"),
                      **time_axis_attrs(self.inputs.predictors, self.inputs.targets)}
        return self._step("upscale", lambda: upscale(
            models, self.inputs.predictors, self.inputs.regions, self.upscaled_dir,
            scheduler=up.scheduler, n_workers=up.n_workers, time_chunk=up.time_chunk,
            fmt=up.format, provenance=provenance, progress=self.progress, resume=True))

    def leave_region_out(self) -> pd.DataFrame | None:
        """Each region's totals from a dual model trained without that region's targets
        (``heldout, region, time, nee_tgc``); None when off or without a constraint."""
        cfg = self.cfg
        if not cfg.validation.leave_region_out or not cfg.constrained:
            return None
        path = self.lro_dir / "series.csv"
        if path.exists():
            return pd.read_csv(path, dtype={"heldout": str, "region": str, "time": str})

        def run() -> pd.DataFrame:
            from fluxbridge.studies.leave_region_out import leave_region_out

            out = leave_region_out(self.samples, cfg, **self._constraint(), towers=self.towers,
                                   train_sites=np.unique(self.samples["site"]),
                                   cache_dir=self.lro_dir, progress=self.progress)
            write_csv(out, path)
            return out

        return self._step("leave_region_out", run)

    def sparsity(self) -> pd.DataFrame | None:
        """The dual model trained with every estimator and K, scored against the truth (or
        the inversions); None unless ``validation.sparsity_study``."""
        cfg = self.cfg
        if not cfg.validation.sparsity_study:
            return None
        path = self.out / "sparsity" / "table.csv"
        if path.exists():
            return pd.read_csv(path)

        def run() -> pd.DataFrame:
            from fluxbridge.evaluation.regional import targets_frames
            from fluxbridge.studies.sparsity import sparsity_study
            from fluxbridge.training import split_validation

            fit, val = split_validation(np.unique(self.samples["site"]),
                                        cfg.tuning.training.val_fraction, cfg.seed)
            truth = optional_truth(self.inputs)
            reference = truth if truth is not None else targets_frames(self.inputs.targets)[0]
            table = sparsity_study(self.samples, cfg, **self._constraint(), reference=reference,
                                   train_sites=fit, val_sites=val, progress=self.progress)
            write_csv(table, path)
            return table

        return self._step("sparsity_study", run)

    def evaluate(self, predictions: pd.DataFrame, products: dict[str, Any],
                 heldout: pd.DataFrame | None, sparsity: pd.DataFrame | None) -> RunResult:
        """Score every model, draw the figures, write the report and the run manifest."""
        from fluxbridge.evaluation.summary import summarise_run
        from fluxbridge.outputs.report import write_report

        def run() -> RunResult:
            truth = optional_truth(self.inputs)
            series = {n: pd.read_csv(products[n].regional_csv) for n in self.model_names
                      if n not in run_models.TOWER_MODELS}
            oracle = None if heldout is None else transfer_oracle(
                series[SITE_ONLY], truth, self.inputs, self.grid, self.cfg)
            summary = summarise_run(
                predictions, series, self.inputs.targets, truth=truth,
                maps=self._maps(products), heldout=heldout, heldout_oracle=oracle,
                estimator_error=estimator_error(products[DUAL].grid, products[SITE_ONLY].grid,
                                                self.grid, self.inputs, self.cfg),
                sparsity=sparsity, sparsity_settings={
                    "epochs": self.cfg.network.epochs,
                    "reference": "inversions" if truth is None else "truth"},
                predictors_period=self.inputs.predictors.attrs.get("climatology_period"))
            run_models.add_section(summary, products, self.towers, self.grid, self.inputs, truth)
            report = write_report(self.out, title=f"fluxbridge — {self.cfg.name}",
                                  sections=summary.sections,
                                  metrics={**summary.metrics, "timings_s": self.timings},
                                  pngs={"headline.png": summary.headline_figure})
            manifest = self._write_manifest(products, report)
            return RunResult(self.out, manifest, report, summary.headline, self.timings)

        return self._step("evaluate", run)

    def _maps(self, products: dict[str, Any]) -> dict[str, Any]:
        """Time-mean NEE maps of the site-only and dual products (and of the truth)."""
        try:
            truth = self.inputs.truth_grid
        except InputError:
            truth = None
        return mean_maps(products, SITE_ONLY, DUAL, truth)

    def _write_manifest(self, products: dict[str, Any], report: Path) -> Path:
        models = {n: {"grid": products[n].grid, "grid_monthly": products[n].grid_monthly,
                      "regional": products[n].regional_csv, "global": products[n].global_csv,
                      "artifact": self.models_dir / f"{n}.pt"} for n in self.model_names}
        return write_run_manifest(self.out, name=self.cfg.name, inputs=self.inputs.files,
                                  models=models, report=report)


# -- the public entry points (one per CLI command) -------------------------------------------
def _open(config: str | Path | ExperimentConfig, overwrite: bool, progress: bool
          ) -> Experiment:
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    inputs = None
    if cfg.world is None:  # every named file found before the run directory is touched
        inputs = open_inputs(*cfg.input_spec(), **cfg.input_options())
    exp = Experiment(cfg, prepare_run(cfg, overwrite=overwrite), progress and cfg.progress)
    if inputs is not None:
        exp.inputs = inputs
    return exp


def _finished(exp: Experiment, func: Callable[[], T]) -> T:
    """Run ``func``, recording a failure in run.json; the run directory's lock is released
    however it ends."""
    try:
        return func()
    except Exception as exc:  # recorded for the user, then raised unchanged
        exp.state.fail(exc)
        raise
    finally:
        exp.state.release()


def run_experiment(config: str | Path | ExperimentConfig, overwrite: bool = False,
                   progress: bool = True) -> RunResult:
    """Run every step of an experiment; resumes a killed or failed run from its finished steps.

    Parameters
    ----------
    config
        Path of the experiment YAML, or a validated configuration.
    overwrite
        Replace a finished run in the same directory (only the run's own products).
    progress
        Show progress bars.
    """
    exp = _open(config, overwrite, progress)

    def run() -> RunResult:
        result = exp.run()
        exp.state.finish(exp.inputs.files_list())
        return result

    return _finished(exp, run)


def train_step(config: str | Path | ExperimentConfig, overwrite: bool = False,
               progress: bool = True) -> Path:
    """Check the inputs, cross-validate and train the models; returns the models folder."""
    exp = _open(config, overwrite, progress)
    _finished(exp, lambda: (exp._step("inputs", exp.check), exp.cross_validate(),
                            exp.train()))
    return exp.models_dir


def upscale_step(config: str | Path | ExperimentConfig, scheduler: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> Path:
    """Upscale the trained models (training them first if needed); returns the folder."""
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if scheduler is not None:
        cfg = cfg.model_copy(update={"upscaling": cfg.upscaling.model_copy(
            update={"scheduler": scheduler})})
    exp = _open(cfg, overwrite, progress)
    _finished(exp, lambda: (exp._step("inputs", exp.check), exp.cross_validate(),
                            exp.upscale(exp.train())))
    return exp.upscaled_dir


def evaluate_step(config: str | Path | ExperimentConfig, overwrite: bool = False) -> Path:
    """Evaluate the experiment (running what it still lacks) and write the report."""
    return run_experiment(config, overwrite=overwrite, progress=False).report
