"""Benchmark of the sparse observation operator: accuracy of each estimator and cost of a step.

Setting (twin-world-like, built synthetically here so that it runs anywhere):

* grid at 2 degrees and 0.5 degrees, one year daily, built-in TransCom-like regions, land cells
  of the real land mask; ten gridded features with seasonal cycles by latitude plus noise;
* the model field ``f`` (n_time, n_cell) = a smooth nonlinear function of the features
  [g m-2 d-1]; the control-variate cache ``g`` = the same function with its coefficients moved
  by 5 % (a model a few epochs older), evaluated as training caches it: at each cell's
  monthly-mean predictors (``cache_features`` monthly, ``cache_group_size`` 1), with the
  (month, cell) pairs of one class grouped by a k-d partition of their predictors into entries of
  at most 16, and with the cell-days of one class and month grouped into entries of at most 64
  (daily, 64: the default); each to first order (``cache_linear``, the default: the entry's
  value plus the gradient times each cell-day's departure from the entry's mean) and, per cell
  and month, also as a plain mean;
* inversion spread σ_rm = 0.15 |F_rm| + 0.05 median |F| [Tg month-1] with F the exact totals.

Accuracy: for K in {4, 16, 64, 256, 1024} cell-days per region-month, R independent draws of
every region-month; ``bias_sigma`` = rms over region-months of the mean error / σ,
``std_sigma`` = rms over region-months of the standard deviation over draws / σ. The fixed
estimator keeps one draw for the whole training: its step-to-step std is 0 and its bias is the
rms error of that one draw / σ.

Cost: wall time of one optimiser step (batch of 2048 site samples, MLP 64x3, AdamW) without
the regional term (``site_only``) and with it (``obs_per_step`` region-months). The control
variate's time includes its cache refresh amortised over ``refresh_every`` (2) epochs of
``STEPS_PER_EPOCH`` (100, the demo: ~200k samples / 2048) steps. ``ratio_to_site_only`` compares
the fastest of interleaved steps (the machine is shared; the minimum is least load-biased).
``cells_fraction`` = share of the step's region-months' land cell-days at which the model is
evaluated (exact = 1; the control variate's cache refresh excluded). Exact steps at 0.5 degrees
are timed on fewer region-months and scaled linearly (their memory would exceed the budget
otherwise); the row says so in ``note``.

In training (rows with ``mode`` ``in_training``): the network trained from one start for
``IN_TRAINING_STEPS`` steps, site-only and with the control variate on the same site batches,
against this world's exact totals as targets. ``step_seconds`` is the mean wall time of a
constrained step with every cache refresh included (the schedule's every ``refresh_every``
epochs and the rule's, ``refresh_std`` 0.1: refreshes counted in ``refreshes``; the first,
which builds the merged columns, in ``cache_build_seconds``); ``ratio_to_site_only`` divides
it by the mean site-only step; ``std_sigma`` is the root mean of the draws' own unbiased
estimate of each step's estimate variance / σ² (``std_late``: over the second half), so the
cache's staleness in real training is in it, not a model of it.

Each row carries ``obs_per_step``: 32 is the demo's default (at K = 64 that is 2048 cell rows
beside the 2048 site rows, twice the network's work, so a ratio near 2 is the floor there);
rows with ``obs_per_step`` 16 and 8 and K in 4, 16, 64 time a realistic share where the regional
rows are a fraction of the site batch (their accuracy columns are those of the same K, which does
not depend on the number of region-months per step). ``site_only`` has ``obs_per_step`` 0.

Run from the repository root: ``python -m benchmarks.operator [--quick]`` (as a script its name
would shadow the standard library's ``operator``); writes ``benchmarks/results/operator.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fluxbridge.cache import CacheGroups
from fluxbridge.features import GridFeatures
from fluxbridge.operators import RegionalOperator, make_estimator
from fluxbridge.regions import builtin_regions
from fluxbridge.training import Trainer, TrainSettings

KS = (4, 16, 64, 256, 1024)
ESTIMATORS = ("fixed", "resampled", "control_variate")
N_FEATURES = 10
STEPS_PER_EPOCH = 100
REFRESH_EVERY = 2
OBS_PER_STEP = 32  # the demo's default: 32 x K cell rows beside 2048 site rows
SMALL_OBS_PER_STEP = (16, 8)  # rows with the regional rows a fraction of the site batch
SMALL_KS = (4, 16, 64)
CACHE_GROUPINGS = (("monthly", 16), ("daily", 64))  # control variate also with grouped entries
IN_TRAINING = (  # K, obs_per_step, cache_features, cache_group_size
    (16, 8, "monthly", 1), (16, 8, "daily", 64), (64, 8, "daily", 64), (64, 32, "daily", 64))
IN_TRAINING_STEPS = 600  # six epochs of the demo's size
OUT = Path(__file__).resolve().parent / "results" / "operator.json"


def build(resolution: float, year: int = 2001, seed: int = 0):
    """Grid features, model field f, stale model g (a function of features) and regions."""
    rng = np.random.default_rng(seed)
    regions = builtin_regions("transcom_like", resolution)
    region = regions["region"].values
    frac = regions["land_fraction"].values
    ilat, ilon = np.nonzero((region > 0) & (frac > 0))
    lat = regions["lat"].values[ilat].astype(np.float32)
    times = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    n_t, n_c = times.size, ilat.size
    doy = times.day_of_year.to_numpy().astype(np.float32)[:, None]
    season = (np.cos(2 * np.pi * (doy - 200) / 365.0) * np.sign(lat)[None, :]).astype(np.float32)
    values = np.empty((n_t, n_c, N_FEATURES), dtype=np.float32)
    cell_noise = rng.normal(0, 1, (N_FEATURES, n_c)).astype(np.float32)
    for j in range(N_FEATURES):
        amp = np.float32(1.0 + j / 3)
        values[:, :, j] = amp * season * (1 + 0.3 * cell_noise[j])[None, :] \
            - 0.02 * j * np.abs(lat)[None, :]
        values[:, :, j] += rng.standard_normal((n_t, n_c), dtype=np.float32) * 0.3
    igbp = (region[ilat, ilon] % 16 + 1).astype(np.int64)
    coef = rng.normal(0, 1, N_FEATURES) / np.sqrt(N_FEATURES)

    def field(c: np.ndarray, x: np.ndarray = values) -> np.ndarray:
        z = np.zeros(x.shape[:2], dtype=np.float32)
        for j in range(N_FEATURES):
            z += np.float32(c[j]) * np.nan_to_num(x[:, :, j])
        return (2.0 * np.tanh(z) - 0.3).astype(np.float32)  # g m-2 d-1

    f = field(coef)
    stale = coef * (1 + 0.05 * rng.standard_normal(N_FEATURES))

    def g(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stale model at features x (n_t, n_c, N_FEATURES), and its gradient."""
        value = field(stale, x)
        dz = 1.0 - ((value + 0.3) / 2.0) ** 2  # tanh' at the same argument
        return value, (2.0 * dz[..., None] * stale[None, None, :]).astype(np.float32)
    n_lon = regions.sizes["lon"]
    grid = GridFeatures(values=values, igbp_code=igbp, lat_index=ilat.astype(np.int64),
                        lon_index=ilon.astype(np.int64),
                        cell_ids=(ilat * n_lon + ilon).astype(np.int64), times=times,
                        feature_names=[f"x{j}" for j in range(N_FEATURES)],
                        region=region[ilat, ilon].astype(np.int64),
                        cell_area=regions["cell_area"].values[ilat, ilon],
                        land_fraction=frac[ilat, ilon], n_lat=regions.sizes["lat"], n_lon=n_lon)
    return grid, f, g, regions


