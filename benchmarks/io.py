"""Benchmark of the file readers against plain pandas / xarray reads of the same files.

* **site file**: a 20-year half-hourly FLUXNET2015 FULLSET file generated in a temporary
  directory with the real layout (TIMESTAMP_START/END then the columns of the real FULLSET file
  ``fullset/FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv`` without its day/night
  variants, -9999 gaps). ``fluxbridge`` = :func:`fluxbridge.io.fluxnet.read_site_file` (units,
  QC weight, canonical dataset; it reads only the columns it needs); ``plain`` =
  ``pandas.read_csv(path)``. Also the daily aggregation honouring QC (``aggregate``).
* **ERA5**: hourly single levels (t2m, d2m, ssrd, tp; float32, new CDS layout) on the global
  0.5° grid. A full year (8760 × 361 × 720 × 4 values, 36 GB) exceeds this machine's memory and
  time, so ``--days`` days (31 by default: one month) are generated. ``fluxbridge`` =
  :func:`fluxbridge.io.era5.open_era5` ``(...).load()`` (daily means, accumulations, VPD on the
  hourly values); ``plain`` = ``xarray.open_dataset(path).load()`` (raw hourly values).

``ratio`` = fluxbridge seconds / plain seconds (best of ``--repeat`` runs each; the machine is
shared). Peak resident memory of the process is recorded after each row.

Run from the repository root: ``python -P benchmarks/io.py [--years 20] [--days 31]``
(``-P``: ``benchmarks/operator.py`` would shadow the standard library otherwise); writes
``benchmarks/results/io.json`` as ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.io.era5 import open_era5
from fluxbridge.io.fluxnet import aggregate, read_site_file

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
TEMPLATE = REAL / "fluxnet2015" / "fullset" / "FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_half_hourly(path: Path, years: int, seed: int = 0) -> tuple[int, int]:
    """A FULLSET HH file of ``years`` years from 2000; returns (rows, columns)."""
    header = TEMPLATE.read_text().splitlines()[0].split(",")
    columns = [c for c in header[1:] if not any(k in c for k in ("_DAY", "_NIGHT"))]
    times = pd.date_range("2000-01-01", f"{2000 + years}-01-01", freq="30min", inclusive="left")
    rng = np.random.default_rng(seed)
    n = times.size
    data = {"TIMESTAMP_START": times.strftime("%Y%m%d%H%M"),
            "TIMESTAMP_END": (times + pd.Timedelta(minutes=30)).strftime("%Y%m%d%H%M")}
    block = rng.normal(0, 5, (n, len(columns))).round(3)
    block[rng.random((n, len(columns))) < 0.05] = -9999
    for j, name in enumerate(columns):
        data[name] = rng.integers(0, 4, n) if name.endswith("_QC") else block[:, j]
    pd.DataFrame(data).to_csv(path, index=False)
    return n, len(columns) + 2


def write_era5(path: Path, days: int, resolution: float = 0.5, seed: int = 0) -> tuple:
    """Hourly ERA5 single levels in the new CDS layout; returns the array shape."""
    lat = np.arange(90.0, -90.0 - resolution / 2, -resolution)
    lon = np.arange(0.0, 360.0, resolution)
    times = pd.date_range("2010-01-01", periods=24 * days, freq="h")
    rng = np.random.default_rng(seed)
    shape = (times.size, lat.size, lon.size)
    base = (280 + 20 * np.cos(np.deg2rad(lat)))[None, :, None].astype("float32")
    fields = {
        "t2m": (base + rng.normal(0, 1, shape[1:]).astype("float32"), "K"),
        "d2m": (base - 5, "K"),
        "ssrd": (np.full((1, lat.size, lon.size), 5e5, dtype="float32"), "J m**-2"),
        "tp": (np.full((1, lat.size, lon.size), 1e-4, dtype="float32"), "m"),
    }
    ds = xr.Dataset(coords={"valid_time": times, "latitude": lat, "longitude": lon, "number": 0,
                            "expver": ("valid_time", np.array(["0001"] * times.size))})
    for name, (values, units) in fields.items():
        ds[name] = (("valid_time", "latitude", "longitude"),
                    np.broadcast_to(values, shape), {"units": units})
    ds["valid_time"].encoding.update(units="seconds since 1970-01-01", dtype="int64")
    ds.to_netcdf(path)
    return shape


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "io.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / f"FLX_XX-Ben_FLUXNET2015_FULLSET_HH_2000-{1999 + args.years}_1-4.csv"
        n_rows, n_cols = write_half_hourly(site, args.years)
        size = site.stat().st_size / 2**20
        ours = _best(lambda: read_site_file(site), args.repeat)
        plain = _best(lambda: pd.read_csv(site), args.repeat)
        ds = read_site_file(site)
        agg = _best(lambda: aggregate(ds, "DD"), args.repeat)
        rows.append({"case": "site HH FULLSET", "detail": f"{args.years} years, {n_rows} rows x "
                     f"{n_cols} columns, {size:.0f} MiB", "fluxbridge_s": round(ours, 3),
                     "plain_s": round(plain, 3), "ratio": round(ours / plain, 3),
                     "aggregate_dd_s": round(agg, 3), "peak_rss_mib": round(_peak_mib())})
        site.unlink()
        era5 = Path(tmp) / "era5_hourly.nc"
        shape = write_era5(era5, args.days)
        size = era5.stat().st_size / 2**20
        ours = _best(lambda: open_era5(era5).load(), args.repeat)
        plain = _best(lambda: xr.open_dataset(era5).load(), args.repeat)
        rows.append({"case": "ERA5 hourly 0.5 deg", "detail": f"{args.days} days (a full year "
                     f"exceeds this machine), {shape[0]}x{shape[1]}x{shape[2]} x 4 variables, "
                     f"{size:.0f} MiB", "fluxbridge_s": round(ours, 3),
                     "plain_s": round(plain, 3), "ratio": round(ours / plain, 3),
                     "peak_rss_mib": round(_peak_mib())})
    print(f"{'case':22s} {'fluxbridge s':>12s} {'plain s':>9s} {'ratio':>7s}  detail")
    for r in rows:
        print(f"{r['case']:22s} {r['fluxbridge_s']:12.2f} {r['plain_s']:9.2f} "
              f"{r['ratio']:7.2f}  {r['detail']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
