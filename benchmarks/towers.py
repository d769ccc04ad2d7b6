"""Tall towers in a twin world: footprint-only, regional-only and both constraints.

The demo world (three years at 2 degrees) is written with ten tall towers
(``n_towers: 10``, one afternoon receptor a week, :mod:`fluxbridge.synthetic.towers`); four
models are trained as the demo trains its dual model (same configuration, all sites):

* ``site_only`` — λ = 0, no towers;
* ``footprint_only`` — the footprint term alone (λ = 0, λ_f = 1);
* ``regional_only`` — the regional term alone (λ = 1, no towers): the demo's dual model;
* ``both`` — λ = 1 and λ_f = 1.

Each model's regional monthly totals are scored against the world's truth
(:func:`fluxbridge.evaluation.towers.tower_scores`) in the towers' footprint region (the
regions carrying at least 10 % of the footprint weight on land), on the footprint cells (the
fewest cells holding 80 % of it, summed) and everywhere. Targets: the
footprint-only RMSE at least 30 % below the site-only one in the footprint region; both
constraints at least as good as the regional one alone everywhere.

Writes ``benchmarks/results/towers.json``. Run from the repository root:
``python -P benchmarks/towers.py [--seed 0] [--world DIR]``; about ten minutes on two cores.
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
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TOWER_WORLD = {"n_towers": 10, "tower_every_days": 7}


def demo_world_config() -> dict[str, Any]:
    """The demo world's configuration with the towers."""
    text = resources.files("fluxbridge.templates").joinpath("demo_world.yaml").read_text()
    return {**(yaml.safe_load(text) or {}), **TOWER_WORLD}


def score(manifest: Path, epochs: int | None, train_seed: int = 0, n_members: int = 1
          ) -> dict[str, Any]:
    """Train the four models in the world of ``manifest``; their scores against the truth."""
    from fluxbridge.config import parse_config
    from fluxbridge.evaluation.towers import (
        footprint_cells,
        footprint_scores,
        footprint_weight_by_region,
    )
    from fluxbridge.features import site_samples
    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.inputs import open_world
    from fluxbridge.io.towers import towers_of
    from fluxbridge.studies.grid_totals import grid_field, regional_series
    from fluxbridge.training import train_ensemble
    from fluxbridge.training.footprint import footprint_operator

    world = open_world(manifest)
    towers = towers_of(world.files)
    if towers is None:
        raise SystemExit(f"{manifest.parent} has no towers (n_towers: 0)")
    network = {"n_ensemble": n_members, **({} if epochs is None else {"epochs": epochs})}
    cfg = parse_config({"seed": train_seed, "network": network})
    samples = site_samples(world.sites, world.predictors, features=cfg.features)
    grid = GridFeatures.from_dataset(world.predictors, world.regions, features=cfg.features)
    sites = np.unique(samples["site"])
    runs = {"site_only": (cfg.with_lambda(0.0), None),
            "footprint_only": (cfg.with_lambda(0.0), towers),
            "regional_only": (cfg, None), "both": (cfg, towers)}
    op = footprint_operator(towers, grid, world.regions)
    series, fields, seconds = {}, {}, {}
    for name, (run_cfg, run_towers) in runs.items():
        t0 = time.perf_counter()
        members = train_ensemble(samples, run_cfg, train_sites=sites, grid=grid,
                                 targets=world.targets, regions=world.regions,
                                 towers=run_towers, progress=False, name=name)
        seconds[name] = time.perf_counter() - t0
        model = members[0] if len(members) == 1 else members
        series[name] = regional_series(model, grid, world.regions)
        fields[name] = grid_field(model, grid).astype(np.float64)
        print(f"{name}: trained in {seconds[name]:.0f} s", flush=True)
    truth = world.truth_grid.values[:, grid.lat_index, grid.lon_index]
    scores, seen = footprint_scores(op, grid, world.regions, series, fields,
                                    world.truth_regional, truth)
    shares = footprint_weight_by_region(op, grid.region, world.regions)
    cells = footprint_cells(op)
    return {"n_footprint_cells": int(cells.sum()), "n_cells": int(cells.size),
            "footprint_share": shares.round(4).to_dict(), "footprint_region": seen,
            "n_receptors": len(towers.table), "train_seconds": seconds,
            "scores": scores.to_dict(orient="records")}


def print_scores(result: dict[str, Any]) -> None:
    rows = result["scores"]
    print(f"footprint region: {', '.join(result['footprint_region'])}")
    print(f"{'model':>15} {'domain':>17} {'RMSE TgC/month':>15} {'|annual bias| TgC/yr':>21}")
    for r in rows:
        print(f"{r['model']:>15} {r['domain']:>17} {r['monthly_rmse_tgc']:>15.2f} "
              f"{r['mean_abs_annual_bias_tgc']:>21.1f}")


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets: footprint-only vs site-only in the footprint region, both vs regional-only
    everywhere (and in the footprint region)."""
    rmse = {(r["model"], r["domain"]): r["monthly_rmse_tgc"] for r in rows}
    change = rmse[("footprint_only", "footprint region")] \
        / rmse[("site_only", "footprint region")] - 1
    cells = rmse[("footprint_only", "footprint cells")] / rmse[("site_only", "footprint cells")]
    return {"footprint_only_vs_site_only_rmse_change_in_footprint_region": change,
            "footprint_only_vs_site_only_rmse_change_on_footprint_cells": cells - 1,
            "footprint_target_met": bool(change <= -0.30),
            "both_vs_regional_only_rmse_change_everywhere":
                rmse[("both", "everywhere")] / rmse[("regional_only", "everywhere")] - 1,
            "both_vs_regional_only_rmse_change_in_footprint_region":
                rmse[("both", "footprint region")] / rmse[("regional_only", "footprint region")]
                - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the experiment's)")
    parser.add_argument("--world", type=Path, default=None,
                        help="an existing world folder with towers (default: write one)")
    parser.add_argument("--train-seed", type=int, default=0,
                        help="seed of the networks (another one measures what training moves)")
    parser.add_argument("--members", type=int, default=1,
                        help="networks averaged per model (an ensemble)")
    parser.add_argument("--out", type=Path, default=RESULTS / "towers.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    import torch

    from fluxbridge.synthetic import synthesize

    torch.set_num_threads(1)
    tmp = None
    t0 = time.perf_counter()
    if args.world is None:
        tmp = Path(tempfile.mkdtemp(prefix="fluxbridge-towers-"))
        manifest = synthesize(tmp / "world", config=demo_world_config(), seed=args.seed,
                              progress=False)
    else:
        manifest = args.world / "manifest.json"
    world_seconds = time.perf_counter() - t0
    try:
        result = score(manifest, args.epochs, args.train_seed, args.members)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "what": "site-only, footprint-only, regional-only and both constraints trained as "
                    "the demo's dual model in the demo world with ten tall towers, scored "
                    "against the world's truth",
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "torch_threads": torch.get_num_threads()},
            "seed": args.seed, "train_seed": args.train_seed, "members": args.members,
            "epochs": args.epochs,
            "world": TOWER_WORLD,
            "world_seconds": world_seconds}
    out = {"meta": meta, **result, "verdicts": verdicts(result["scores"])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print_scores(result)
    print(json.dumps(out["verdicts"], indent=1))
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
