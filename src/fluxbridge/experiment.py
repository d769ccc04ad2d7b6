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

from fluxbridge.outputs.files import write_csv, write_json

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
        self.lro_dir = self.out / "leave_region_out"
        self.timings: dict[str, float] = {}

    # -- data -------------------------------------------------------------------------------
    @cached_property
    def manifest_path(self) -> Path:
        from fluxbridge.pipeline import ensure_world

        return self._step("world", lambda: ensure_world(self.cfg, self.progress))

    @cached_property
    def world(self) -> Any:
        from fluxbridge.io.inputs import open_world

        return open_world(self.manifest_path)

    @cached_property
    def samples(self) -> pd.DataFrame:
        from fluxbridge.features import site_samples

        return site_samples(self.world.sites, self.world.predictors,
                            features=self.cfg.features, meteo_from=self.cfg.meteo_from)

    @cached_property
    def grid(self) -> Any:
        from fluxbridge.grid_features import GridFeatures

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
        if all(self._model_files(n) for n in self.model_names):
            return paths

        def run() -> dict[str, Path]:
            from fluxbridge.pipeline import train_settings
            from fluxbridge.training import train_baseline, train_ensemble

            cfg = self.cfg
            sites = np.unique(self.samples["site"])
            for name in self.model_names:
                if self._model_files(name):
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

    def _model_files(self, name: str) -> list[Path]:
        """Artifact files of a model: ``{name}.pt``, or ``{name}.member{i}.pt`` for ensembles."""
        return sorted(self.models_dir.glob(f"{name}.pt")) or sorted(
            self.models_dir.glob(f"{name}.member*.pt"))

    def load_models(self) -> dict[str, Any]:
        """The final models (a FittedModel or a list for ensembles) by name."""
        from fluxbridge.models.artifact import load_model

        out: dict[str, Any] = {}
        for name in self.model_names:
            members = [load_model(f) for f in self._model_files(name)]
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
            "inputs": [str(p) for p in self.world.files_list()],
            "corrections": self.world.targets.attrs.get("corrections", "none"),
        }

    # -- leave-region-out and the sparsity study -------------------------------------------
    def leave_region_out(self) -> pd.DataFrame | None:
        """The dual model once per region without that region's targets (cached on disk).

        Each run uses the final dual model's settings, seeds and sites; only the withheld
        region's targets are missing. Returns ``heldout, region, time, nee_tgc`` (each region's
        totals from the run that withheld it), or None when ``validation.leave_region_out`` is
        off or there is no constraint (λ = 0).
        """
        cfg = self.cfg
        if not cfg.validation.leave_region_out or cfg.constraint.lambda_regional <= 0:
            return None
        path = self.lro_dir / "series.csv"
        if path.exists():
            return pd.read_csv(path, dtype={"heldout": str, "region": str, "time": str})

        def run() -> pd.DataFrame:
            from fluxbridge.pipeline import train_settings
            from fluxbridge.studies.leave_region_out import leave_region_out

            out = leave_region_out(
                self.samples, train_settings(cfg, cfg.constraint.lambda_regional),
                grid=self.grid, targets=self.world.targets, regions=self.world.regions,
                train_sites=np.unique(self.samples["site"]), cache_dir=self.lro_dir,
                progress=self.progress)
            write_csv(out, path)
            return out

        return self._step("leave_region_out", run)

    def sparsity(self) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The sparsity study of this run when ``sparsity_study`` is on (cached on disk).

        Returns the table and a description of how it was run, or None.
        """
        cfg = self.cfg
        if not cfg.sparsity_study:
            return None
        path = self.out / "sparsity" / "table.csv"
        truth = self._truth_regional()
        lam = cfg.constraint.lambda_regional or 1.0
        meta = {"source": "this run", "own_run": True, "epochs": cfg.network.epochs,
                "lambda_regional": lam,
                "reference": "truth" if truth is not None else "inversions"}
        if path.exists():
            return pd.read_csv(path), meta

        def run() -> pd.DataFrame:
            from fluxbridge.pipeline import train_settings
            from fluxbridge.studies.sparsity import sparsity_study
            from fluxbridge.training import split_validation

            settings = train_settings(cfg, lam)
            fit, val = split_validation(np.unique(self.samples["site"]), settings.val_fraction,
                                        settings.seed)
            reference = truth if truth is not None else _targets_reference(self.world.targets)
            table = sparsity_study(self.samples, settings, grid=self.grid,
                                   targets=self.world.targets, regions=self.world.regions,
                                   reference=reference, train_sites=fit, val_sites=val,
                                   progress=self.progress)
            write_csv(table, path)
            return table

        return self._step("sparsity_study", run), meta

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> RunResult:
        """Score every model, draw the figures, write the report and the run manifest."""
        results = self.upscale()
        heldout = self.leave_region_out()
        sparsity = self.sparsity()
        return self._step("evaluate", lambda: self._evaluate(results, heldout, sparsity))

    def _truth_regional(self) -> pd.DataFrame | None:
        """True regional totals (twin world), or None (real data have no truth)."""
        from fluxbridge.errors import InputError

        try:
            return self.world.truth_regional
        except InputError:
            return None

    def _evaluate(self, results: dict[str, Any], heldout: pd.DataFrame | None = None,
                  sparsity: tuple[pd.DataFrame, dict[str, Any]] | None = None) -> RunResult:
        from fluxbridge.evaluation.summary import summarise_run
        from fluxbridge.outputs.report import write_report
        from fluxbridge.pipeline import RunResult

        summary = summarise_run(
            self.cross_validate(),
            {n: pd.read_csv(results[n].regional_csv) for n in self.model_names},
            self.world.targets, truth=self._truth_regional(), maps=self._maps(results),
            heldout=heldout, estimator_error=self._estimator_error(results),
            sparsity=None if sparsity is None else sparsity[0],
            sparsity_settings=None if sparsity is None else sparsity[1])
        metrics = {**summary.metrics, "timings_s": self.timings}
        report = write_report(self.out, title=f"fluxbridge — {self.cfg.name}",
                              sections=summary.sections, metrics=metrics)
        manifest = self._write_manifest(results, report)
        return RunResult(self.out, manifest, report, summary.headline, dict(self.timings))

    def _maps(self, results: dict[str, Any]) -> dict[str, Any]:
        """Time-mean NEE [gC m-2 d-1] of the site-only and dual products, and of the truth
        where there is one (twin world)."""
        import xarray as xr

        from fluxbridge.errors import InputError

        def mean_map(name: str) -> xr.DataArray:
            with xr.open_dataset(results[name].grid_monthly) as ds:
                return ds["nee"].mean("time").load()

        maps = {SITE_ONLY: mean_map(SITE_ONLY), DUAL: mean_map(DUAL)}
        try:
            maps["truth"] = self.world.truth_grid.mean("time").load()
        except InputError:
            log.info("no true NEE grid: the maps leave the truth out")
        return maps

    def _estimator_error(self, results: dict[str, Any]) -> pd.DataFrame:
        """Estimator error against K on the dual model's field (cache: the site-only field)."""
        import xarray as xr

        from fluxbridge.evaluation.estimators import estimator_error_table
        from fluxbridge.operators import RegionalOperator

        grid = self.grid

        def field(name: str) -> np.ndarray:
            with xr.open_dataset(results[name].grid) as ds:
                values = ds["nee"].values[:, grid.lat_index, grid.lon_index]
            return np.nan_to_num(values.astype(np.float64))

        op = RegionalOperator(self.world.regions, grid.times, grid.lat_index, grid.lon_index)
        matched = op.match_targets(self.world.targets)
        sigma = np.full(op.n_obs, np.nan)
        sigma[matched["obs"]] = matched["spread"]
        sigma = np.fmax(np.nan_to_num(sigma, nan=np.nanmedian(sigma)),
                        self.cfg.constraint.sigma_floor * np.nanmedian(sigma))
        return estimator_error_table(op, field(DUAL), field(SITE_ONLY), sigma,
                                     seed=self.cfg.seed, strata=grid.igbp_code)

    def _write_manifest(self, results: dict[str, Any], report: Path) -> Path:
        def rel(p: Path) -> str:
            return str(Path(p).resolve().relative_to(self.out)) if Path(p).resolve().is_relative_to(
                self.out) else str(Path(p).resolve())

        manifest = {
            "name": self.cfg.name,
            "world": rel(self.manifest_path),
            "models": {n: {"grid": rel(results[n].grid), "grid_monthly": rel(
                results[n].grid_monthly), "regional": rel(results[n].regional_csv),
                "global": rel(results[n].global_csv), "artifact": rel(
                    self.models_dir / f"{n}.pt")} for n in self.model_names},
            "cv_predictions": rel(self.cv_dir / "predictions.csv"),
            "metrics": rel(self.out / "metrics.json"),
            "report": rel(report),
            "config": "config.resolved.yaml",
            "units": {"grid": "g m-2 d-1 (carbon, positive to the atmosphere)",
                      "regional": "Tg month-1 of carbon"},
        }
        return write_json(manifest, self.out / "manifest.json")

    def run(self) -> RunResult:
        """All steps."""
        return self.evaluate()


def _targets_reference(targets: Any) -> pd.DataFrame:
    from fluxbridge.evaluation.regional import targets_frames

    return targets_frames(targets)[0]


def _save_models(model: Any, path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, list):
        for i, member in enumerate(model):
            member.name = name
            member.save(path.with_name(f"{name}.member{i}.pt"))
    else:
        model.name = name
        model.save(path)

