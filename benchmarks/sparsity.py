"""The paper's hypothesis in the twin world: does a sparse sample of cells constrain the model?

Trains the dual model (λ > 0) with the fixed, resampled and control-variate estimators at
K ∈ {4, 16, 64, 256} cell-days per region-month and with the exact operator, plus the site-only
model; reports each one's regional monthly RMSE and mean absolute annual bias against the truth,
its global annual NEE and its training time. Every run uses the experiment's default settings
except the number of epochs (default 10: the regional term of the demo's dual model converges
within about five epochs, and the exact operator costs about a second per step on two cores).

Writes ``benchmarks/results/sparsity.json`` ({"meta": {...}, "rows": [...]}; rewritten after
every finished run, so a killed run leaves its partial table) and
``benchmarks/results/sparsity.png``.

Run from the repository root: ``python -P benchmarks/sparsity.py [--world MANIFEST]``; without
``--world`` it uses the world of ``runs/demo`` (key ``world`` of ``runs/demo/manifest.json``,
from ``make demo``) or writes the standard world to a temporary directory.
``--figure-only`` redraws the figure from the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def demo_world() -> Path | None:
    """The world manifest of ``runs/demo``, if that run exists."""
    run = ROOT / "runs" / "demo" / "manifest.json"
    if run.exists():
        world = run.parent / json.loads(run.read_text())["world"]
        if world.exists():
            return world
    default = ROOT / "runs" / "demo" / "world" / "manifest.json"
    return default if default.exists() else None


def draw(json_path: Path, png_path: Path) -> None:
    from fluxbridge.evaluation.figures import sparsity

    table = pd.DataFrame(json.loads(json_path.read_text())["rows"])
    sparsity(table).savefig(png_path, dpi=110)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=None, help="world manifest.json")
    parser.add_argument("--Ks", type=int, nargs="+", default=[4, 16, 64, 256])
    parser.add_argument("--estimators", nargs="+",
                        default=["fixed", "resampled", "control_variate"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact operator")
    parser.add_argument("--out", type=Path, default=RESULTS / "sparsity.json")
    parser.add_argument("--figure-only", action="store_true")
    return parser.parse_args()


def describe(manifest: Path, world: Any, settings: Any, n_fit: int, n_val: int,
             epochs: int) -> dict[str, Any]:
    """The results' ``meta``: what was run, on which machine and world, with which settings."""
    import torch

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),  # started
        "what": "dual model trained with each estimator and K; regional monthly RMSE and mean "
                "absolute annual bias against the true regional totals of the twin world",
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "world": str(manifest), "n_regions": int(world.targets.sizes["region"]),
        "n_months": int(world.targets.sizes["time"]), "n_fit_sites": n_fit,
        "n_val_sites": n_val, "epochs": epochs,
        "settings": {k: v for k, v in settings.to_dict().items()
                     if k in ("seed", "network", "constraint", "tuning")},
        "complete": False,
    }


def main() -> None:
    args = arguments()
    png = args.out.with_suffix(".png")
    if args.figure_only:
        draw(args.out, png)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("fluxbridge.training").setLevel(logging.WARNING)

    from fluxbridge.config import parse_config
    from fluxbridge.features import site_samples
    from fluxbridge.grid_features import GridFeatures
    from fluxbridge.io.inputs import open_world
    from fluxbridge.studies.sparsity import sparsity_study
    from fluxbridge.training import split_validation

    manifest = args.world or demo_world()
    if manifest is None:
        from fluxbridge.synthetic import synthesize

        manifest = synthesize(Path(tempfile.mkdtemp()) / "world", progress=False)
    world = open_world(manifest)
    cfg = parse_config({"network": {"epochs": args.epochs}})
    samples = site_samples(world.sites, world.predictors, features=cfg.features)
    grid = GridFeatures.from_dataset(world.predictors, world.regions, features=cfg.features)
    sites = np.unique(samples["site"])
    fit_sites, val_sites = split_validation(sites, cfg.tuning.training.val_fraction, cfg.seed)

    rows: list[dict[str, Any]] = []
    meta = describe(manifest, world, cfg, len(fit_sites), len(val_sites), args.epochs)
    t0 = time.perf_counter()

    def save(row: dict[str, Any] | None = None) -> None:
        if row is not None:
            rows.append(row)
        meta["total_seconds"] = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

    table = sparsity_study(samples, cfg, grid=grid, targets=world.targets,
                           regions=world.regions, reference=world.truth_regional,
                           train_sites=fit_sites, val_sites=val_sites, Ks=args.Ks,
                           estimators=args.estimators, include_exact=not args.no_exact,
                           on_row=save)
    meta["complete"] = True
    meta["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    save()
    draw(args.out, png)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"total {meta['total_seconds']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
