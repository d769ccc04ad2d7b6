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
            from fluxbridge.evaluation.leaveout import leave_region_out
            from fluxbridge.pipeline import train_settings

            out = leave_region_out(
                self.samples, train_settings(cfg, cfg.constraint.lambda_regional),
                grid=self.grid, targets=self.world.targets, regions=self.world.regions,
                train_sites=np.unique(self.samples["site"]), cache_dir=self.lro_dir,
                progress=self.progress)
            write_csv(out, path)
            return out

        return self._step("leave_region_out", run)

    def sparsity(self) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The sparsity study: this run's own when ``sparsity_study`` is on (cached on disk),
        else the committed benchmark result ``benchmarks/results/sparsity.json`` if found.

        Returns the table and a description of where it comes from, or None.
        """
        cfg = self.cfg
        if not cfg.sparsity_study:
            found = _benchmark_result("sparsity.json")
            if found is None:
                return None
            path, data = found
            meta = dict(data.get("meta", {}))
            meta.update(source=str(path), own_run=False)
            return pd.DataFrame(data.get("rows", [])), meta
        path = self.out / "sparsity" / "table.csv"
        truth = self._truth_regional()
        lam = cfg.constraint.lambda_regional or 1.0
        meta = {"source": "this run", "own_run": True, "epochs": cfg.network.epochs,
                "lambda_regional": lam,
                "reference": "truth" if truth is not None else "inversions"}
        if path.exists():
            return pd.read_csv(path), meta

        def run() -> pd.DataFrame:
            from fluxbridge.evaluation.sparsity import sparsity_study
            from fluxbridge.pipeline import train_settings
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
        from fluxbridge.evaluation import figures
        from fluxbridge.evaluation.regional import (
            global_annual,
            global_spread_check,
            member_global_annual,
            regional_metrics,
            targets_frames,
        )
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
        truth = self._truth_regional()
        reference, spread = targets_frames(self.world.targets)

        site_sec, site_tables = site_skill_section(predictions, names)
        reg_sec, reg_tables = regional_section(series, reference=reference, spread=spread,
                                               truth=truth)
        vs_truth = regional_metrics(series, truth, spread) if truth is not None else None
        vs_inversions = regional_metrics(series, reference, spread)
        annual = global_annual({**series, **({"truth": truth} if truth is not None else {}),
                                "inversions": reference})
        members = member_global_annual(self.world.targets)
        global_check, global_years = (global_spread_check(annual, members) if truth is not None
                                      else (None, None))

        maps = self._maps(results)
        global_tables: list[Any] = [("Global annual totals", annual)]
        global_text = ""
        if global_check is not None:
            global_tables = [
                ("Global annual NEE against the truth, judged by the inversion ensemble's "
                 "spread of the global total (mean over years) [PgC/yr]", global_check),
                ("The same, year by year [PgC/yr]", global_years), *global_tables]
            global_text = _GLOBAL_TEXT
        sections = [
            ReportSection("The question", text=_QUESTION),
            headline_section,
            site_sec, reg_sec,
            ReportSection("Global annual NEE", text=global_text, figures=[
                ("Global annual NEE of each model, the truth and the inversion mean [PgC/yr]",
                 figures.global_series(annual, members=members))], tables=global_tables),
            ReportSection("Maps", figures=maps),
            inversion_section(self.world.targets),
        ]
        lro_table = None
        if heldout is not None and len(heldout):
            lro_section, lro_table = self._leave_region_out_section(
                heldout, series, reference, spread, truth)
            sections.append(lro_section)
        estimator_table = self._estimator_error(results)
        sections.append(ReportSection(
            "Sparse operator: estimator error against K",
            text="Error of each estimator of the regional monthly totals of the dual model's "
                 "field, in units of the inversion spread σ, over repeated draws; the "
                 "control variate uses the site-only field as its cache.",
            figures=[("Estimator error against K",
                      figures.estimator_error(estimator_table, value="rmse_sigma"))],
            tables=[("Estimator error", estimator_table)]))
        operator_bench = _operator_benchmark_section()
        if operator_bench is not None:
            sections.append(operator_bench)
        sparsity_table = None
        if sparsity is not None and len(sparsity[0]):
            sparsity_table = sparsity[0]
            sections.append(_sparsity_section(*sparsity))
        worlds = _worlds_section()
        if worlds is not None:
            sections.append(worlds)

        site_scales = site_tables["by_scale"]
        headline = headline_table(site_scales, vs_truth, annual, names, global_check)
        headline_section.tables = [("Site R² by time scale (cross-validation), regional error "
                                    "against the truth, global NEE [PgC/yr] and whether it is "
                                    "within the inversion ensemble's spread of the truth",
                                    headline)]
        headline_section.text = _headline_text(headline, lro_table)
        metrics = {
            "headline": headline,
            "site": site_tables,
            "regional_vs_truth": vs_truth,
            "regional_vs_inversions": vs_inversions,
            "regional_tables": reg_tables,
            "global_annual": annual,
            "global_vs_truth": global_check,
            "global_vs_truth_by_year": global_years,
            "inversion_members_global_annual": members,
            "leave_region_out": lro_table,
            "estimator_error": estimator_table,
            "sparsity": None if sparsity is None else {"table": sparsity_table,
                                                       "meta": sparsity[1]},
            "timings_s": self.timings,
        }
        report = write_report(self.out, title=f"fluxbridge — {self.cfg.name}",
                              sections=sections, metrics=metrics)
        manifest = self._write_manifest(results, report)
        return RunResult(self.out, manifest, report, headline, dict(self.timings))

    def _leave_region_out_section(self, heldout: pd.DataFrame, series: dict[str, pd.DataFrame],
                                  reference: pd.DataFrame, spread: pd.DataFrame,
                                  truth: pd.DataFrame | None) -> tuple[Any, pd.DataFrame]:
        from fluxbridge.evaluation import figures
        from fluxbridge.evaluation.leaveout import (
            HELDOUT,
            leave_region_out_table,
            leave_region_out_wide,
        )
        from fluxbridge.evaluation.report import ReportSection

        table = leave_region_out_table(
            heldout, {SITE_ONLY: series[SITE_ONLY], DUAL: series[DUAL]}, reference=reference,
            spread=spread, truth=truth)
        wide = leave_region_out_wide(table)
        bias = leave_region_out_wide(table, "annual_bias")
        text = (f"Each region's constraint withheld in turn: the dual model is trained again "
                f"({heldout['heldout'].nunique()} runs, the final dual model's settings, seeds "
                f"and sites) without that region's inversion targets, and the region is scored "
                f"from the run that did not see it ({HELDOUT}), next to the dual model that saw "
                "every region and the site-only model. Against the inversions this is how the "
                "constraint can be judged on real data, where no truth exists; in the twin "
                "world the truth tells whether that judgement is right. A withheld region can "
                "only gain from the other regions' constraint through the shared network (the "
                "per-region grid offsets of the withheld region are never fitted).")
        return ReportSection(
            "Leave-region-out: judging the constraint without truth", text=text,
            tables=[("Monthly RMSE of each withheld region [TgC/month]", wide),
                    ("Mean annual bias of each withheld region [TgC/yr]", bias),
                    ("All scores", table)],
            figures=[("Monthly RMSE of each region when its constraint is withheld",
                      figures.leave_region_out(table))]), table

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


_GLOBAL_TEXT = (
    "The test of issue #6: is a model's global annual NEE within the inversion ensemble's "
    "spread of the truth? The spread is that of the members' global totals (standard deviation "
    "across the corrected members, each summed over the regions), not a sum of regional "
    "spreads, since one inversion's errors are correlated between regions. z = (model − "
    "truth) / spread; within_spread: |model − truth| ≤ spread. Means over the years that the "
    "model, the truth and the members share; frac_years_within counts single years."
)


def headline_table(site_scales: pd.DataFrame, vs_truth: pd.DataFrame | None,
                   annual: pd.DataFrame, names: list[str],
                   global_check: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model: site R² by time scale, regional error and global NEE against truth.

    Columns: ``r2_<scale>``; ``regional_monthly_rmse_tgc`` and
    ``regional_mean_abs_annual_bias_tgc`` (mean absolute annual bias over regions [Tg yr-1]);
    ``global_nee_pgc``, ``truth_global_nee_pgc`` and ``inversion_global_nee_pgc`` (means over
    years [Pg yr-1]); with ``global_check`` (:func:`~fluxbridge.evaluation.regional.
    global_spread_check`) also ``inversion_global_spread_pgc`` (spread of the members' global
    totals), ``global_z`` ((model − truth) / spread) and ``global_within_spread``.
    """
    r2 = site_scales.pivot(index="model", columns="scale", values="r2").add_prefix("r2_")
    out = r2
    if vs_truth is not None:
        per_region = vs_truth[vs_truth["region"] != "all"]
        overall = vs_truth[vs_truth["region"] == "all"].set_index("model")
        reg = pd.DataFrame({
            "regional_monthly_rmse_tgc": overall["monthly_rmse"],
            "regional_mean_abs_annual_bias_tgc": per_region.assign(
                a=per_region["annual_bias"].abs()).groupby("model")["a"].mean(),
        })
        out = r2.join(reg, how="outer")
    glob = annual.groupby("model")["nee_pgc"].mean()
    out["global_nee_pgc"] = glob.reindex(out.index)
    out["truth_global_nee_pgc"] = float(glob.get("truth", np.nan))
    out["inversion_global_nee_pgc"] = float(glob.get("inversions", np.nan))
    if global_check is not None:
        g = global_check.set_index("model")
        out["inversion_global_spread_pgc"] = g["inversion_spread_pgc"].reindex(out.index)
        out["global_z"] = g["z"].reindex(out.index)
        out["global_within_spread"] = g["within_spread"].reindex(out.index)
    return out.reindex([n for n in names if n in out.index]).rename_axis("model").reset_index()


