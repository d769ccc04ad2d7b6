"""Leave-site-out cross-validation on FLUXNET files: the network against random forest and XGBoost.

``fluxbridge sitecv DATA --metadata BIF`` reads every FLUXNET2015 monthly (MM) or daily (DD) file
of a directory through :mod:`fluxbridge.io.fluxnet`, builds site samples from the meteorology the
files carry (TA_F, SW_IN_F, SW_IN_POT, VPD_F, P_F, LW_IN_F, PA_F, WS_F), a bucket water
availability, each site's climate and mean seasonal cycle of its own meteorology (no
coordinates, no NEE: nothing that could carry a test site's fluxes into training), deals the
sites into folds, fits every model on identical folds and scores the out-of-fold predictions by
time scale as FLUXCOM does. It writes ``predictions.csv`` (one column per model, so anyone can
recompute the scores), ``metrics.csv``, ``metrics.json`` and ``report.html``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
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
from fluxbridge.outputs.files import write_csv

if TYPE_CHECKING:
    from fluxbridge.training import TrainSettings

log = logging.getLogger(__name__)

SITECV_FEATURES: tuple[str, ...] = ("ta", "vpd", "sw_in", "sw_in_pot", "precip")
"""Tower meteorology every FLUXNET2015 SUBSET/FULLSET file carries (TA_F, VPD_F, SW_IN_F,
SW_IN_POT, P_F), in canonical names."""

EXTRA_METEO_COLUMNS: dict[str, tuple[str, ...]] = {
    "lw_in": ("LW_IN_F", "LW_IN_ERA"),
    "pa": ("PA_F", "PA_ERA"),
    "ws": ("WS_F", "WS_ERA"),
}
"""More gap-filled meteorology the FLUXNET2015 files carry (incoming long-wave radiation
[W m-2], air pressure [kPa], wind speed [m s-1]; the ``_F`` columns are gap-filled with downscaled
ERA-Interim, so they are as complete as TA_F), by canonical name and source columns in order of
preference. A file without any of a variable's columns gives NaN, which every model handles
(the network and the random forest take the training mean, XGBoost learns a default branch)."""

METEO_FEATURES: tuple[str, ...] = (*SITECV_FEATURES, *EXTRA_METEO_COLUMNS)
"""Time-varying predictors of the cross-validation."""

CLIMATE_FEATURES: dict[str, str] = {"ta_site_mean": "ta", "precip_site_mean": "precip",
                                    "sw_in_site_mean": "sw_in", "vpd_site_mean": "vpd"}
"""Per-site means of a meteorological variable over the site's whole record (mean annual
temperature, precipitation, radiation and dryness, as FLUXCOM's static site climate)."""

MSC_FEATURES: dict[str, str] = {"ta_msc": "ta", "sw_in_msc": "sw_in", "vpd_msc": "vpd",
                                "precip_msc": "precip"}
"""The site's mean seasonal cycle of a meteorological variable (mean over the record's years of
each calendar month), taken at each record's month: where in its own climate a month lies."""

DERIVED_UNITS: dict[str, str] = {
    "lw_in": "W m-2", "pa": "kPa", "ws": "m s-1",
    "ta_site_mean": "degC", "precip_site_mean": "mm d-1", "sw_in_site_mean": "W m-2",
    "vpd_site_mean": "hPa", "ta_msc": "degC", "sw_in_msc": "W m-2", "vpd_msc": "hPa",
    "precip_msc": "mm d-1", "wai": "1",
}
"""Units of the features this module adds (those of their source variables)."""

DEFAULT_FEATURES: tuple[str, ...] = (*METEO_FEATURES, "wai", *CLIMATE_FEATURES, *MSC_FEATURES)
"""Predictors of :func:`sitecv_predictions` by default (those present in the samples). No
coordinates: like FLUXCOM, the models see climate, not place."""

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
            igbp = self.igbp_table()
            by_class = "" if igbp.empty else (
                "\nby IGBP class: R² of all records and of the mean seasonal cycle, sites\n"
                + igbp.to_string(float_format=lambda v: f"{v:.2f}"))
        return f"{head}\n{text}{by_class}\nwritten: {self.out_dir}"

    def igbp_table(self) -> pd.DataFrame:
        """R² by IGBP class (all records, mean seasonal cycle) per model, with the site count."""
        m = self.metrics_igbp
        if m.empty or "igbp" not in m.columns:
            return pd.DataFrame()
        m = m[m["scale"].isin(["all", "seasonal"])]
        table = m.pivot(index="igbp", columns=["scale", "model"], values="r2")
        table.columns = [f"{'r2' if scale == 'all' else 'r2_msc'}_{model}"
                         for scale, model in table.columns]
        table = table[sorted(table.columns, key=lambda c: (c.startswith("r2_msc"), c))]
        table["sites"] = self.predictions.groupby("igbp")["site"].nunique().reindex(table.index)
        return table


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


