"""Benchmark of the sparse observation operator in the twin world: accuracy and cost of a step.

Setting: the twin world of :mod:`fluxbridge.synthetic`: the standard world (2 degrees, five
years) and at 0.5 degrees (one year, the standard configuration otherwise), written
once into ``--worlds`` (0.5 degrees: about 1 GB and two minutes) and read as an experiment reads
it (``open_world``, ``site_samples``, ``GridFeatures.from_dataset``). Targets: the world's
corrected inversion ensemble, σ its spread floored as in training (``constraint.sigma_floor``).
Configuration: the experiment's defaults, on the CPU; the measurements are made by
:class:`benchmarks.operator_bench.Bench`.

The model field ``f``: the network after ``PRETRAIN_STEPS`` site-only steps from its seed, at
every land cell-day (the grid offset aside: its totals are exact in training). The control
variate's cache: the same network, as training caches it (``ControlVariateCache.refresh``, for
each layout of ``CACHES``), fresh (``cache_age_steps`` 0) and ``STALE_STEPS`` steps older.
Rows name settings by their keys' last part (``K``, ``obs_per_step``, ``square``) or, in
``tuning.cache``, with ``cache_`` before it (``cache_features`` is ``tuning.cache.features``).

Accuracy: for K in ``KS`` cell-days per region-month, ``reps`` independent draws of every
region-month; ``bias_sigma`` = rms over region-months of the mean error / σ, ``std_sigma`` = rms
over region-months of the standard deviation over draws / σ (so ``bias_sigma`` holds Monte Carlo
noise of about ``std_sigma`` / √reps). The fixed estimator keeps one draw for the whole
training: its step-to-step std is 0 and its bias is the rms error of that one draw / σ.

Cost: wall time of one optimiser step (the experiment's batch, network and AdamW) without the
regional term (``site_only``) and with it (``obs_per_step`` region-months, ``square`` plain),
the fastest of interleaved steps (the machine is shared; the minimum is least load-biased);
``ratio_to_site_only`` compares them. These rows leave the control variate's refreshes out
(``refresh_seconds`` gives one); the rows in training include them. ``cells_fraction`` = share of
a region-month's land cell-days at which the model is evaluated (exact = 1). Exact steps at 0.5
degrees are timed on fewer region-months and scaled linearly (their memory would exceed the
budget otherwise); the row says so in ``note``.

In training (``mode`` ``in_training``): from the pretrained network, ``IN_TRAINING_STEPS`` steps
site-only and with the control variate on the same site batches, against the world's targets,
its cache rebuilt as training rebuilds it (at the start of every ``refresh_every``-th epoch of
this world's size); ``step_seconds`` is the mean wall time of a constrained step with every
refresh included (counted in ``refreshes``; the first, which also merges the operator's
columns, is ``cache_build_seconds``), ``ratio_to_site_only`` divides it by the mean site-only
step, and ``std_sigma`` is the root mean of the draws' own unbiased estimate of each step's
estimate variance / σ² (``std_late``: over the second half), so the cache's staleness in real
training is in it, not a model of it.

Run from the repository root: ``python -m benchmarks.operator [--quick]`` (as a script its name
would shadow the standard library's ``operator``); writes ``benchmarks/results/operator.json``
after each grid.
"""


from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.operator_bench import PRETRAIN_STEPS, STALE_STEPS, Bench, setting
from fluxbridge.config import ExperimentConfig, parse_config
from fluxbridge.operators import default_group_size
from fluxbridge.synthetic import synthesize

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "operator.json"
WORLDS = {2.0: {}, 0.5: {"resolution_deg": 0.5, "n_years": 1}}  # the standard world; one fine year
KS = (4, 16, 64, 256, 1024)
OBS_PER_STEP = 32  # the demo's default
SMALL_OBS_PER_STEP = 8  # the regional rows a fraction of the site batch
SMALL_KS = (16, 64)
CACHES = (("monthly", 1), ("daily", 64), ("daily", None))  # None: the grid's default size
IN_TRAINING = (  # settings that differ from the defaults (square: plain), one row each
    {"K": 64, "obs_per_step": 8}, {"K": 16, "obs_per_step": 8}, {"K": 64, "obs_per_step": 32},
    {"K": 64, "obs_per_step": 8, "cache_group_size": 64},
    {"K": 64, "obs_per_step": 8, "cache_features": "monthly", "cache_group_size": 1},
    {"K": 64, "obs_per_step": 32, "square": "unbiased"},  # the demo's settings
    {"K": 64, "obs_per_step": 32, "square": "unbiased", "refresh_every": 2})


