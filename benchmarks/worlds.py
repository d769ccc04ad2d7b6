"""The demo's twin-world targets over several worlds: is one world's verdict luck?

One twin world is one draw of the hidden legacy field, the tower network and the inversion
errors. Whether the dual model's global annual NEE lands within the inversion ensemble's spread
of the truth depends first on whether the ensemble mean itself does, and that is a property of
the draw. This benchmark writes the standard world with several seeds and, in each, trains the
site-only and the dual model exactly as ``make demo`` does (all sites, the default
configuration), then scores both against the truth:

* regional monthly RMSE and mean absolute regional annual bias, and their change dual vs
  site-only (targets: down at least 30 % and 50 %);
* global annual NEE (mean over the years) against the truth, in units of the inversion
  members' spread of the global total, for both models and for the inversion mean itself
  (target: the dual within the spread, ``|z| <= 1``);
* with ``--leave-region-out``, the headline test of the constraint: each region's totals from
  the dual model trained without that region's targets (``dual_withheld``), beside the oracle
  of the correction's form (the hierarchical correction fitted to the *truth* of the other
  regions, the site-only network held fixed: ``oracle_withheld``) and the same correction
  fitted to the other regions' inversion targets (``correction_withheld``), pooled and by
  region (``tuning.offset.transfer`` as configured), and ``*_tested`` or ``*_whole_mean``
  with the other choice (the share of the shared mean that a leave-one-region-out test among
  the other regions supports, or all of it);
* with ``--published``, the published setting (the network itself constrained, no grid
  correction, one fixed sparse draw of K cell-days per region-month) as a model of its own.

Writes ``benchmarks/results/worlds.json`` ({"meta": {...}, "rows": [...]}, one row per world;
rewritten after each world, so a killed run keeps its finished worlds).

Run from the repository root: ``python -P benchmarks/worlds.py [--seeds 0 1 2 ...]``; about
two minutes per world on two cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def score_world(manifest: Path, epochs: int | None,
                constraint: dict[str, Any] | None = None, leave_out: bool = False,
                published: bool = False, tuning: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Train site-only and dual in one world as the demo does (``constraint``: settings of the
    constraint section that differ from the defaults); their scores against the truth, and
    with ``leave_out`` those of every region's totals from the runs without its targets."""
    from fluxbridge.config import parse_config
    from fluxbridge.evaluation.regional import (
        global_annual,
        global_spread_check,
        member_global_annual,
        regional_metrics,
        regional_summary,
        targets_frames,
    )
    from fluxbridge.features import site_samples
    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.inputs import open_world
    from fluxbridge.run_models import PUBLISHED, network_terms
    from fluxbridge.studies.grid_totals import regional_series
    from fluxbridge.studies.leave_region_out import leave_region_out
    from fluxbridge.studies.transfer import transfer_bounds
    from fluxbridge.training import train_ensemble

    world = open_world(manifest)
    overrides: dict[str, Any] = {"constraint": constraint or {}, "tuning": tuning or {}}
    if epochs is not None:
        overrides["network"] = {"epochs": epochs}
    cfg = parse_config(overrides)
    samples = site_samples(world.sites, world.predictors, features=cfg.features)
    grid = GridFeatures.from_dataset(world.predictors, world.regions, features=cfg.features)
    sites = np.unique(samples["site"])
    series: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    runs = [("site_only", cfg.with_lambda(0.0)), ("dual", cfg)]
    if published:
        runs.append((PUBLISHED, network_terms(PUBLISHED, cfg, None)[0]))
    for name, run_cfg in runs:
        t0 = time.perf_counter()
        members = train_ensemble(samples, run_cfg, train_sites=sites,
                                 grid=grid, targets=world.targets, regions=world.regions,
                                 progress=False)
        seconds[name] = time.perf_counter() - t0
        model = members[0] if len(members) == 1 else members
        series[name] = regional_series(model, grid, world.regions)
    series["inversion_mean"], spread = targets_frames(world.targets)
    truth = world.truth_regional
    if leave_out:
        t0 = time.perf_counter()
        series["dual_withheld"] = leave_region_out(
            samples, cfg, grid=grid, targets=world.targets, regions=world.regions,
            train_sites=sites).drop(columns="heldout")
        seconds["dual_withheld"] = time.perf_counter() - t0
        configured = cfg.tuning.offset.tested
        other = "_whole_mean" if configured else "_tested"
        for tested, suffix in ((configured, ""), (not configured, other)):
            bounds = transfer_bounds(series["site_only"], truth, series["inversion_mean"],
                                     spread, grid, world.regions,
                                     sigma_floor=cfg.constraint.sigma_floor,
                                     harmonics=cfg.tuning.offset.harmonics, tested=tested)
            series["oracle_withheld" + suffix] = bounds["oracle"]
            series["correction_withheld" + suffix] = bounds["shared_correction"]
    metrics = regional_metrics(series, truth)
    regional = regional_summary(metrics)
    annual = pd.concat([global_annual(series), global_annual({"truth": truth})])
    summary, _ = global_spread_check(annual, member_global_annual(world.targets))
    row: dict[str, Any] = {"train_seconds": seconds}
    for name in series:
        g = summary[summary["model"] == name].iloc[0]
        row[name] = {
            "regional_rmse_tgc": float(regional.loc[name, "regional_monthly_rmse_tgc"]),
            "annual_bias_tgc": float(regional.loc[name, "regional_mean_abs_annual_bias_tgc"]),
            "global_pgc": float(g["nee_pgc"]), "z": float(g["z"]),
            "within_spread": bool(g["within_spread"]),
            "frac_years_within": float(g["frac_years_within"])}
    g = summary.iloc[0]
    row.update(truth_global_pgc=float(g["truth_pgc"]),
               inversion_spread_pgc=float(g["inversion_spread_pgc"]))
    per_region = metrics[metrics["region"] != "all"].pivot(index="region", columns="model",
                                                           values="monthly_rmse")
    row["region_rmse_tgc"] = per_region.round(3).to_dict(orient="index")
    so, du = row["site_only"], row["dual"]
    row["rmse_change"] = du["regional_rmse_tgc"] / so["regional_rmse_tgc"] - 1
    row["bias_change"] = du["annual_bias_tgc"] / so["annual_bias_tgc"] - 1
    row["dual_minus_inversion_mean_pgc"] = du["global_pgc"] - row["inversion_mean"]["global_pgc"]
    return row