def _headline_text(headline: pd.DataFrame, leave_region_out: pd.DataFrame | None = None) -> str:
    h = headline.set_index("model")
    if SITE_ONLY not in h.index or DUAL not in h.index:
        return ""
    so, du = h.loc[SITE_ONLY], h.loc[DUAL]

    def change(col: str) -> str:
        if col not in h:
            return "n/a"
        a, b = so[col], du[col]
        return f"{a:.1f} → {b:.1f} ({100 * (b - a) / abs(a):+.0f} %)" if a else "n/a"

    text = (
        "Dual against site-only: regional monthly RMSE "
        f"{change('regional_monthly_rmse_tgc')} TgC/month; mean absolute regional annual bias "
        f"{change('regional_mean_abs_annual_bias_tgc')} TgC/yr; global NEE "
        f"{so['global_nee_pgc']:.2f} → {du['global_nee_pgc']:.2f} PgC/yr against the truth's "
        f"{so['truth_global_nee_pgc']:.2f}; site R² (all data) {so.get('r2_all', np.nan):.3f} → "
        f"{du.get('r2_all', np.nan):.3f}."
    )
    if "global_within_spread" in h and pd.notna(du.get("inversion_global_spread_pgc")):
        verdict = "within" if bool(du["global_within_spread"]) else "outside"
        text += (f"\n\nThe dual model's global NEE is {verdict} the inversion ensemble's spread "
                 f"of the truth (± {du['inversion_global_spread_pgc']:.2f} PgC/yr; z = "
                 f"{du['global_z']:+.2f}; site-only z = {so['global_z']:+.2f}).")
    if leave_region_out is not None:
        t = leave_region_out[leave_region_out["region"] == "all"].set_index(
            ["against", "model"])["monthly_rmse"]
        for against in dict.fromkeys(leave_region_out["against"]):
            try:
                so_, du_, lro = (t[(against, m)] for m in (SITE_ONLY, DUAL,
                                                           "dual_without_region"))
            except KeyError:
                continue
            text += (f"\n\nLeave-region-out against the {against}: regional monthly RMSE "
                     f"{lro:.1f} TgC/month when a region's constraint is withheld, against "
                     f"{du_:.1f} with it and {so_:.1f} for the site-only model.")
    return text


