"""Upscaling throughput and memory: end to end against the forward pass and a matmul.

Usage::

    .venv/bin/python -P benchmarks/upscale.py [--days 365] [--grids 0.5 1.0] [--work DIR]

(``-P`` keeps this folder off ``sys.path``, where ``operator.py`` would shadow the standard
library module.)

For each grid it writes daily predictors (random, physically scaled) to NetCDF, then runs, each
in a fresh child process whose process tree is sampled for resident memory:

* ``end_to_end``: :func:`fluxbridge.upscaling.upscale` from the files on a dask LocalCluster with
  one worker (read, predict, write CF NetCDF and totals), cluster start included; the worker
  runs one task per core, each task's forward pass on one torch thread;
* ``end_to_end_2_workers``: the same with two workers, each with half the cores;
* ``forward_in_memory``: the same model's forward pass (``predict_arrays``: normalisation and
  network) over land samples held in memory, on every core, in the faster of one pass on all
  torch threads and one pass per core at once (both rates are in the row);
* ``matmul_same_flops``: ``torch.mm`` of float32 matrices with the network's FLOPs per sample, on
  every core.

Every row states the ``cores`` it used and its ``torch_threads`` (per task for the end-to-end
modes, whose ``workers`` x ``threads_per_worker`` tasks run at once).

Writes ``benchmarks/results/upscale.json`` as ``{"rows": [...]}`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "upscale.json"
MODES = ("end_to_end", "end_to_end_2_workers", "forward_in_memory", "matmul_same_flops")
SCALE = {"ta": (12.0, 12.0), "vpd": (8.0, 5.0), "sw_in": (180.0, 80.0), "precip": (2.0, 3.0),
         "ndvi": (0.4, 0.2), "evi": (0.25, 0.1), "nirv": (0.1, 0.05), "lst_day": (295.0, 12.0),
         "lst_night": (280.0, 10.0)}


def make_model():
    """The benchmarked network: NEENet 10 -> 64 -> 64 -> 64 -> 1 with a 4-d class embedding."""
    import torch

    from fluxbridge.features import FEATURES, Normaliser
    from fluxbridge.models.artifact import FittedModel
    from fluxbridge.models.network import NEENet

    torch.manual_seed(0)
    n = len(FEATURES)
    mean = np.array([SCALE.get(f, (200.0, 100.0))[0] for f in FEATURES])
    std = np.array([SCALE.get(f, (200.0, 100.0))[1] for f in FEATURES])
    return FittedModel(kind="nn", feature_names=list(FEATURES),
                       normaliser=Normaliser(list(FEATURES), mean, std),
                       estimator=NEENet(n, width=64, depth=3, embed_dim=4), name="bench",
                       batch_size=131_072)


def flops_per_sample(model) -> int:
    """Multiply-adds x 2 of the network's linear layers."""
    import torch

    return sum(2 * m.in_features * m.out_features for m in model.estimator.modules()
               if isinstance(m, torch.nn.Linear))