def read_extra_meteo(paths: Sequence[Path], sites: xr.Dataset) -> xr.Dataset:
    """Add the meteorology of :data:`EXTRA_METEO_COLUMNS` from the site files to ``sites``.

    Parameters
    ----------
    paths
        The site files ``sites`` was read from (MM or DD, one per site; files of sites absent
        from ``sites`` are ignored).
    sites
        Canonical sites dataset on (site, time) at the files' own resolution.

    Returns
    -------
    xr.Dataset
        ``sites`` with ``lw_in``, ``pa``, ``ws`` on (site, time), NaN where a file lacks them.
    """
    from fluxbridge.io.fluxnet import parse_file_name, read_table

    index = {str(s): i for i, s in enumerate(np.asarray(sites["site"].values).astype(str))}
    times = pd.DatetimeIndex(sites["time"].values)
    values = {name: np.full((len(index), times.size), np.nan) for name in EXTRA_METEO_COLUMNS}
    wanted = [c for columns in EXTRA_METEO_COLUMNS.values() for c in columns]
    for path in paths:
        site = parse_file_name(path).site
        if site not in index:
            continue
        df, where = read_table(path, columns=wanted)
        raw = df["TIMESTAMP_START" if "TIMESTAMP_START" in df else "TIMESTAMP"].astype(str)
        fmt = {6: "%Y%m", 8: "%Y%m%d"}.get(int(raw.str.len().max()), "%Y%m%d%H%M")
        pos = times.get_indexer(pd.to_datetime(raw, format=fmt))
        ok = pos >= 0
        for name, columns in EXTRA_METEO_COLUMNS.items():
            column = next((c for c in columns if c in df), None)
            if column is None:
                log.info("%s lacks %s: NaN", where, "/".join(columns))
                continue
            values[name][index[site], pos[ok]] = df[column].to_numpy(dtype=float)[ok]
    out = sites.copy()
    for name, array in values.items():
        out[name] = (("site", "time"), array, {"units": DERIVED_UNITS[name],
                                               "source_variable": EXTRA_METEO_COLUMNS[name][0]})
    return out


WAI_CAPACITY_MM = 150.0
"""Soil water capacity of the water-availability bucket [mm]."""


def water_availability(sites: xr.Dataset, capacity: float = WAI_CAPACITY_MM) -> xr.DataArray:
    """Relative water availability (0..1) of a bucket model, as FLUXCOM's WAI.

    Each site's bucket fills with precipitation and empties by evapotranspiration
    ``AET = PET · W / capacity``; ``PET`` is Priestley–Taylor (α = 1.26) from net radiation
    ``Rn = 0.85 SW_in + LW_in − 0.98 σ (T + 273.15)⁴`` (albedo 0.15; without ``lw_in``,
    ``Rn = 0.6 SW_in``) at the record's own step, and ``W`` starts full and is run twice over
    the record (the second pass starts from the end of the first). Meteorology only.

    Parameters
    ----------
    sites
        Canonical sites dataset (site, time) with ``ta`` [degC], ``sw_in`` [W m-2],
        ``precip`` [mm d-1] and optionally ``lw_in`` [W m-2], daily or monthly.
    capacity
        Bucket size [mm].

    Returns
    -------
    xr.DataArray
        ``wai`` [1] on (site, time); NaN where the site has no meteorology.
    """
    ta = sites["ta"].transpose("site", "time").values.astype(float)
    sw = sites["sw_in"].transpose("site", "time").values.astype(float)
    precip = sites["precip"].transpose("site", "time").values.astype(float)
    if "lw_in" in sites:
        lw = sites["lw_in"].transpose("site", "time").values.astype(float)
        rn = 0.85 * sw + lw - 0.98 * 5.670374e-8 * (ta + 273.15) ** 4
        rn = np.where(np.isfinite(lw), rn, 0.6 * sw)
    else:
        rn = 0.6 * sw
    # Priestley-Taylor: slope of the saturation vapour pressure curve [kPa K-1], psychrometric
    # constant 0.066 kPa K-1, latent heat 2.45 MJ kg-1; W m-2 -> MJ m-2 d-1 is 0.0864
    es = 0.6108 * np.exp(17.27 * ta / (ta + 237.3))
    delta = 4098.0 * es / (ta + 237.3) ** 2
    pet = np.clip(1.26 * delta / (delta + 0.066) * np.maximum(rn, 0.0) * 0.0864 / 2.45, 0, None)
    days = np.diff(sites["time"].values).astype("timedelta64[s]").astype(float) / 86400.0
    days = np.r_[days, days[-1] if days.size else 1.0]
    days = np.where(days > 27, pd.DatetimeIndex(sites["time"].values).days_in_month, days)
    wai = np.full(ta.shape, np.nan)
    for i in range(ta.shape[0]):
        ok = np.isfinite(ta[i]) & np.isfinite(precip[i]) & np.isfinite(pet[i])
        idx = np.flatnonzero(ok)
        w = capacity
        for _ in range(2):
            for t in idx:
                aet = min(pet[i, t] * days[t] * w / capacity, w)
                w = min(capacity, w - aet + precip[i, t] * days[t])
                wai[i, t] = w / capacity
    return xr.DataArray(wai, dims=("site", "time"), coords={"site": sites["site"],
                                                            "time": sites["time"]},
                        name="wai", attrs={"units": "1",
                                           "long_name": "relative water availability"})


