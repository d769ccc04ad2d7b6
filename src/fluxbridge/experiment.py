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

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> RunResult:
        """Score every model, draw the figures, write the report and the run manifest."""
        results = self.upscale()
        return self._step("evaluate", lambda: self._evaluate(results))

    def _evaluate(self, results: dict[str, Any]) -> RunResult:
        from fluxbridge.evaluation import figures
        from fluxbridge.evaluation.regional import global_annual, regional_metrics, targets_frames
        from fluxbridge.evaluation.report import (
            ReportSection,
            inversion_section,
            regional_section,
            site_skill_section,
            write_report,
        )
        from fluxbridge.pipeline import RunResult

        names = self.model_names
        headline_section = ReportSection("Headline")
        predictions = self.cross_validate()
        series = {n: pd.read_csv(results[n].regional_csv) for n in names}
        truth = self.world.truth_regional
        reference, spread = targets_frames(self.world.targets)

        site_sec, site_tables = site_skill_section(predictions, names)
        reg_sec, reg_tables = regional_section(series, reference=reference, spread=spread,
                                               truth=truth)
        vs_truth = regional_metrics(series, truth, spread)
        vs_inversions = regional_metrics(series, reference, spread)
        annual = global_annual({**series, "truth": truth, "inversions": reference})

        maps = self._maps(results)
        sections = [
            ReportSection("The question", text=_QUESTION),
            headline_section,
            site_sec, reg_sec,
            ReportSection("Global annual NEE", figures=[
                ("Global annual NEE of each model, the truth and the inversion mean [PgC/yr]",
                 figures.global_series(annual))], tables=[("Global annual totals", annual)]),
            ReportSection("Maps", figures=maps),
            inversion_section(self.world.targets),
        ]
        estimator_table = self._estimator_error(results)
        sections.append(ReportSection(
            "Sparse operator: estimator error against K",
            text="Error of each estimator of the regional monthly totals of the dual model's "
                 "field, in units of the inversion spread σ, over repeated draws; the "
                 "control variate uses the site-only field as its cache.",
            figures=[("Estimator error against K",
                      figures.estimator_error(estimator_table, value="rmse_sigma"))],
            tables=[("Estimator error", estimator_table)]))

        site_scales = site_tables["by_scale"]
        headline = headline_table(site_scales, vs_truth, annual, names)
        headline_section.tables = [("Site R² by time scale (cross-validation), regional error "
                                    "against the truth, global NEE [PgC/yr]", headline)]
        headline_section.text = _headline_text(headline)
        metrics = {
            "headline": headline,
            "site": site_tables,
            "regional_vs_truth": vs_truth,
            "regional_vs_inversions": vs_inversions,
            "regional_tables": reg_tables,
            "global_annual": annual,
            "estimator_error": estimator_table,
            "timings_s": self.timings,
        }
        report = write_report(self.out, title=f"fluxbridge — {self.cfg.name}",
                              sections=sections, metrics=metrics)
        manifest = self._write_manifest(results, report)
        return RunResult(self.out, manifest, report, headline, dict(self.timings))

    def _maps(self, results: dict[str, Any]) -> list[Any]:
        import xarray as xr

        from fluxbridge.evaluation import figures

        def mean_map(name: str) -> xr.DataArray:
            with xr.open_dataset(results[name].grid_monthly) as ds:
                return ds["nee"].mean("time").load()

        site_only, dual = mean_map(SITE_ONLY), mean_map(DUAL)
        truth = self.world.truth_grid.mean("time").load()
        return [
            ("Mean NEE of the dual model [gC m-2 d-1]", figures.nee_map(dual, "dual")),
            ("Dual minus site-only [gC m-2 d-1]",
             figures.nee_map(dual - site_only, "dual − site-only", difference=True)),
            ("Truth minus site-only [gC m-2 d-1]: what the constraint should add",
             figures.nee_map(truth - site_only, "truth − site-only", difference=True)),
        ]

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


_QUESTION = (
    "Against the site-only model (λ = 0), does the inversion constraint (dual model, λ > 0) "
    "improve regional NEE while keeping site-level skill and seasonality? Site skill comes from "
    "leave-site-out cross-validation on identical folds for every model; regional skill from "
    "the upscaled products against the truth (twin world) and the corrected inversion ensemble."
)


def headline_table(site_scales: pd.DataFrame, vs_truth: pd.DataFrame, annual: pd.DataFrame,
                   names: list[str]) -> pd.DataFrame:
    """One row per model: site R² by time scale, regional error and global NEE against truth.

    Columns: ``r2_<scale>``; ``regional_monthly_rmse_tgc`` and ``regional_annual_bias_tgc``
    (mean absolute annual bias over regions [Tg yr-1]); ``global_nee_pgc`` and
    ``truth_global_nee_pgc`` (mean over years [Pg yr-1]).
    """
    r2 = site_scales.pivot(index="model", columns="scale", values="r2").add_prefix("r2_")
    per_region = vs_truth[vs_truth["region"] != "all"]
    overall = vs_truth[vs_truth["region"] == "all"].set_index("model")
    reg = pd.DataFrame({
        "regional_monthly_rmse_tgc": overall["monthly_rmse"],
        "regional_mean_abs_annual_bias_tgc": per_region.assign(
            a=per_region["annual_bias"].abs()).groupby("model")["a"].mean(),
    })
    glob = annual.groupby("model")["nee_pgc"].mean()
    out = r2.join(reg, how="outer")
    out["global_nee_pgc"] = glob.reindex(out.index)
    out["truth_global_nee_pgc"] = float(glob.get("truth", np.nan))
    out["inversion_global_nee_pgc"] = float(glob.get("inversions", np.nan))
    return out.reindex([n for n in names if n in out.index]).rename_axis("model").reset_index()


def _headline_text(headline: pd.DataFrame) -> str:
    h = headline.set_index("model")
    if SITE_ONLY not in h.index or DUAL not in h.index:
        return ""
    so, du = h.loc[SITE_ONLY], h.loc[DUAL]

    def change(col: str) -> str:
        a, b = so[col], du[col]
        return f"{a:.1f} → {b:.1f} ({100 * (b - a) / abs(a):+.0f} %)" if a else "n/a"

    return (
        "Dual against site-only: regional monthly RMSE "
        f"{change('regional_monthly_rmse_tgc')} TgC/month; mean absolute regional annual bias "
        f"{change('regional_mean_abs_annual_bias_tgc')} TgC/yr; global NEE "
        f"{so['global_nee_pgc']:.2f} → {du['global_nee_pgc']:.2f} PgC/yr against the truth's "
        f"{so['truth_global_nee_pgc']:.2f}; site R² (all data) {so.get('r2_all', np.nan):.3f} → "
        f"{du.get('r2_all', np.nan):.3f}."
    )


def _save_models(model: Any, path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, list):
        for i, member in enumerate(model):
            member.name = name
            member.save(path.with_name(f"{name}.member{i}.pt"))
    else:
        model.name = name
        model.save(path)

