"""Is the network as good as the trees at site level? Leave-site-out skill on identical folds.

The network (an ensemble, averaged) is cross-validated with one training setting changed at a
time, beside a random forest and XGBoost on the very same site folds, and scored by time scale
(all records, across-site means, mean seasonal cycle, anomalies) and by IGBP class; the training
cost (seconds per fold, one thread) stands beside the skill.

Data sets:

* ``real_mm`` / ``real_dd``: the FLUXNET2015 monthly or daily files of the shared real data with
  the features of ``fluxbridge sitecv`` (tower meteorology, water availability, site climate and
  mean seasonal cycles of the meteorology);
* ``real_mm_modis``: the MM sites with MOD13A1 extractions (nine), greenness available to the
  ``green`` variants;
* ``demo``: the demo's twin world (``--world``, written by ``fluxbridge synth --config
  demo_world.yaml``), with the experiment's gridded features (the predictors and their
  location features) and its 3 site folds.

``base`` is the data set's own setting (``sitecv_config``; the demo's site-only network); the
``*_green`` variants add features and the ``*_no_location`` ones remove the location features,
to every model alike. The settings were
compared on the scores of the same folds (no nested search); ``--fold-seed`` deals the sites
anew to check a choice. ``--cost`` only times the training on fold 0, for a machine with
nothing else running (the seconds per fold of a full run depend on the machine's load).

Writes ``benchmarks/results/site_skill.json`` (merged with earlier runs, keyed by data set,
folds and fold seed, then variant) and prints a table. Run from the repository root, e.g.
``python -P benchmarks/site_skill.py real_mm --variants base small --baselines --folds 10``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "site_skill.json"
REAL = Path("/work/shared/data/real")
SCALES = ("all", "across_site", "seasonal", "anomaly")

def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested mappings merged."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merged(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


COSINE = {"tuning": {"training": {"lr_schedule": "cosine"}}}
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "small": {"network": {"width": 64, "depth": 2, "n_ensemble": 5}},
    "cosine": COSINE,
    "no_dropout": {"network": {"dropout": 0.0, "weight_decay": 1e-4}},
    "wide": {"network": {"width": 128, "depth": 3}},
    "ens10": {"network": {"n_ensemble": 10}},
    "long_cosine": merged(COSINE, {"network": {"epochs": 150, "patience": 30}}),
    "log_precip": {"transform": "log_precip"},
    "strong_reg": {"network": {"dropout": 0.3, "weight_decay": 0.05}},
    "narrow": {"network": {"width": 32}},
    "val25": {"tuning": {"training": {"val_fraction": 0.25}}},
    "no_embed": {"network": {"embed_dim": 0}},
    "wide_ens10": {"network": {"width": 128, "depth": 3, "n_ensemble": 10}},
    "wide_b256": {"network": {"width": 128, "depth": 3, "batch_size": 256}},
    "wider": {"network": {"width": 256, "depth": 3}},
    "deep": {"network": {"width": 128, "depth": 4}},
    "wide_log": {"network": {"width": 128, "depth": 3}, "transform": "log_precip"},
    "demo_ens5": {"network": {"n_ensemble": 5}},
    "demo_wide": {"network": {"width": 128}},
    "demo_reg": {"network": {"dropout": 0.1, "weight_decay": 0.01}},
    "green": {"transform": "greenness"},
    "rf_green": {"transform": "greenness", "kind": "rf"},
    "xgboost_green": {"transform": "greenness", "kind": "xgboost"},
    "demo_ens3": {"network": {"n_ensemble": 3}},
    "demo_no_location": {"transform": "no_location"},
    "rf_no_location": {"transform": "no_location", "kind": "rf"},
    "xgboost_no_location": {"transform": "no_location", "kind": "xgboost"},
    "quantile": {"transform": "quantile"},
}
"""Training settings tried, each a mapping merged into the data set's network configuration."""


GREENNESS = ("ndvi", "evi", "nirv")
"""MODIS greenness bands of the remote-sensing subset."""

Transform = Callable[[pd.DataFrame, list[str]], tuple[pd.DataFrame, list[str]]]


