"""The paper's hypothesis in the twin world: does a sparse sample of cells constrain the model?

Trains the dual model (λ > 0) with the exact operator and with the fixed, resampled and
control-variate estimators at K ∈ {4, 16, 64, 256} cell-days per region-month, plus the
site-only model; reports each one's regional monthly RMSE and mean absolute annual bias against
the truth, and its training time. Writes ``benchmarks/results/sparsity.json`` ({"rows": [...]})
and ``benchmarks/results/sparsity.png``.

Run from the repository root: ``python -P benchmarks/sparsity.py [--world MANIFEST]``; without
``--world`` it uses ``runs/demo/world/manifest.json`` (from ``make demo``) or writes the demo
world to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from fluxbridge.config import parse_config
from fluxbridge.evaluation.figures import estimator_error
from fluxbridge.evaluation.sparsity import sparsity_study
from fluxbridge.features import GridFeatures, site_samples
from fluxbridge.io.world import open_world
from fluxbridge.pipeline import train_settings
from fluxbridge.training import split_validation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "runs/demo/world/manifest.json")
    parser.add_argument("--Ks", type=int, nargs="+", default=[4, 16, 64, 256])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    manifest = args.world
    if not manifest.exists():
        from fluxbridge.synthetic import synthesize

        manifest = synthesize(Path(tempfile.mkdtemp()) / "world", progress=False)
    world = open_world(manifest)
    cfg = parse_config({"network": {"epochs": args.epochs}})
    settings = train_settings(cfg, cfg.constraint.lambda_regional)
    samples = site_samples(world.sites, world.predictors, features=cfg.features)
    grid = GridFeatures.from_dataset(world.predictors, world.regions, features=cfg.features)
    sites = np.unique(samples["site"])
    fit_sites, val_sites = split_validation(sites, settings.val_fraction, settings.seed)

    t0 = time.perf_counter()
    table = sparsity_study(samples, settings, grid=grid, targets=world.targets,
                           regions=world.regions, reference=world.truth_regional,
                           train_sites=fit_sites, val_sites=val_sites, Ks=args.Ks)
    total = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = json.loads(table.to_json(orient="records"))
    (RESULTS / "sparsity.json").write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "world": str(manifest), "lambda": settings.lambda_regional, "epochs": args.epochs,
        "total_seconds": total, "rows": rows}, indent=2) + "\n")
    fig = estimator_error(table[table["K"].notna()].assign(K=lambda d: d["K"].astype(int)),
                          value="regional_rmse_tgc")
    fig.savefig(RESULTS / "sparsity.png", dpi=110)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"total {total:.0f} s; results in {RESULTS / 'sparsity.json'}")


if __name__ == "__main__":
    main()