def site_samples(grid: GridFeatures, f: np.ndarray, n_sites: int = 100, seed: int = 1
                 ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = rng.choice(grid.n_cell, n_sites, replace=False)
    t = np.arange(grid.times.size)
    tt, cc = np.meshgrid(t, cells, indexing="ij")
    tt, cc = tt.ravel(), cc.ravel()
    X, igbp = grid.take(tt, cc)
    df = pd.DataFrame(X, columns=grid.feature_names)
    df.insert(0, "site", pd.array([f"S{c}" for c in cc], dtype="str"))
    df["igbp_code"] = igbp
    df["nee"] = f[tt, cc] + rng.normal(0, 0.3, tt.size)
    df["weight"] = 1.0
    return df


def accuracy(op, grid, f, cv, sigma, exact, K, kind, reps, rng):
    """Bias and spread / σ of ``kind`` at K; ``cv``: the control-variate estimator, its cache
    set (built once per cache: its K is changed here)."""
    obs = np.arange(op.n_obs)
    if kind == "control_variate":
        est, est.K = cv, K
    else:
        est = make_estimator(kind, op, K=K, sampling="area", strata=grid.igbp_code, seed=K)
    inputs = grid.values.reshape(-1, grid.values.shape[2])
    flat = f.ravel()
    n_draws = 1 if kind == "fixed" else reps
    draws = np.empty((n_draws, op.n_obs))
    touched = []
    for r in range(n_draws):
        sample = est.draw(obs, rng)
        pred = torch.from_numpy(flat[sample.col].astype(np.float64))
        draws[r] = est.estimate(pred, sample, torch.from_numpy(inputs[sample.col]))[0].numpy()
        touched.append(len(sample))
    err = (draws - exact[None, :]) / sigma[None, :]
    if kind == "fixed":
        bias, std = float(np.sqrt(np.mean(err[0] ** 2))), 0.0
    else:
        bias = float(np.sqrt(np.mean(err.mean(axis=0) ** 2)))
        std = float(np.sqrt(np.mean(err.std(axis=0, ddof=1) ** 2)))
    return bias, std


def time_steps(base: Trainer, trainer: Trainer, n_steps: int, rng) -> tuple[float, float]:
    """Fastest seconds of a site-only step and of a constrained step, interleaved so that both
    see the same load of a shared machine."""
    n = base.x.shape[0]
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(n_steps + 2):
        for k, t in enumerate((base, trainer)):
            idx = torch.as_tensor(rng.choice(n, 2048, replace=False))
            t0 = time.perf_counter()
            t.step(idx)
            if i >= 2:  # warm-up steps are not timed
                times[k].append(time.perf_counter() - t0)
    return float(np.min(times[0])), float(np.min(times[1]))


def run_grid(resolution: float, reps: int, n_steps: int, exact_obs: int) -> list[dict]:
    t0 = time.perf_counter()
    grid, f, g, regions = build(resolution)
    samples = site_samples(grid, f)
    settings = TrainSettings(lambda_regional=1.0, estimator="exact", obs_per_step=OBS_PER_STEP,
                             square="plain", device="cpu", batch_size=2048, sigma_floor=0.0)
    base = Trainer(samples, dataclasses.replace(settings, lambda_regional=0.0),
                   train_sites=samples["site"].unique())
    op = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
    exact = op.exact(f)
    sigma = 0.15 * np.abs(exact) + 0.05 * np.median(np.abs(exact))
    targets = op.to_dataarray(exact).to_dataset(name="nee_mean")
    targets["nee_spread"] = op.to_dataarray(sigma)
    trainer = Trainer(samples, settings, train_sites=samples["site"].unique(), grid=grid,
                      targets=targets, regions=regions)
    start = [(copy.deepcopy(t.model.state_dict()), copy.deepcopy(t.optimizer.state_dict()))
             for t in (base, trainer)]  # both networks start alike (same seed)
    print(f"grid {resolution} deg: {grid.n_cell} land cells x {grid.times.size} days, "
          f"{op.n_obs} region-months, built in {time.perf_counter() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    rows_per_obs = op.row_sizes(trainer.obs_ids).mean()
    rows: list[dict] = []

    def row(estimator, K=None, frac=None, bias=None, std=None, step=None,
            obs_per_step=OBS_PER_STEP, **extra):
        rows.append({"grid_deg": resolution, "estimator": estimator, "K": K,
                     "cells_fraction": frac, "bias_sigma": bias, "std_sigma": std,
                     "step_seconds": step, "obs_per_step": obs_per_step, **extra})

    site_times: list[float] = []
    # exact: timed on exact_obs region-months, scaled to OBS_PER_STEP
    trainer.estimator = make_estimator("exact", op)
    trainer.settings = dataclasses.replace(settings, obs_per_step=exact_obs)
    t_site, t_exact = time_steps(base, trainer, max(2, n_steps // 5), rng)
    site_times.append(t_site)
    scale = OBS_PER_STEP / exact_obs
    note = None if exact_obs == OBS_PER_STEP else \
        f"timed with {exact_obs} region-months per step, regional part scaled x{scale:g}"
    t_exact = t_site + (t_exact - t_site) * scale
    row("exact", frac=1.0, bias=0.0, std=0.0, step=t_exact, ratio_to_site_only=t_exact / t_site,
        note=note, exact_over_site_seconds=t_exact - t_site)
    trainer.settings = settings

    inputs = grid.values.reshape(-1, grid.values.shape[2])

    def cache_of(features: str, size: int, linear: bool) -> dict:
        """The stale model as the training caches it: at the mean predictors of its entries
        (monthly: per cell, ``size`` 1, or similar (month, cell) pairs of one class; daily:
        similar cell-days of one class and month); ``linear``: to first order around them."""
        groups = CacheGroups.build(grid, features, size)
        center = np.nan_to_num(groups.values)[None]
        value, slope = g(center)
        out = {"g": value[0], "time_group": groups.time_group, "entry": groups.entry}
        if linear:
            out.update(slope=slope[0], center=center[0], inputs=lambda col: inputs[col])
        return out

    def timed(kind: str, K: int, obs_per_step: int, bias: float, std: float,
              features: str = "monthly", size: int = 1, linear: bool = True) -> None:
        """Time steps of ``kind`` at K, its cache refresh amortised over the refresh period."""
        trainer.settings = dataclasses.replace(settings, obs_per_step=obs_per_step,
                                               cache_features=features, cache_group_size=size,
                                               cache_linear=linear, refresh_std=0.0)
        extra, refresh = {}, 0.0
        if kind != "control_variate":
            trainer.estimator = make_estimator(kind, op, K=K, sampling="area",
                                               strata=grid.igbp_code, seed=K)
        else:
            if cv_trainer.get("key") != (features, size, linear):  # once per training
                cv_trainer.update(key=(features, size, linear), build=fresh_control_variate(K))
            trainer.estimator.K = K
            extra["cache_build_seconds"] = cv_trainer["build"]
            t1 = time.perf_counter()
            trainer.refresh_cache()
            refresh = time.perf_counter() - t1
            extra.update({"refresh_seconds": refresh, "cache_group_size": size,
                          "cache_features": features, "cache_linear": linear,
                          "cache_entries": int(trainer.cache_groups().igbp.size)})
        t_site, step = time_steps(base, trainer, n_steps, rng)
        site_times.append(t_site)
        step += refresh / (STEPS_PER_EPOCH * REFRESH_EVERY)
        row(kind, K=K, frac=float(min(1.0, K / rows_per_obs)), bias=bias, std=std, step=step,
            ratio_to_site_only=step / t_site, obs_per_step=obs_per_step, **extra)

    def fresh_control_variate(K: int) -> float:
        """A new control-variate estimator for the trainer's settings, its cache built and
        refreshed once (the first refresh also merges the operator's columns): seconds."""
        trainer.estimator = make_estimator("control_variate", op, K=K, sampling="area")
        trainer._groups = trainer._center = None
        t1 = time.perf_counter()
        trainer.refresh_cache()
        return time.perf_counter() - t1

    def in_training(K: int, obs: int, features: str, size: int) -> None:
        """Train from the same start, site-only and with the control variate, on the same site
        batches: the cost of every step and refresh (the schedule's and the rule's), and the
        spread of the regional estimates by the draws' own estimate."""
        trainer.settings = dataclasses.replace(settings, estimator="control_variate", K=K,
                                               obs_per_step=obs, cache_features=features,
                                               cache_group_size=size)
        build = fresh_control_variate(K)
        for t, (state, optimizer) in zip((base, trainer), start, strict=True):
            t.model.load_state_dict(state)
            t.optimizer.load_state_dict(optimizer)
        before = trainer.refreshes
        seconds = {0: 0.0, 1: 0.0}
        noise = []
        picker = np.random.default_rng(3)
        for i in range(IN_TRAINING_STEPS):
            idx = torch.as_tensor(picker.choice(base.x.shape[0], 2048, replace=False))
            t1 = time.perf_counter()
            base.step(idx)
            t2 = time.perf_counter()
            if i and i % (STEPS_PER_EPOCH * REFRESH_EVERY) == 0:
                trainer.refresh_cache()
            noise.append(trainer.step(idx)["estimate_var"])
            seconds[0] += t2 - t1
            seconds[1] += time.perf_counter() - t2
        step = seconds[1] / IN_TRAINING_STEPS
        site = seconds[0] / IN_TRAINING_STEPS
        row("control_variate", K=K, frac=float(min(1.0, K / rows_per_obs)),
            std=float(np.sqrt(np.mean(noise))), step=step, ratio_to_site_only=step / site,
            obs_per_step=obs, mode="in_training", steps=IN_TRAINING_STEPS,
            refreshes=trainer.refreshes - before, cache_group_size=size,
            cache_features=features,
            cache_entries=int(trainer.cache_groups().igbp.size), cache_build_seconds=build,
            std_late=float(np.sqrt(np.mean(noise[len(noise) // 2:]))))
        print(f"in training: K {K}, {obs} region-months, {features} group {size}: "
              f"std {rows[-1]['std_sigma']:.3f} σ, {rows[-1]['refreshes']} refreshes, "
              f"{step * 1e3:.2f} ms ({step / site:.2f}x)", flush=True)

    accuracy_of: dict[tuple, tuple[float, float]] = {}
    runs = [(kind, "monthly", 1, True) for kind in ESTIMATORS] + [
        ("control_variate", "monthly", 1, False)] + [
        ("control_variate", *grouping, True) for grouping in CACHE_GROUPINGS]
    cv_trainer: dict = {}
    for kind, features, size, linear in runs:
        cv = None
        if kind == "control_variate":
            cv = make_estimator(kind, op, K=KS[0], sampling="area")
            cv.set_cache(**cache_of(features, size, linear))
        for K in KS:
            key = (kind, K, features, size, linear)
            accuracy_of[key] = accuracy(op, grid, f, cv, sigma, exact, K, kind, reps, rng)
            timed(kind, K, OBS_PER_STEP, *accuracy_of[key], features=features, size=size,
                  linear=linear)
    # a realistic share: the regional rows a fraction of the site batch (same accuracy per
    # region-month; fewer region-months per step)
    for obs in SMALL_OBS_PER_STEP:
        for kind, features, size, linear in runs:
            for K in SMALL_KS:
                timed(kind, K, obs, *accuracy_of[kind, K, features, size, linear],
                      features=features, size=size, linear=linear)
    for K, obs, features, size in IN_TRAINING:
        in_training(K, obs, features, size)
    trainer.settings = settings
    row("site_only", frac=0.0, step=float(np.median(site_times)), ratio_to_site_only=1.0,
        obs_per_step=0)
    gc.collect()
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'grid':>5} {'estimator':>23} {'group':>5} {'K':>5} {'obs':>4} {'cells%':>8} " \
           f"{'bias/σ':>8} " \
           f"{'std/σ':>8} {'step ms':>9} {'×site':>6}"
    print(head)
    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    for r in rows:
        name = r["estimator"] + ("" if r.get("cache_linear", True) else " (mean)") + (
            " daily" if r.get("cache_features") == "daily" else "") + (
            " (training)" if r.get("mode") == "in_training" else "")
        print(f"{r['grid_deg']:>5} {name:>23} {fmt(r.get('cache_group_size'), '>5')} "
              f"{fmt(r['K'], '>5')} "
              f"{r['obs_per_step']:>4} "
              f"{fmt(None if r['cells_fraction'] is None else 100 * r['cells_fraction'], '>8.3f')}"
              f" {fmt(r['bias_sigma'], '>8.4f')} {fmt(r['std_sigma'], '>8.4f')} "
              f"{fmt(1e3 * r['step_seconds'], '>9.1f')} "
              f"{r['ratio_to_site_only']:>6.2f}")


def write(rows: list[dict]) -> None:
    """Write the rows so far (after each grid) with the run's settings."""
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak memory {peak_gb:.2f} GB")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {"sigma": "0.15 |F_rm| + 0.05 median |F| [Tg month-1]", "obs_per_step": OBS_PER_STEP,
            "obs_per_step_small": SMALL_OBS_PER_STEP,
            "sampling": "area", "batch_size": 2048, "network": "MLP 64x3 silu",
            "threads": torch.get_num_threads(), "peak_memory_gb": peak_gb,
            "steps_per_epoch_for_refresh": STEPS_PER_EPOCH, "refresh_every": REFRESH_EVERY}
    OUT.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-degree grid only, fewer draws")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = run_grid(2.0, reps=30 if args.quick else 60, n_steps=10 if args.quick else 60,
                    exact_obs=OBS_PER_STEP)
    print_table(rows)
    write(rows)
    if not args.quick:
        rows += run_grid(0.5, reps=30, n_steps=40, exact_obs=2)
        print_table(rows)
        write(rows)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