def _benchmark_result(name: str) -> tuple[Path, dict[str, Any]] | None:
    """A committed benchmark result ``benchmarks/results/{name}`` of the source tree (the
    package's repository, else the working directory), or None."""
    import json

    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "benchmarks" / "results" / name,
                  Path.cwd() / "benchmarks" / "results" / name]
    for path in candidates:
        if path.is_file():
            try:
                return path, json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("cannot read benchmark result %s: %s", path, exc)
    return None


def _file_date(path: Path) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _operator_benchmark_section() -> Any:
    """Report section of ``benchmarks/results/operator.json`` (estimator error and step time
    against K at benchmark scale), or None when it is absent."""
    from fluxbridge.evaluation import figures
    from fluxbridge.evaluation.report import ReportSection

    found = _benchmark_result("operator.json")
    if found is None:
        return None
    path, data = found
    table = pd.DataFrame(data.get("rows", []))
    if not {"estimator", "K", "bias_sigma", "std_sigma", "step_seconds"} <= set(table.columns):
        return None
    table["rmse_sigma"] = np.hypot(table["bias_sigma"], table["std_sigma"])
    if "grid_deg" in table:  # the coarsest grid measured: the demo's
        table = table[table["grid_deg"] == table["grid_deg"].max()]
    meta = data.get("meta", {})
    missing = pd.Series(None, index=table.index, dtype=object)
    cv = table["estimator"].eq("control_variate")
    if "cache_features" in table:  # name the control variate's caches apart
        size = pd.to_numeric(table.get("cache_group_size", missing)).astype("Int64")
        table.loc[cv, "estimator"] += " (" + table.loc[cv, "cache_features"].astype(str) + " " \
            + size[cv].astype(str) + ")"
    fresh = pd.to_numeric(table.get("cache_age_steps", missing)).eq(0)
    no_fit = table.get("cache_drift", missing).eq(False)
    table.loc[cv & fresh, "estimator"] += " fresh"
    table.loc[cv & no_fit, "estimator"] += " no drift fit"
    training = table.get("mode", missing).eq("in_training")
    table.loc[training, "estimator"] += " in training"
    shown = table[~training & ~fresh & ~no_fit]  # the figure: the stale cache, drift fitted
    if "obs_per_step" in table and "obs_per_step" in meta:  # one share per line in the figure
        shown = shown[shown["obs_per_step"].isin([0, meta["obs_per_step"]])]
    settings = ", ".join(f"{k} = {v}" for k, v in meta.items())
    text = (f"Result of the benchmark benchmarks/operator.py ({path}, written "
            f"{meta.get('date', _file_date(path))}), not of this run: error of each estimator "
            "of the regional monthly totals in units of σ (bias and spread over repeated "
            "draws) and the time of one training step, against the number of cell-days "
            f"sampled per region-month K. The figure shows the demo's region-months per step; "
            f"the table has every measured share, and rows 'in training' that train the "
            f"network with the control variate and time every step and cache refresh, their "
            f"spread the draws' own estimate along the way. Settings: {settings}.")
    fig = figures.against_k(shown, [
        ("rmse_sigma", "RMSE of the regional total [σ]", "Estimator error against K"),
        ("step_seconds", "seconds per training step", "Cost of a training step")])
    return ReportSection("Benchmark: estimator error and cost against K", text=text,
                         figures=[("Estimator error against K (benchmark)", fig)],
                         tables=[("Operator benchmark", table)])


