"""Leave-site-out cross-validation on FLUXNET files: the network against random forest and XGBoost.

``fluxbridge sitecv DATA --metadata BIF`` reads every FLUXNET2015 monthly (MM) or daily (DD) file
of a directory through :mod:`fluxbridge.io.fluxnet`, builds site samples from the meteorology the
files carry, deals the sites into folds, fits every model on identical folds and scores the
out-of-fold predictions by time scale as FLUXCOM does. It writes ``predictions.csv`` (one column
per model, so anyone can recompute the scores), ``metrics.csv``, ``metrics.json`` and
``report.html``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.evaluation.metrics import infer_step_days, site_metrics
from fluxbridge.evaluation.report import FLUXCOM_NEE_SKILL, site_skill_section, write_report
from fluxbridge.outputs import write_csv

if TYPE_CHECKING:
    from fluxbridge.training import TrainSettings

log = logging.getLogger(__name__)

SITECV_FEATURES: tuple[str, ...] = ("ta", "vpd", "sw_in", "sw_in_pot", "precip")
"""Tower meteorology every FLUXNET2015 SUBSET/FULLSET file carries (TA_F, VPD_F, SW_IN_F,
SW_IN_POT, P_F), in canonical names."""

CLIMATE_FEATURES: dict[str, str] = {"ta_site_mean": "ta", "precip_site_mean": "precip"}
"""Per-site means of a meteorological feature over the record (mean annual temperature and
precipitation, as FLUXCOM's static site climate); computed from predictors only."""

_FILE = re.compile(r"^(?:FLX|AMF|ICOSETC)_(?P<site>[A-Za-z]{2}-[A-Za-z0-9]{3})_.*?"
                   r"_(?P<res>HH|HR|DD|WW|MM|YY)_.*\.csv$")
OUTPUT_FILES = ("predictions.csv", "metrics.csv", "metrics.json", "report.html")


@dataclass
class SiteCVResult:
    """What a site cross-validation produced.

    Attributes
    ----------
    out_dir
        Output directory.
    predictions
        Out-of-fold predictions ``site, time, fold, igbp, observed, weight, <model>…``
        [g m-2 d-1].
    metrics
        Scores by time scale (:func:`fluxbridge.evaluation.metrics.site_metrics`).
    metrics_igbp
        Scores by IGBP class.
    models
        Model columns.
    time_step
        ``"MM"`` or ``"DD"``.
    paths
        Files written.
    """

    out_dir: Path
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    metrics_igbp: pd.DataFrame
    models: tuple[str, ...]
    time_step: str
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """The skill table by time scale (R², RMSE, bias) next to the published FLUXCOM skill."""
        m = self.metrics
        table = m.pivot(index="scale", columns="model", values=["r2", "rmse", "bias"])
        table = table.reindex([s for s in ("all", "across_site", "seasonal", "anomaly",
                                           "interannual") if s in table.index])
        table.columns = [f"{stat}_{model}" for stat, model in table.columns]
        ref = FLUXCOM_NEE_SKILL.set_index("scale")["published_r2"]
        table["fluxcom_r2"] = ref.reindex(table.index).fillna("–")
        n = self.predictions["site"].nunique()
        head = (f"leave-site-out cross-validation: {n} sites, {len(self.predictions)} "
                f"{self.time_step} records, {self.predictions['fold'].nunique()} folds; "
                "NEE R² (1 - SSE/SST), RMSE and bias [g m-2 d-1]; "
                "FLUXCOM: Tramontana et al. 2016")
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            text = table.to_string(float_format=lambda v: f"{v:.3f}")
        return f"{head}\n{text}\nwritten: {self.out_dir}"


def find_site_files(data: str | os.PathLike[str], time_step: str | None = None
                    ) -> tuple[list[Path], str]:
    """FLUXNET site CSV files of one resolution in a directory.

    Parameters
    ----------
    data
        Directory of FLUXNET2015 (or ONEFlux-style) CSV files.
    time_step
        ``"MM"`` or ``"DD"``; by default the one resolution present.

    Returns
    -------
    paths, time_step
        Sorted file paths (one per site) and their resolution.
    """
    root = Path(data)
    if not root.is_dir():
        raise InputError("not a directory", path=root, expected="a directory of FLUXNET CSV files")
    by_res: dict[str, dict[str, Path]] = {}
    for p in sorted(root.glob("*.csv")):
        match = _FILE.match(p.name)
        if match and "_BIF_" not in p.name:
            by_res.setdefault(match["res"], {}).setdefault(match["site"], p)
    usable = {r: v for r, v in by_res.items() if r in ("MM", "DD")}
    if time_step is None:
        if len(usable) != 1:
            found = ", ".join(f"{r} ({len(v)} sites)" for r, v in sorted(by_res.items()))
            raise InputError(f"found {found or 'no FLUXNET site files'}", path=root,
                             variable="time_step",
                             expected="FLUXNET files of exactly one of MM or DD resolution "
                                      "(or name the time step)")
        time_step = next(iter(usable))
    if time_step not in usable:
        raise InputError(f"no {time_step} site files", path=root, variable="time_step",
                         expected="FLX_<SITE>_FLUXNET2015_<SET>_MM_… or …_DD_… CSV files")
    return list(usable[time_step].values()), time_step


def add_climate_features(samples: pd.DataFrame) -> pd.DataFrame:
    """Add per-site record means of temperature and precipitation (:data:`CLIMATE_FEATURES`)."""
    out = samples.copy()
    for name, source in CLIMATE_FEATURES.items():
        if source in out.columns:
            out[name] = out.groupby("site")[source].transform("mean").astype(np.float32)
    units = dict(samples.attrs.get("units", {}))
    units.update({"ta_site_mean": "degC", "precip_site_mean": "mm d-1"})
    out.attrs["units"] = units
    return out


def sitecv_predictions(samples: pd.DataFrame, *, folds: int = 10, seed: int = 0,
                       models: Sequence[str] = ("nn", "rf", "xgboost"),
                       settings: TrainSettings | None = None, progress: bool = True,
                       checkpoint_dir: Path | None = None) -> pd.DataFrame:
    """Out-of-fold predictions of each model on identical site folds.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`, plus derived columns).
    folds
        Number of folds; sites are dealt into them at random (grouped by site).
    seed
        Seed of the fold assignment and of the models.
    models
        Model kinds (``"nn"``, ``"rf"``, ``"xgboost"``).
    settings
        :class:`fluxbridge.training.TrainSettings`; default settings with this seed otherwise.
        Its ``features`` default to those of :data:`SITECV_FEATURES` and
        :data:`CLIMATE_FEATURES` present in ``samples``.
    progress
        Show progress bars.
    checkpoint_dir
        Where network checkpoints go (a killed run resumes from them).

    Returns
    -------
    pd.DataFrame
        ``site, time, fold, igbp, observed, weight`` and one column per model [g m-2 d-1].
    """
    import dataclasses

    from fluxbridge.training import TrainSettings, cross_validate, make_folds

    settings = TrainSettings(seed=seed) if settings is None else settings
    if settings.features is None:
        names = [f for f in (*SITECV_FEATURES, *CLIMATE_FEATURES) if f in samples.columns]
        settings = dataclasses.replace(settings, features=tuple(names))
    fold_of = make_folds(samples, folds, "site", seed)
    log.info("site cross-validation: %d sites in %d folds, features %s",
             fold_of.size, folds, list(settings.features))
    return cross_validate(samples, settings, kinds=tuple(models), folds=fold_of,
                          checkpoint_dir=checkpoint_dir, progress=progress)


def _format_time(time: pd.Series, time_step: str) -> pd.Series:
    fmt = "%Y-%m" if time_step == "MM" else "%Y-%m-%d"
    return pd.DatetimeIndex(pd.to_datetime(time)).strftime(fmt)


def write_sitecv(predictions: pd.DataFrame, models: Sequence[str], out: Path, time_step: str,
                 *, provenance: dict[str, object] | None = None) -> SiteCVResult:
    """Score out-of-fold predictions and write predictions, metrics and the report to ``out``."""
    models = tuple(models)
    by_scale = site_metrics(predictions, models)
    by_igbp = site_metrics(predictions, models, by="igbp")
    paths = {}
    table = predictions.copy()
    table["time"] = _format_time(table["time"], time_step)
    columns = ["site", "time", "fold", "igbp", "observed", "weight", *models]
    paths["predictions"] = write_csv(table[columns], out / "predictions.csv",
                                     float_format="%.6g")
    metrics_table = pd.concat([by_scale.assign(igbp="all"), by_igbp], ignore_index=True)
    metrics_table = metrics_table[["model", "scale", "igbp", "r2", "r2_pearson", "rmse", "bias",
                                   "n"]]
    paths["metrics_csv"] = write_csv(metrics_table, out / "metrics.csv", float_format="%.6g")
    section, tables = site_skill_section(predictions, models,
                                         title=f"Site-level skill ({time_step} files)")
    metrics = {
        "kind": "sitecv", "time_step": time_step, "models": list(models),
        "n_sites": int(predictions["site"].nunique()), "n_records": len(predictions),
        "n_folds": int(predictions["fold"].nunique()),
        "units": {"rmse": "g m-2 d-1", "bias": "g m-2 d-1", "r2": "1"},
        "fluxcom_reference": FLUXCOM_NEE_SKILL,
        "provenance": provenance or {},
        **tables,
    }
    paths["report"] = write_report(out, title="fluxbridge: leave-site-out cross-validation",
                                   sections=[section], metrics=metrics)
    paths["metrics_json"] = out / "metrics.json"
    return SiteCVResult(out, predictions, by_scale, by_igbp, models, time_step, paths)


def _refuse_overwrite(out: Path, overwrite: bool) -> None:
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise InputError(f"output directory already holds {existing}", path=out,
                         expected="a new directory, or --overwrite to replace them")


def run_sitecv(
    data: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str],
    out: str | os.PathLike[str],
    folds: int = 10,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    models: Sequence[str] = ("nn", "rf", "xgboost"),
    time_step: str | None = None,
    settings: TrainSettings | None = None,
    max_sites: int | None = None,
) -> SiteCVResult:
    """Leave-site-out cross-validation on a directory of FLUXNET monthly or daily files.

    Parameters
    ----------
    data
        Directory of FLUXNET2015 MM or DD CSV files (one per site).
    metadata
        Site metadata (BIF long-format CSV/XLSX or a site list) with coordinates and IGBP class.
    out
        Output directory: ``predictions.csv``, ``metrics.csv``, ``metrics.json``,
        ``report.html``; network checkpoints under ``checkpoints/``.
    folds
        Number of site folds.
    seed
        Seed of folds and models.
    overwrite
        Replace earlier results in ``out`` instead of refusing.
    progress
        Show progress bars.
    models
        Model kinds to compare on identical folds.
    time_step
        ``"MM"`` or ``"DD"`` when ``data`` holds both.
    settings
        :class:`fluxbridge.training.TrainSettings` (default: package defaults with ``seed``).
    max_sites
        Use only the first ``max_sites`` files in name order (quick runs).

    Returns
    -------
    SiteCVResult
        Predictions, metrics and the paths written; ``summary()`` prints the table.
    """
    out = Path(out)
    _refuse_overwrite(out, overwrite)

    from fluxbridge.features import site_samples
    from fluxbridge.io.fluxnet import read_sites
    from fluxbridge.io.sitemeta import read_site_metadata

    paths, step = find_site_files(data, time_step)
    if max_sites is not None:
        paths = paths[:max_sites]
    log.info("reading %d %s site files from %s", len(paths), step, data)
    # sites absent from the metadata (the BIF lacks a few Greenland and Svalbard sites) are
    # left out with a warning rather than stopping a 200-site run
    sites: xr.Dataset = read_sites(paths, read_site_metadata(metadata), time_step=step,
                                   on_missing_metadata="skip")
    samples = site_samples(sites, None, features=SITECV_FEATURES, meteo_from="site")
    samples = add_climate_features(samples)
    if infer_step_days(samples["time"]) > 40:
        raise InputError("site records are coarser than monthly", path=data, variable="time",
                         expected="MM or DD files")
    predictions = sitecv_predictions(samples, folds=folds, seed=seed, models=models,
                                     settings=settings, progress=progress,
                                     checkpoint_dir=out / "checkpoints")
    provenance = {"data": str(Path(data).resolve()), "metadata": str(metadata),
                  "n_files": len(paths), "folds": folds, "seed": seed,
                  "skipped_sites": sites.attrs.get("skipped_sites", [])}
    result = write_sitecv(predictions, models, out, step, provenance=provenance)
    log.info("site cross-validation written to %s", out)
    return result