def site_meteo_features(sites: xr.Dataset) -> pd.DataFrame:
    """The extra meteorology, site climate and mean seasonal cycle of each site, per (site, time).

    Computed from every record of a site that has meteorology, with or without NEE, and from
    nothing else: meteorology is a predictor known wherever the model is applied, so these are
    predictors too and cannot leak observed NEE across folds.

    Parameters
    ----------
    sites
        Canonical sites dataset with the meteorology of :data:`METEO_FEATURES` (those present
        are used).

    Returns
    -------
    pd.DataFrame
        ``site``, ``time`` and one float32 column per variable of :data:`EXTRA_METEO_COLUMNS`
        and per feature of :data:`CLIMATE_FEATURES` and :data:`MSC_FEATURES` whose source
        variable ``sites`` carries, and ``wai`` (:func:`water_availability`) when it carries
        ``ta``, ``sw_in`` and ``precip``.
    """
    extra = [n for n in EXTRA_METEO_COLUMNS if n in sites.data_vars]
    sources = sorted({*CLIMATE_FEATURES.values(), *MSC_FEATURES.values()} & set(sites.data_vars))
    names = sorted({*sources, *extra})
    frame = sites[names].transpose("site", "time").to_dataframe()[names].reset_index()
    frame = frame[frame[names].notna().any(axis=1)]
    frame["site"] = frame["site"].astype(str)
    month = pd.DatetimeIndex(frame["time"]).month
    out = frame[["site", "time"]].copy()
    for name in extra:
        out[name] = frame[name].astype(np.float32)
    if {"ta", "sw_in", "precip"} <= set(sites.data_vars):
        wai = water_availability(sites).to_series()
        out["wai"] = wai.reindex(pd.MultiIndex.from_arrays(
            [frame["site"].to_numpy(), frame["time"].to_numpy()])).to_numpy(dtype=np.float32)
    for name, source in CLIMATE_FEATURES.items():
        if source in sources:
            out[name] = frame.groupby("site")[source].transform("mean").astype(np.float32)
    for name, source in MSC_FEATURES.items():
        if source in sources:
            # mean over years of each calendar month (daily values: of the month's days)
            out[name] = frame.groupby([frame["site"], month])[source].transform(
                "mean").astype(np.float32)
    return out.reset_index(drop=True)