def print_table(rows: list[dict[str, Any]], header: bool = True) -> None:
    withheld = [m for m in ("dual_withheld", "correction_withheld", "oracle_withheld",
                            "published") if m in rows[0]]
    if header:
        print(f"{'seed':>4} {'truth':>7} {'spread':>7} {'z inv':>7} {'z dual':>7} {'z site':>7} "
              f"{'dual-inv':>9} {'RMSE %':>7} {'bias %':>7}"
              + "".join(f" {m[:14] + ' RMSE %':>21}" for m in withheld))
    for r in rows:
        so = r["site_only"]["regional_rmse_tgc"]
        print(f"{r['seed']:>4} {r['truth_global_pgc']:>7.2f} {r['inversion_spread_pgc']:>7.2f} "
              f"{r['inversion_mean']['z']:>7.2f} {r['dual']['z']:>7.2f} "
              f"{r['site_only']['z']:>7.2f} {r['dual_minus_inversion_mean_pgc']:>9.3f} "
              f"{100 * r['rmse_change']:>7.1f} {100 * r['bias_change']:>7.1f}"
              + "".join(f" {100 * (r[m]['regional_rmse_tgc'] / so - 1):>21.1f}"
                        for m in withheld))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many worlds meet each target."""
    n = len(rows)

    def count(test: Any) -> str:
        return f"{sum(bool(test(r)) for r in rows)}/{n}"

    return {"dual_within_spread": count(lambda r: r["dual"]["within_spread"]),
            "inversion_mean_within_spread": count(lambda r: r["inversion_mean"]["within_spread"]),
            "rmse_down_30pct": count(lambda r: r["rmse_change"] <= -0.30),
            "bias_down_50pct": count(lambda r: r["bias_change"] <= -0.50),
            "median_abs_z_dual": float(np.median([abs(r["dual"]["z"]) for r in rows])),
            "median_abs_z_inversion_mean": float(
                np.median([abs(r["inversion_mean"]["z"]) for r in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the experiment's)")
    parser.add_argument("--constraint", nargs="*", default=[], metavar="KEY=VALUE",
                        help="constraint settings that differ from the defaults, e.g. K=16")
    parser.add_argument("--tuning", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                        help="tuning settings that differ from the defaults, e.g. "
                             "offset.transfer=mean")
    parser.add_argument("--leave-region-out", action="store_true",
                        help="also withhold each region's targets in turn (about 11 trainings)")
    parser.add_argument("--published", action="store_true",
                        help="also train the published setting (no correction, fixed draw)")
    parser.add_argument("--out", type=Path, default=RESULTS / "worlds.json")
    args = parser.parse_args()
    constraint = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.constraint)}
    tuning: dict[str, Any] = {}
    for key, value in (a.split("=", 1) for a in args.tuning):
        section, _, name = key.partition(".")
        tuning.setdefault(section, {})[name] = yaml.safe_load(value)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    import torch

    from fluxbridge.synthetic import synthesize

    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "what": "site-only and dual models trained as in the demo in twin worlds of "
                    "several seeds, scored against each world's truth",
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "torch_threads": torch.get_num_threads()},
            "epochs": args.epochs, "constraint": constraint, "tuning": tuning,
            "seeds": args.seeds,
            "complete": False}
    rows: list[dict[str, Any]] = []

    def save() -> None:
        meta["summary"] = summarise(rows) if rows else {}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

    for seed in args.seeds:
        tmp = Path(tempfile.mkdtemp(prefix=f"fluxbridge-world{seed}-"))
        try:
            t0 = time.perf_counter()
            manifest = synthesize(tmp / "world", seed=seed, progress=False)
            row = {"seed": seed, **score_world(manifest, args.epochs, constraint,
                                                 args.leave_region_out, args.published, tuning),
                   "seconds": time.perf_counter() - t0}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(row)
        save()
        print_table(rows[-1:], header=len(rows) == 1)
    meta["complete"] = True
    save()
    print_table(rows)
    print(json.dumps(meta["summary"], indent=1))
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