def _sparsity_section(table: pd.DataFrame, meta: dict[str, Any]) -> Any:
    """Report section of the sparsity study (this run's or the committed benchmark's)."""
    from fluxbridge.evaluation import figures
    from fluxbridge.evaluation.report import ReportSection

    if meta.get("own_run"):
        origin = (f"Run by this experiment (sparsity_study: true) with its own settings, "
                  f"{meta.get('epochs')} epochs, scored against the {meta.get('reference')}.")
    else:
        settings = meta.get("settings", {})
        origin = (
            f"Result of the benchmark benchmarks/sparsity.py, not of this run: {meta['source']}"
            f", started {meta.get('date', 'at an unknown date')}"
            + (f", finished {meta['finished']}" if meta.get("finished") else "")
            + ("" if meta.get("complete", True) else " (INCOMPLETE: the benchmark was stopped)")
            + f", on the world {meta.get('world', '?')} with {meta.get('epochs', '?')} epochs "
            "per run and otherwise the default experiment settings ("
            + ", ".join(f"{k} = {v}" for k, v in settings.items())
            + ")." + (f" Note: {meta['note']}." if meta.get("note") else "")
            + " Set sparsity_study: true to run it within an experiment.")
    text = ("The paper's hypothesis: a sparse sample of K cell-days per region-month constrains "
            "the site-level model as well as the full regional sum. The dual model is trained "
            "with the exact operator and with the fixed, resampled and control-variate "
            "estimators at each K, and the site-only model as the baseline; each is scored by "
            "its regional monthly RMSE and mean absolute annual bias against the truth, and "
            "its training time.\n\n" + origin)
    shown = table.copy()
    return ReportSection("Sparsity: does a sparse sample constrain the model?", text=text,
                         tables=[("Dual model by estimator and K", shown)],
                         figures=[("Regional RMSE against the truth and training time against "
                                   "K", figures.sparsity(shown))])