def add_site_features(samples: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Join :func:`site_meteo_features` onto the samples by (site, time)."""
    names = [c for c in features.columns if c not in ("site", "time")]
    out = samples.drop(columns=[c for c in names if c in samples.columns])
    keys = features.assign(site=features["site"].astype(str))
    out = out.assign(_site=out["site"].astype(str)).merge(
        keys.rename(columns={"site": "_site"}), on=["_site", "time"], how="left"
    ).drop(columns="_site")
    out.index = samples.index
    units = dict(samples.attrs.get("units", {}))
    units.update({n: DERIVED_UNITS[n] for n in names if n in DERIVED_UNITS})
    out.attrs = {**samples.attrs, "units": units}
    return out


def add_climate_features(samples: pd.DataFrame) -> pd.DataFrame:
    """Per-site means (:data:`CLIMATE_FEATURES`) over the samples' own rows.

    For a table without the sites dataset behind it; :func:`run_sitecv` uses the full
    meteorological record instead (:func:`site_meteo_features`).
    """
    out = samples.copy()
    for name, source in CLIMATE_FEATURES.items():
        if source in out.columns:
            out[name] = out.groupby("site")[source].transform("mean").astype(np.float32)
    units = dict(samples.attrs.get("units", {}))
    units.update({n: DERIVED_UNITS[n] for n, s in CLIMATE_FEATURES.items() if s in out.columns})
    out.attrs["units"] = units
    return out


def sitecv_settings(seed: int = 0, n_samples: int | None = None) -> TrainSettings:
    """Training settings tuned for this small tabular problem (about 10⁴ site-months).

    A site-only network (λ = 0) of two hidden layers of 64, with dropout 0.2 and AdamW weight
    decay 0.01, batches of 512 (2048 for more than 40 000 samples, e.g. daily files),
    learning rate 10⁻³, at most 60 epochs stopped early after 10 without improvement on each
    member's own 15 % of the training sites, and an ensemble of 5 members averaged. The package
    defaults (one member, batches of 2048, 30 epochs: a few hundred steps) underfit and vary
    much between folds. Trees keep the package defaults. ``n_jobs = -1``: every core.

    Parameters
    ----------
    seed
        Seed of the first member (members use ``seed + i``) and of the trees.
    n_samples
        Number of training samples, to pick the batch size.
    """
    from fluxbridge.training import TrainSettings

    batch = 2048 if n_samples is not None and n_samples > 40_000 else 512
    return TrainSettings(seed=seed, width=64, depth=2, dropout=0.2, weight_decay=0.01, lr=1e-3,
                         batch_size=batch, epochs=60, patience=10, n_ensemble=5, n_jobs=-1)


def resolve_settings(samples: pd.DataFrame, settings: TrainSettings | None, seed: int
                     ) -> TrainSettings:
    """``settings`` (default :func:`sitecv_settings`) with the features of
    :data:`DEFAULT_FEATURES` present in ``samples`` when it names none."""
    import dataclasses

    settings = sitecv_settings(seed, len(samples)) if settings is None else settings
    if settings.features is None:
        names = [f for f in DEFAULT_FEATURES if f in samples.columns]
        settings = dataclasses.replace(settings, features=tuple(names))
    return settings


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
        :class:`fluxbridge.training.TrainSettings`; :func:`sitecv_settings` with this seed
        otherwise. Its ``features`` default to those of :data:`DEFAULT_FEATURES` present in
        ``samples``.
    progress
        Show progress bars.
    checkpoint_dir
        Where network checkpoints go (a killed run resumes from them).

    Returns
    -------
    pd.DataFrame
        ``site, time, fold, igbp, observed, weight`` and one column per model [g m-2 d-1].
    """
    from fluxbridge.training import cross_validate, make_folds

    settings = resolve_settings(samples, settings, seed)
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
    if existing:  # a finished run's checkpoints: nothing to resume, and maybe other settings
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def run_sitecv(
    data: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
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
        Site metadata (BIF long-format CSV/XLSX or a site list) with coordinates and IGBP class,
        or several such tables: a site takes its row from the first that has it (the BIF, then
        the FLUXNET2015 site list for the Greenland and Svalbard sites the BIF lacks). Sites in
        none are left out with a warning (listed in the provenance).
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
        :class:`fluxbridge.training.TrainSettings` (default: :func:`sitecv_settings` with ``seed``).
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
    tables = [metadata] if isinstance(metadata, (str, os.PathLike)) else list(metadata)
    sites: xr.Dataset = read_sites(paths, read_site_metadata(*tables), time_step=step,
                                   on_missing_metadata="skip")
    sites = read_extra_meteo(paths, sites)
    samples = site_samples(sites, None, features=SITECV_FEATURES, meteo_from="site")
    samples = add_site_features(samples, site_meteo_features(sites))
    if infer_step_days(samples["time"]) > 40:
        raise InputError("site records are coarser than monthly", path=data, variable="time",
                         expected="MM or DD files")
    settings = resolve_settings(samples, settings, seed)
    start = time.perf_counter()
    predictions = sitecv_predictions(samples, folds=folds, seed=seed, models=models,
                                     settings=settings, progress=progress,
                                     checkpoint_dir=out / "checkpoints")
    provenance = {"data": str(Path(data).resolve()), "metadata": [str(t) for t in tables],
                  "n_files": len(paths), "folds": folds, "seed": seed,
                  "features": list(settings.features or ()), "settings": settings.to_dict(),
                  "fit_seconds": round(time.perf_counter() - start, 1),
                  "skipped_sites": sites.attrs.get("skipped_sites", [])}
    result = write_sitecv(predictions, models, out, step, provenance=provenance)
    log.info("site cross-validation written to %s", out)
    return result