def write_world(grid_deg: float, days: int, work: Path) -> Path:
    """Predictors (NetCDF, one file) and regions of a global grid; returns the directory."""
    import xarray as xr

    from fluxbridge.regions import builtin_regions

    d = work / f"grid_{grid_deg}"
    if (d / "predictors.nc").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    regions = builtin_regions("transcom_like", grid_deg)
    regions.to_netcdf(d / "regions.nc")
    rng = np.random.default_rng(0)
    lat, lon = regions["lat"].values, regions["lon"].values
    land = regions["land_fraction"].values > 0.5
    cover = np.where(land, rng.integers(1, 17, size=land.shape), 0).astype(np.int16)
    import netCDF4

    with netCDF4.Dataset(d / "predictors.tmp.nc", "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", lat.size)
        nc.createDimension("lon", lon.size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2021-01-01", "standard"
        nc.createVariable("lat", "f8", ("lat",))[:] = lat
        nc.createVariable("lon", "f8", ("lon",))[:] = lon
        nc["lat"].units, nc["lon"].units = "degrees_north", "degrees_east"
        lc = nc.createVariable("land_cover", "i2", ("lat", "lon"))
        lc[:] = cover
        lc.units = "1"
        out = {}
        for name in SCALE:
            out[name] = nc.createVariable(name, "f4", ("time", "lat", "lon"),
                                          chunksizes=(1, lat.size, lon.size))
            out[name].units = "1"
        for k in range(days):
            t[k] = k
            for name, (mu, sd) in SCALE.items():
                out[name][k] = (mu + sd * rng.standard_normal((lat.size, lon.size))).astype("f4")
    os.replace(d / "predictors.tmp.nc", d / "predictors.nc")
    with xr.open_dataset(d / "predictors.nc") as ds:
        assert ds.sizes["time"] == days
    return d


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def forward_in_memory(model, X: np.ndarray, igbp: np.ndarray, cores: int) -> dict:
    """The forward pass on every core, in the faster of two layouts: one pass on ``cores``
    torch threads, or ``cores`` passes at once on one torch thread each (as end to end runs)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    model.estimator.eval()
    model.predict_arrays(X[:10_000], igbp[:10_000], device="cpu")
    torch.set_num_threads(cores)
    t0 = time.perf_counter()
    model.predict_arrays(X, igbp, device="cpu")
    one_pass = time.perf_counter() - t0
    torch.set_num_threads(1)
    edges = np.linspace(0, X.shape[0], cores + 1).astype(int)
    with ThreadPoolExecutor(cores) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda i: model.predict_arrays(X[edges[i]:edges[i + 1]],
                                                     igbp[edges[i]:edges[i + 1]], device="cpu"),
                      range(cores)))
        parallel = time.perf_counter() - t0
    torch.set_num_threads(cores)
    n = X.shape[0]
    return {"samples": n, "seconds": min(one_pass, parallel),
            "torch_threads": cores if one_pass <= parallel else 1,
            "tasks": 1 if one_pass <= parallel else cores, "cores": cores,
            f"samples_per_second_1_task_{cores}_torch_threads": round(n / one_pass, 1),
            f"samples_per_second_{cores}_tasks_1_torch_thread": round(n / parallel, 1)}


def run_mode(mode: str, world: Path, out: Path) -> dict:
    """Run one mode in this process; returns samples and seconds."""
    import torch
    import xarray as xr

    from fluxbridge.grid_features import feature_matrix
    from fluxbridge.upscaling import upscale

    cores = _cores()
    torch.set_num_threads(cores)
    model = make_model()
    if mode.startswith("end_to_end"):
        regions = xr.load_dataset(world / "regions.nc")
        workers = 2 if mode == "end_to_end_2_workers" else 1
        t0 = time.perf_counter()
        res = upscale({"bench": model}, [world / "predictors.nc"], regions, out,
                      n_workers=workers, progress=False, overwrite=True)["bench"]
        return {"samples": res.land_samples, "seconds": time.perf_counter() - t0,
                "workers": workers, "threads_per_worker": max(1, cores // workers),
                "torch_threads": 1, "cores": cores, "chunks": res.chunks}
    with xr.open_dataset(world / "predictors.nc") as ds:
        land = int((ds["land_cover"] > 0).sum()) * ds.sizes["time"]
        block = ds.isel(time=slice(0, min(7, ds.sizes["time"]))).load()
    X, igbp, valid = feature_matrix(block, model.feature_names)
    X, igbp = X[valid], igbp[valid]
    n = min(land, 4_000_000)
    reps = int(np.ceil(n / X.shape[0]))
    X = np.concatenate([X] * reps)[:n]
    igbp = np.concatenate([igbp] * reps)[:n]
    threads = torch.get_num_threads()
    if mode == "forward_in_memory":
        return forward_in_memory(model, X, igbp, cores)
    flops = flops_per_sample(model)
    k = round(np.sqrt(flops / 2))
    batch = 131_072
    a = torch.randn(batch, k)
    b = torch.randn(k, k)
    a @ b
    t0 = time.perf_counter()
    done = 0
    while done < n:
        a @ b
        done += batch
    return {"samples": done, "seconds": time.perf_counter() - t0, "torch_threads": threads,
            "cores": cores, "matmul_k": k, "flops_per_sample": flops}


def measured(mode: str, world: Path, out: Path) -> dict:
    """Run a mode in a child process, sampling the resident memory of its process tree."""
    import psutil

    cmd = [sys.executable, "-P", __file__, "--child", mode, "--world", str(world),
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with_children = [parent]
        try:
            with_children += parent.children(recursive=True)
        except psutil.Error:
            pass
        rss = 0
        for p in with_children:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.05)
    stdout = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed with code {proc.returncode}")
    row = json.loads(stdout.strip().splitlines()[-1])
    row["peak_rss_mib"] = round(peak / 2**20, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--grids", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="modes to run; rows of other modes already in the results file "
                             "are kept")
    parser.add_argument("--child")
    parser.add_argument("--world", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.world, args.out)))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="fluxbridge-bench-"))
    rows = []
    for grid in args.grids:
        world = write_world(grid, args.days, work)
        for mode in args.modes:
            r = measured(mode, world, work / f"out_{grid}_{mode}")
            shutil.rmtree(work / f"out_{grid}_{mode}", ignore_errors=True)
            row = {"grid_deg": grid, "samples": int(r["samples"]), "mode": mode,
                   "samples_per_second": round(r["samples"] / r["seconds"], 1),
                   "peak_rss_mib": r["peak_rss_mib"], "seconds": round(r["seconds"], 2),
                   "days": args.days,
                   **{k: v for k, v in r.items() if k not in ("samples", "seconds",
                                                              "peak_rss_mib")}}
            rows.append(row)
            print(f"{grid:5.2f} {mode:22s} {row['samples']:>11,d} samples "
                  f"{row['samples_per_second']:>13,.0f}/s  {row['peak_rss_mib']:8.1f} MiB",
                  flush=True)
    if RESULTS.exists() and set(args.modes) != set(MODES):
        done = {(r["grid_deg"], r["mode"]) for r in rows}
        kept = [r for r in json.loads(RESULTS.read_text())["rows"]
                if (r["grid_deg"], r["mode"]) not in done and r.get("days") == args.days]
        rows = sorted(kept + rows, key=lambda r: (r["grid_deg"], MODES.index(r["mode"])))
    for row in rows:  # end to end as a fraction of the forward pass on the same cores
        fwd = [r for r in rows if r["grid_deg"] == row["grid_deg"]
               and r["mode"] == "forward_in_memory"]
        if row["mode"].startswith("end_to_end") and fwd:
            row["fraction_of_forward"] = round(row["samples_per_second"]
                                               / fwd[0]["samples_per_second"], 3)
            print(f"{row['grid_deg']:5.2f} {row['mode']:22s} {row['fraction_of_forward']:.0%} "
                  "of the in-memory forward pass")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