def world_manifest(resolution: float, worlds: Path) -> Path:
    """The twin world at ``resolution``, written into ``worlds`` unless already there."""
    manifest = worlds / f"world_{resolution:g}deg" / "manifest.json"
    if not manifest.exists():
        t0 = time.perf_counter()
        synthesize(manifest.parent, config=WORLDS[resolution] or None, progress=True)
        print(f"twin world at {resolution:g} deg written in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return manifest


def run_grid(resolution: float, manifest: Path, reps: int, n_steps: int, exact_obs: int
             ) -> list[dict]:
    b = Bench(manifest)
    print(f"grid {resolution:g} deg: {b.grid.n_cell} land cells x {b.grid.times.size} days, "
          f"{b.term.obs_ids.size} region-months, {len(b.base.data)} site samples, loaded "
          f"in {b.load_time:.0f} s", flush=True)
    rows: list[dict] = []
    site_times: list[float] = []

    def row(estimator: str, **values: Any) -> None:
        rows.append({"grid_deg": resolution, "estimator": estimator, "K": None,
                     "cells_fraction": None, "bias_sigma": None, "std_sigma": None,
                     "step_seconds": None, "obs_per_step": OBS_PER_STEP, **values})

    def timed(kind: str, K: int, obs: int, **extra: Any) -> None:
        t_site, step = b.time_steps(n_steps)
        site_times.append(t_site)
        row(kind, K=K, cells_fraction=min(1.0, K / b.rows_per_obs), step_seconds=step,
            ratio_to_site_only=step / t_site, obs_per_step=obs, square="plain", **extra)

    # exact: timed on exact_obs region-months, scaled to OBS_PER_STEP
    b.use("exact", obs_per_step=exact_obs)
    t_site, t_exact = b.time_steps(max(2, n_steps // 5))
    site_times.append(t_site)
    scale = OBS_PER_STEP / exact_obs
    t_exact = t_site + (t_exact - t_site) * scale
    row("exact", cells_fraction=1.0, bias_sigma=0.0, std_sigma=0.0, step_seconds=t_exact,
        ratio_to_site_only=t_exact / t_site, exact_over_site_seconds=t_exact - t_site,
        note=None if scale == 1 else
        f"timed with {exact_obs} region-months per step, regional part scaled x{scale:g}")
    for kind in ("fixed", "resampled"):
        for K in KS:
            b.use(kind, K=K, obs_per_step=OBS_PER_STEP)
            bias, std = b.accuracy(K, reps)
            timed(kind, K, OBS_PER_STEP, bias_sigma=bias, std_sigma=std)
            if K in SMALL_KS:
                b.use(kind, K=K, obs_per_step=SMALL_OBS_PER_STEP)
                timed(kind, K, SMALL_OBS_PER_STEP, bias_sigma=bias, std_sigma=std)
    layouts = {(f, size or default_group_size(b.grid)) for f, size in CACHES}
    for cache in sorted(layouts):
        build = b.use("control_variate", cache_features=cache[0], cache_group_size=cache[1])
        info = b.cache_info()
        for age, state in ((STALE_STEPS, b.stale), (0, b.start[0])):
            refresh = b.refresh(state)
            for K in KS:
                bias, std = b.accuracy(K, reps)
                extra = dict(bias_sigma=bias, std_sigma=std, cache_age_steps=age, **info,
                             refresh_seconds=refresh, cache_build_seconds=build)
                if age:
                    for obs in (OBS_PER_STEP, SMALL_OBS_PER_STEP)[:2 if K in SMALL_KS else 1]:
                        b.configure(obs_per_step=obs)
                        timed("control_variate", K, obs, **extra)
                else:
                    row("control_variate", K=K, cells_fraction=min(1.0, K / b.rows_per_obs),
                        **extra)
            print(f"control variate, {cache[0]} {info['cache_group_size']} "
                  f"({info['cache_entries']} entries, refresh {refresh:.2f} s), cache "
                  f"{age} steps old: std at K 64 "
                  f"{[r['std_sigma'] for r in rows if r['K'] == 64][-1]:.3f} σ", flush=True)
    for overrides in IN_TRAINING:
        if overrides.get("cache_group_size") == default_group_size(b.grid):
            continue  # the default layout's row
        rows.append({"grid_deg": resolution, "bias_sigma": None,
                     **b.in_training(**overrides)})
        r = rows[-1]
        print(f"in training: K {r['K']}, {r['obs_per_step']} region-months ({r['square']}), "
              f"{r['cache_features']} {r['cache_group_size']}, schedule "
              f"{r['refresh_every_steps']} steps: std {r['std_sigma']:.3f} σ (late "
              f"{r['std_late']:.3f}), {r['refreshes']} refreshes, "
              f"{r['step_seconds'] * 1e3:.2f} ms ({r['ratio_to_site_only']:.2f}x)", flush=True)
    row("site_only", cells_fraction=0.0, step_seconds=float(np.median(site_times)),
        ratio_to_site_only=1.0, obs_per_step=0)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'grid':>5} {'estimator':>27} {'group':>5} {'age':>4} {'K':>5} {'obs':>4} "
          f"{'cells%':>8} {'bias/σ':>8} {'std/σ':>8} {'step ms':>9} {'×site':>6}")

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for r in rows:
        name = r["estimator"] + (f" {r['cache_features']}" if "cache_features" in r else "") \
            + (" (training)" if r.get("mode") == "in_training" else "")
        frac = None if r["cells_fraction"] is None else 100 * r["cells_fraction"]
        step = None if r["step_seconds"] is None else 1e3 * r["step_seconds"]
        print(f"{r['grid_deg']:>5} {name:>27} {fmt(r.get('cache_group_size'), '>5')} "
              f"{fmt(r.get('cache_age_steps'), '>4')} {fmt(r['K'], '>5')} "
              f"{r['obs_per_step']:>4} {fmt(frac, '>8.3f')} {fmt(r['bias_sigma'], '>8.4f')} "
              f"{fmt(r['std_sigma'], '>8.4f')} {fmt(step, '>9.2f')} "
              f"{fmt(r.get('ratio_to_site_only'), '>6.2f')}")


def write(rows: list[dict], cfg: ExperimentConfig) -> None:
    """Write the rows so far (after each grid) with the run's configuration."""
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    con, net = cfg.constraint, cfg.network
    print(f"peak memory {peak_gb:.2f} GB")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "world": "twin world: the standard world (2 deg, 5 years); 0.5 deg, 1 year",
            "sigma": f"the inversion spread, floored at {con.sigma_floor} x its median",
            "obs_per_step": OBS_PER_STEP, "obs_per_step_small": SMALL_OBS_PER_STEP,
            "sampling": con.sampling, "batch_size": net.batch_size,
            "network": f"MLP {net.width}x{net.depth} {net.activation}",
            "pretrain_steps": PRETRAIN_STEPS, "stale_steps": STALE_STEPS,
            "refresh_every": setting(cfg, "refresh_every"), "threads": torch.get_num_threads(),
            "peak_memory_gb": peak_gb}
    OUT.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="demo grid only, fewer draws")
    parser.add_argument("--worlds", type=Path, default=ROOT / "benchmarks" / ".worlds",
                        help="where the twin worlds are written once (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = parse_config({})
    rows: list[dict] = []
    for resolution in (2.0,) if args.quick else tuple(WORLDS):
        manifest = world_manifest(resolution, args.worlds)
        fine = resolution < 1
        rows += run_grid(resolution, manifest, reps=20 if args.quick or fine else 40,
                         n_steps=10 if args.quick else 40,
                         exact_obs=2 if fine else OBS_PER_STEP)
        gc.collect()  # the grid's trainers are gone
        print_table(rows)
        write(rows, cfg)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
