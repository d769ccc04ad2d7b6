"""Location features: skill at left-out towers against the upscaled regional totals.

Features that describe a place (:mod:`fluxbridge.location`) can raise a model's skill at towers
it never saw while spoiling its map: towers stand where they stand, and a feature that sets
one place apart lets a model learn what is true of towered places only. This benchmark
measures both sides on the demo's twin world, for one feature set at a time:

* **sites**: leave-site-out R² on the demo's 3 site folds (all records, site means, mean
  seasonal cycle, anomalies);
* **grid**: the model trained on every site, applied to every land cell and day of the grid
  (:class:`~fluxbridge.grid_features.GridFeatures`, the cells the upscaling fills), summed by
  region and month and scored against the world's true totals with the report's own metrics
  (monthly RMSE [TgC/month], mean |annual bias| [TgC/yr]), with global NEE [PgC/yr]
  (negative: uptake).

Feature sets: ``base`` (the ten predictors of the day), ``msc`` (+ their mean seasonal
cycles: the default), ``site_mean`` (+ the places' means over the record) and ``all`` (both).
Networks are site-only (λ = 0), one member, a seed per ``--seeds``; random forest and XGBoost
with ``--trees``.

Writes ``benchmarks/results/feature_sets.json``; run from the repository root:
``python -P benchmarks/feature_sets.py --world runs/demo/world --seeds 0 1 --trees``
(about ten minutes on two cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "feature_sets.json"
SCALES = ("all", "across_site", "seasonal", "anomaly")


def feature_sets() -> dict[str, list[str]]:
    """Name → features, each set the ten predictors plus some of their location features."""
    from fluxbridge.features import FEATURES

    base = list(FEATURES)
    msc = [f"{f}_msc" for f in base if f != "sw_in_pot"]
    means = [f"{f}_site_mean" for f in base]
    return {"base": base, "msc": base + msc, "site_mean": base + means,
            "all": base + means + msc}


def setup(world: Path) -> dict[str, Any]:
    """The demo's site-only configuration on ``world``, its samples and grid (every location
    feature), the true regional totals and the regions."""
    from fluxbridge.config import parse_config
    from fluxbridge.demo import demo_settings
    from fluxbridge.features import site_samples
    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.inputs import open_inputs

    settings = demo_settings(world.parent)
    settings["world"]["dir"] = str(world)
    cfg = parse_config({**settings, "features": feature_sets()["all"]}).with_lambda(0.0)
    inputs = open_inputs(*cfg.input_spec(), **cfg.input_options())
    samples = site_samples(inputs.sites, inputs.predictors, features=cfg.features,
                           meteo_from=cfg.meteo_from)
    grid = GridFeatures.from_dataset(inputs.predictors, inputs.regions, features=cfg.features)
    return {"cfg": cfg, "samples": samples, "grid": grid, "truth": inputs.truth_regional,
            "regions": inputs.regions}


def grid_of(features: list[str], data: dict[str, Any]) -> Any:
    """The grid features of ``data`` restricted to ``features``, in that order."""
    grid = data["grid"]
    idx = [grid.feature_names.index(f) for f in features]
    return dataclasses.replace(grid, values=grid.values[:, :, idx], feature_names=features,
                               units={f: grid.units[f] for f in features})


def run_one(kind: str, name: str, seed: int, data: dict[str, Any], folds: pd.Series
            ) -> dict[str, Any]:
    """Site skill and grid scores of one model on one feature set."""
    from fluxbridge.evaluation.metrics import site_metrics
    from fluxbridge.evaluation.regional import regional_metrics, regional_summary
    from fluxbridge.studies.grid_totals import regional_series
    from fluxbridge.training import cross_validate, train_baseline, train_ensemble

    features = feature_sets()[name]
    cfg = data["cfg"].model_copy(update={"features": tuple(features), "seed": seed})
    samples = data["samples"]
    t0 = time.perf_counter()
    cv = cross_validate(samples, cfg, kinds=(kind,), folds=folds, progress=False)
    r2 = site_metrics(cv, [kind]).set_index("scale")["r2"]
    sites = np.unique(samples["site"])
    model = train_ensemble(samples, cfg, train_sites=sites, progress=False)[0] \
        if kind == "nn" else train_baseline(kind, samples, cfg, train_sites=sites)
    series = regional_series(model, grid_of(features, data), data["regions"])
    truth = data["truth"].assign(time=data["truth"]["time"].astype(str).str[:7])
    summary = regional_summary(regional_metrics({kind: series}, truth)).loc[kind]
    years = series["time"].str[:4]
    return {
        "r2": {s: round(float(r2[s]), 4) for s in SCALES},
        "regional_monthly_rmse_tgc": round(float(summary["regional_monthly_rmse_tgc"]), 1),
        "regional_mean_abs_annual_bias_tgc": round(
            float(summary["regional_mean_abs_annual_bias_tgc"]), 1),
        "global_nee_pgc": round(float(series.groupby(years)["nee_tgc"].sum().mean()) / 1e3, 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="the demo's world folder")
    p.add_argument("--sets", nargs="*", default=list(feature_sets()))
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--trees", action="store_true", help="also random forest and XGBoost")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from fluxbridge.training import make_folds

    torch.set_num_threads(1)
    data = setup(args.world)
    folds = make_folds(data["samples"], 3, kind="site", seed=0)
    truth = data["truth"]
    years = truth["time"].astype(str).str[:4]
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "world": str(args.world), "n_sites": int(folds.size),
        "truth_global_nee_pgc": round(float(truth.groupby(years)["nee_tgc"].sum().mean())
                                      / 1e3, 2), "runs": {}}
    jobs = [("nn", s, seed) for s in args.sets for seed in args.seeds]
    jobs += [(k, s, 0) for k in ("rf", "xgboost") for s in args.sets] if args.trees else []
    print(f"{'model':8s} {'features':10s} seed  R2 all/site means/seasonal/anomaly   "
          "RMSE TgC/mo  |bias| TgC/yr  global PgC/yr", flush=True)
    for kind, name, seed in jobs:
        run = run_one(kind, name, seed, data, folds)
        results["runs"][f"{kind}/{name}/seed{seed}"] = run
        r2 = "/".join(f"{run['r2'][s]:.3f}" for s in SCALES)
        print(f"{kind:8s} {name:10s} {seed:4d}  {r2}   {run['regional_monthly_rmse_tgc']:10.1f}"
              f"  {run['regional_mean_abs_annual_bias_tgc']:12.1f}  {run['global_nee_pgc']:8.2f}",
              flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"truth global NEE {results['truth_global_nee_pgc']:.2f} PgC/yr; {RESULTS}")


if __name__ == "__main__":
    main()