def log_precip(samples: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Precipitation features as log(1 + P)."""
    out = samples.copy()
    for name in features:
        if name.startswith("precip"):
            out[name] = np.log1p(out[name].clip(lower=0))
    return out, features


def quantile(samples: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Every feature as the normal quantile of its rank (over all rows; a diagnosis only)."""
    from scipy.stats import norm

    out = samples.copy()
    for name in features:
        rank = out[name].rank(pct=True)
        out[name] = norm.ppf(rank.clip(0.001, 0.999))
    return out, features


def site_means(samples: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Each time-varying feature's per-site mean and mean seasonal cycle added (the site's own
    predictors only, as ``fluxbridge sitecv`` adds them to FLUXNET files)."""
    out = samples.copy()
    month = pd.DatetimeIndex(out["time"]).month
    added = []
    for name in features:
        out[f"{name}_site_mean"] = out.groupby("site")[name].transform("mean")
        out[f"{name}_msc"] = out.groupby([out["site"], month])[name].transform("mean")
        added += [f"{name}_site_mean", f"{name}_msc"]
    return out, [*features, *added]


def no_location(samples: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The location features (:mod:`fluxbridge.location`: each predictor's mean over the record
    and mean seasonal cycle, from the gridded predictors at the tower's cell) left out."""
    from fluxbridge.location import location_source

    return samples, [f for f in features if location_source(f) is None]


def greenness(samples: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The monthly MODIS greenness added to the features, with each band's site mean and mean
    seasonal cycle (months without a clear composite are masked)."""
    out, added = site_means(samples, list(GREENNESS))
    return out, [*features, *added]


TRANSFORMS: dict[str, Transform] = {"greenness": greenness, "log_precip": log_precip,
                                    "no_location": no_location, "quantile": quantile}


def real_samples(step: str) -> pd.DataFrame:
    """Site samples of the real FLUXNET2015 ``step`` files, as ``fluxbridge sitecv`` builds them."""
    from fluxbridge.io.fluxnet import find_site_files_at_step
    from fluxbridge.studies.sitecv import sitecv_samples

    paths, step = find_site_files_at_step(REAL / "fluxnet2015" / step, step)
    return sitecv_samples(paths, [REAL / "sites" / "FLX_AA-Flx_BIF_LATEST.csv"], step)[1]


def real_setup(step: str) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Samples, the network settings of ``fluxbridge sitecv`` and its features."""
    from fluxbridge.studies.sitecv import resolve_config

    samples = real_samples(step)
    cfg = resolve_config(samples, None, 0)
    return samples, cfg.model_dump(mode="json", include={"network", "tuning", "constraint"}), \
        list(cfg.features)


def modis_setup() -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """The FLUXNET2015 MM sites that have MOD13A1 extractions, with monthly NDVI, EVI and NIRv
    (composites of SummaryQA 0-1 averaged by month) beside the meteorological features; the
    greenness enters the features only through the ``greenness`` transform."""
    from fluxbridge.io.modis import read_modis_points

    samples, base, features = real_setup("MM")
    points = read_modis_points(REAL / "modis" / "MOD13A1_phenofit_10sites.csv")
    points = points[points["qa"] <= 1]
    month = pd.DatetimeIndex(points["date"]).to_period("M").to_timestamp()
    monthly = points.groupby([points["site"], month])[list(GREENNESS)].mean().reset_index()
    monthly = monthly.rename(columns={"date": "time"})
    keep = samples[samples["site"].isin(set(monthly["site"]))]
    time = pd.DatetimeIndex(keep["time"]).to_period("M").to_timestamp()
    merged_rows = keep.assign(_t=time).merge(monthly.rename(columns={"time": "_t"}),
                                             on=["site", "_t"], how="left")
    return merged_rows.drop(columns="_t"), base, features


def demo_setup(world: Path) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Samples of the demo's twin world and the demo's settings (site-only) and features."""
    from fluxbridge.config import parse_config
    from fluxbridge.demo import demo_settings
    from fluxbridge.features import site_samples
    from fluxbridge.io.inputs import open_inputs

    settings = demo_settings(world.parent)
    settings["world"]["dir"] = str(world)
    cfg = parse_config(settings)
    inputs = open_inputs(*cfg.input_spec(), **cfg.input_options())
    samples = site_samples(inputs.sites, inputs.predictors, features=cfg.features,
                           meteo_from=cfg.meteo_from)
    base = cfg.with_lambda(0.0).model_dump(mode="json",
                                           include={"network", "tuning", "constraint"})
    return samples, base, list(cfg.features)


def run_cv(samples: pd.DataFrame, settings: dict[str, Any], features: list[str], kinds: tuple,
           folds: pd.Series) -> tuple[pd.DataFrame, float, dict[str, Any]]:
    """Out-of-fold predictions, the mean seconds per fold and the network settings used."""
    from fluxbridge.config import parse_config
    from fluxbridge.training import cross_validate

    cfg = parse_config(merged(settings, {"tuning": {"baselines": {"n_jobs": 1}}}))
    cfg = cfg.model_copy(update={"features": tuple(features)})
    t0 = time.perf_counter()
    out = cross_validate(samples, cfg, kinds=kinds, folds=folds, progress=False)
    return out, (time.perf_counter() - t0) / folds.nunique(), cfg.network.model_dump(mode="json")


def fold_cost(samples: pd.DataFrame, settings: dict[str, Any], features: list[str],
              kind: str, folds: pd.Series) -> float:
    """Seconds to train one model on the training sites of fold 0, nothing else running."""
    from fluxbridge.config import parse_config
    from fluxbridge.training import train_baseline, train_ensemble

    cfg = parse_config(merged(settings, {"tuning": {"baselines": {"n_jobs": 1}}}))
    cfg = cfg.model_copy(update={"features": tuple(features)})
    train = sorted(folds.index[folds.to_numpy() != 0].astype(str))
    t0 = time.perf_counter()
    if kind == "nn":
        train_ensemble(samples, cfg, train_sites=train, progress=False)
    else:
        train_baseline(kind, samples, cfg, train_sites=train)
    return time.perf_counter() - t0


def skill(pred: pd.DataFrame, model: str) -> dict[str, Any]:
    """R² by time scale and by IGBP class (all records) of one model's column."""
    from fluxbridge.evaluation.metrics import site_metrics

    m = site_metrics(pred, [model]).set_index("scale")["r2"]
    g = site_metrics(pred, [model], by="igbp", scales=("all",)).set_index("igbp")["r2"]
    return {"r2": {s: round(float(m[s]), 4) for s in SCALES if s in m.index},
            "r2_igbp": {str(k): round(float(v), 4) for k, v in g.items()}}


def jobs_settings(name: str) -> dict[str, Any]:
    """The settings of a variant (empty for the trees)."""
    return VARIANTS.get(name, {})


def save(key: str, n_sites: int, name: str, run: dict[str, Any]) -> None:
    """Add one run to the results file, read afresh (runs of other data sets kept)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    entry = results.setdefault(key, {"n_sites": n_sites, "runs": {}})
    entry["runs"][name] = run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", choices=("real_mm", "real_dd", "real_mm_modis", "demo"))
    p.add_argument("--variants", nargs="*", default=["base"])
    p.add_argument("--baselines", action="store_true", help="also fit RF and XGBoost")
    p.add_argument("--folds", type=int, default=10, help="folds the sites are dealt into")
    p.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment")
    p.add_argument("--cost", action="store_true",
                   help="only time the training of fold 0 (run on an otherwise idle machine)")
    p.add_argument("--world", type=Path, default=ROOT / "benchmarks" / ".worlds" / "demo_small")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from fluxbridge.training import make_folds

    torch.set_num_threads(1)
    setups: dict[str, Callable[[], tuple]] = {
        "demo": lambda: demo_setup(args.world), "real_mm_modis": modis_setup,
        "real_mm": lambda: real_setup("MM"), "real_dd": lambda: real_setup("DD")}
    samples, base, features = setups[args.data]()
    folds = make_folds(samples, args.folds, "site", args.fold_seed)
    key = f"{args.data}/{args.folds}folds/foldseed{args.fold_seed}"
    jobs = [(v, (VARIANTS[v].get("kind", "nn"),),
             {k: x for k, x in VARIANTS[v].items() if k != "kind"}) for v in args.variants]
    if args.baselines:
        jobs += [(k, (k,), {}) for k in ("rf", "xgboost")]
    for name, kinds, extra in jobs:
        extra = dict(extra)
        data, names = TRANSFORMS[extra.pop("transform")](samples, features) \
            if "transform" in extra else (samples, features)
        if args.cost:
            seconds = fold_cost(data, merged(base, extra), names, kinds[0], folds)
            save(f"{key}/cost", int(folds.size), name, {"seconds_fold0": round(seconds, 1)})
            print(f"{key:28s} {name:14s} one fold {seconds:6.1f} s", flush=True)
            continue
        pred, seconds, network = run_cv(data, merged(base, extra), names, kinds, folds)
        run = {"seconds_per_fold": round(seconds, 1), "settings": jobs_settings(name),
               "network": network if kinds == ("nn",) else None,
               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               **skill(pred, kinds[0])}
        save(key, int(folds.size), name, run)
        r2 = run["r2"]
        print(f"{key:28s} {name:14s} " + " ".join(f"{s}={r2.get(s, np.nan):.3f}"
                                                  for s in SCALES)
              + f"  {seconds:6.1f} s/fold", flush=True)


if __name__ == "__main__":
    main()