def _worlds_section() -> Any:
    """Report section of ``benchmarks/results/worlds.json`` (the demo's targets in twin worlds
    of several seeds), or None when it is absent."""
    from fluxbridge.evaluation.report import ReportSection

    found = _benchmark_result("worlds.json")
    if found is None:
        return None
    path, data = found
    rows = data.get("rows", [])
    if not rows:
        return None
    table = pd.DataFrame([{
        "seed": r["seed"], "truth_pgc": r["truth_global_pgc"],
        "inversion_spread_pgc": r["inversion_spread_pgc"],
        "z_inversion_mean": r["inversion_mean"]["z"], "z_dual": r["dual"]["z"],
        "z_site_only": r["site_only"]["z"],
        "dual_minus_inversion_mean_pgc": r["dual_minus_inversion_mean_pgc"],
        "regional_rmse_change_pct": 100 * r["rmse_change"],
        "annual_bias_change_pct": 100 * r["bias_change"]} for r in rows])
    meta = data.get("meta", {})
    summary = meta.get("summary", {})
    text = ("Result of the benchmark benchmarks/worlds.py " f"({path}, written "
            f"{meta.get('date', _file_date(path))}), not of this run: the site-only and dual "
            "models trained as in the demo in twin worlds of several seeds (each a new draw of "
            "the hidden legacy, the towers and the inversion errors), scored against each "
            "world's truth. z is the global annual NEE's error against the truth in units of "
            "the inversion members' spread of the global total; the target is |z| ≤ 1 for the "
            "dual model, which can only be as close to the truth as the inversion mean it is "
            "constrained by. Worlds meeting each target: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                        if isinstance(v, str)) + "."
            + ("" if meta.get("complete", True) else " (INCOMPLETE: the benchmark was stopped "
               "before its last seed.)"))
    return ReportSection("Across twin worlds: are the targets met by luck?", text=text,
                         tables=[("Twin worlds by seed", table)])


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

