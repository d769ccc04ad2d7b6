"""Benchmark of the file readers against plain pandas / xarray reads of the same files.

Usage::

    .venv/bin/python -P benchmarks/io.py [--years 20] [--repeat 2] [--work DIR]

(``-P`` keeps this folder off ``sys.path``, where ``operator.py`` would shadow the standard
library module.) Writes ``benchmarks/results/io.json`` as ``{"setup": {...}, "rows": [...]}``
and prints a table.

Files (generated in a temporary directory, deleted afterwards):

* **site**: a 20-year half-hourly FLUXNET2015 FULLSET file with the real layout
  (TIMESTAMP_START/END, then the columns of the real FULLSET file
  ``fullset/FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv`` without their day/night
  variants, -9999 for 5 % gaps).
* **ERA5**: hourly single levels t2m, d2m, ssrd, tp in the *legacy* CDS layout (NetCDF3 64-bit
  offset, int16 packed with ``scale_factor``/``add_offset``, ``_FillValue`` -32767, dimension
  ``time`` in hours since 1900). A full year of hourly global 0.5° data is
  8760 × 361 × 720 ≈ 2.3e9 values per variable: 4.6 GB per variable packed, 9.1 GB decoded to
  float32, 36 GB for the four variables, more than this machine's 24 GB of memory (and a plain
  ``xarray.open_dataset(...).load()`` must hold all of it). So two files stand in for it:

  - ``ERA5 year, Europe``: a **full year** (8760 hours) on a regional 0.5° window,
    35-72°N × 25°W-45°E (75 × 141 cells, as a CDS ``area`` request returns it);
  - ``ERA5 month, global``: **one month** (744 hours) on the global 0.5° grid (361 × 720).

  Time per value read scales with the values; multiply the global month by 12 for the
  order of magnitude of a global year.

Cases, each run ``--repeat`` times in a fresh child process (best time kept; peak resident set
size of that process (``VmHWM``) recorded, and its resident size after the imports,
``base_rss_mib``):

* ``site``: ``fluxbridge`` = :func:`fluxbridge.io.fluxnet.read_site_file` (the columns it needs,
  -9999 → NaN, timestamps, units, QC weight, canonical dataset); ``plain`` =
  ``pandas.read_csv(path)`` (all columns); ``plain_same`` = ``pandas.read_csv`` of the same
  columns with ``na_values=-9999`` and parsed timestamps (the same parsing work).
  ``site daily``: :func:`fluxbridge.io.fluxnet.aggregate` ``(ds, "DD")`` (QC-honouring daily
  means) against ``plain_same`` followed by a plain pandas daily ``resample().mean()``.
* ``ERA5``: ``fluxbridge`` = :func:`fluxbridge.io.era5.open_era5` ``(path).load()`` (lazy dask
  chunks of whole days, int16 unpacked to float32 per chunk, daily means, accumulations of
  hours 01..24, VPD on hourly values, units, canonical grid);
  ``plain`` = ``xarray.open_dataset(path).load()`` (the unpacked hourly values only);
  ``plain_daily`` = the same followed by plain daily ``resample`` means of t2m, d2m and sums of
  ssrd, tp (the same daily work without VPD, shifting and units). ``ratio`` is against
  ``plain``, ``ratio_same_work`` against ``plain_daily`` (or ``plain_same`` for the site file).

The machine has 2 cores shared with other work; dask (used by ``open_era5``) runs its threaded
scheduler, plain xarray and pandas run on one core. ``flox`` is a dependency of fluxbridge, so
xarray's ``resample`` (``aggregate``, the plain daily cases) groups with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "io.json"
REAL = ROOT.parent / "shared" / "data" / "real"
TEMPLATE = REAL / "fluxnet2015" / "fullset" / "FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv"
PACKING = {  # name: (units, long_name, valid min, valid max) for int16 packing
    "t2m": ("K", "2 metre temperature", 180.0, 340.0),
    "d2m": ("K", "2 metre dewpoint temperature", 170.0, 320.0),
    "ssrd": ("J m**-2", "Surface solar radiation downwards", 0.0, 4.5e6),
    "tp": ("m", "Total precipitation", 0.0, 0.1),
}
EUROPE = (72.0, 35.0, -25.0, 45.0)  # north, south, west, east


def _template_columns() -> list[str]:
    if TEMPLATE.is_file():
        header = TEMPLATE.read_text().splitlines()[0].split(",")[1:]
    else:  # the core columns the reader uses, plus filler like a FULLSET file's
        header = ["TA_F", "TA_F_QC", "SW_IN_POT", "SW_IN_F", "SW_IN_F_QC", "VPD_F", "VPD_F_QC",
                  "P_F", "P_F_QC", "NEE_VUT_REF", "NEE_VUT_REF_QC", "NEE_CUT_REF",
                  "NEE_CUT_REF_QC", "GPP_NT_VUT_REF", "RECO_NT_VUT_REF",
                  *(f"FILLER_{i}" for i in range(120))]
    return [c for c in header if not any(k in c for k in ("_DAY", "_NIGHT"))]


def write_half_hourly(path: Path, years: int, seed: int = 0) -> tuple[int, int]:
    """A FULLSET HH file of ``years`` years from 2000; returns (rows, columns)."""
    columns = _template_columns()
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


def write_era5_legacy(path: Path, hours: int, lat: np.ndarray, lon: np.ndarray,
                      seed: int = 0) -> tuple[int, int, int]:
    """Hourly ERA5 single levels in the legacy CDS layout (NetCDF3, int16 packed).

    Written a day at a time so that memory stays small; returns the (time, lat, lon) shape.
    """
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("1900-01-01")
    start = int((pd.Timestamp("2010-01-01") - base) / pd.Timedelta(hours=1))
    coslat = np.cos(np.deg2rad(lat))[None, :, None]
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("longitude", lon.size)
        nc.createDimension("latitude", lat.size)
        nc.createDimension("time", hours)
        v = nc.createVariable("longitude", "f4", ("longitude",))
        v.units, v.long_name = "degrees_east", "longitude"
        v[:] = lon
        v = nc.createVariable("latitude", "f4", ("latitude",))
        v.units, v.long_name = "degrees_north", "latitude"
        v[:] = lat
        v = nc.createVariable("time", "i4", ("time",))
        v.units, v.long_name, v.calendar = ("hours since 1900-01-01 00:00:00.0", "time",
                                            "gregorian")
        v[:] = start + np.arange(hours)
        out = {}
        for name, (units, long_name, lo, hi) in PACKING.items():
            var = nc.createVariable(name, "i2", ("time", "latitude", "longitude"),
                                    fill_value=np.int16(-32767))
            var.scale_factor = (hi - lo) / 65533.0
            var.add_offset = (hi + lo) / 2.0
            var.missing_value = np.int16(-32767)
            var.units, var.long_name = units, long_name
            var.set_auto_maskandscale(False)
            out[name] = var
        for t0 in range(0, hours, 24):
            h = np.arange(t0, min(t0 + 24, hours))[:, None, None]
            solar = np.sin(2 * np.pi * ((h % 24) + lon[None, None, :] / 15.0 - 6) / 24)
            t2m = (263.0 + 35.0 * coslat + 5.0 * solar
                   + rng.normal(0.0, 1.0, (h.size, lat.size, lon.size)))
            fields = {
                "t2m": t2m,
                "d2m": t2m - 1.0 - 5.0 * rng.random(t2m.shape),
                "ssrd": np.clip(solar, 0, None) * 3.0e6 * coslat,
                "tp": rng.exponential(5e-4, t2m.shape) * (rng.random(t2m.shape) < 0.2),
            }
            for name, values in fields.items():
                var = out[name]
                packed = np.round((values - var.add_offset) / var.scale_factor)
                var[t0:t0 + h.size] = np.clip(packed, -32766, 32767).astype(np.int16)
    return hours, lat.size, lon.size


# ---------------------------------------------------------------- measured in a child process

def _site_columns(path: Path) -> list[str]:
    from fluxbridge.io.fluxnet import METEO_COLUMNS

    header = path.open().readline().rstrip("\n").split(",")
    wanted = {"NEE_VUT_REF", "NEE_VUT_REF_QC", "NEE_CUT_REF", "NEE_CUT_REF_QC",
              *(c for cols, _ in METEO_COLUMNS.values() for c in cols)}
    return [c for c in header if c in wanted or c.startswith("TIMESTAMP")]


def _plain_site_same(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, usecols=_site_columns(path), na_values=[-9999],
                     dtype={"TIMESTAMP_START": str, "TIMESTAMP_END": str})
    df.index = pd.to_datetime(df.pop("TIMESTAMP_START"), format="%Y%m%d%H%M")
    df.pop("TIMESTAMP_END")
    return df


def _plain_era5_daily(path: Path):
    import xarray as xr

    ds = xr.open_dataset(path).load()
    inst = ds[["t2m", "d2m"]].resample(time="1D").mean()
    acc = ds[["ssrd", "tp"]].resample(time="1D").sum()
    return xr.merge([inst, acc])


def _case(name: str, path: Path):
    """The function a child process times for case ``name`` on ``path``."""
    import xarray as xr

    from fluxbridge.io.era5 import open_era5
    from fluxbridge.io.fluxnet import aggregate, read_site_file

    if name == "site_fluxbridge":
        return lambda: read_site_file(path)
    if name == "site_plain":
        return lambda: pd.read_csv(path)
    if name == "site_plain_same":
        return lambda: _plain_site_same(path)
    if name == "site_daily_fluxbridge":
        return lambda: aggregate(read_site_file(path), "DD")
    if name == "site_daily_plain":
        return lambda: _plain_site_same(path).resample("1D").mean()
    if name == "era5_fluxbridge":
        return lambda: open_era5(path).load()
    if name == "era5_plain":
        return lambda: xr.open_dataset(path).load()
    if name == "era5_plain_daily":
        return lambda: _plain_era5_daily(path)
    raise SystemExit(f"unknown case {name}")


def _status_mib(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` of this process [MiB].

    Not ``getrusage``: its ``ru_maxrss`` survives ``exec`` and would include the parent's
    memory at the fork.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(name: str, path: Path, repeat: int) -> dict:
    fn = _case(name, path)
    base = _status_mib("VmRSS")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    peak = _status_mib("VmHWM")
    return {"seconds": round(min(times), 3), "all_seconds": [round(t, 3) for t in times],
            "peak_rss_mib": round(peak), "base_rss_mib": round(base)}


def _run_child(name: str, path: Path, repeat: int) -> dict:
    cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--measure", name,
           "--file", str(path), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {name:24s} {result['seconds']:8.2f} s  peak {result['peak_rss_mib']:6d} MiB",
          flush=True)
    return result


def _row(case: str, detail: str, size_mib: float, ours: dict, plain: dict, same: dict,
         same_name: str) -> dict:
    return {
        "case": case, "detail": detail, "file_mib": round(size_mib, 1),
        "fluxbridge_s": ours["seconds"], "plain_s": plain["seconds"],
        f"{same_name}_s": same["seconds"],
        "ratio": round(ours["seconds"] / plain["seconds"], 2),
        "ratio_same_work": round(ours["seconds"] / same["seconds"], 2),
        "fluxbridge_peak_rss_mib": ours["peak_rss_mib"],
        "plain_peak_rss_mib": plain["peak_rss_mib"],
        f"{same_name}_peak_rss_mib": same["peak_rss_mib"],
        "base_rss_mib": ours["base_rss_mib"],
        "all_seconds": {"fluxbridge": ours["all_seconds"], "plain": plain["all_seconds"],
                        same_name: same["all_seconds"]},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=20, help="years of the site file")
    parser.add_argument("--global-days", type=int, default=31,
                        help="days of the global hourly ERA5 file")
    parser.add_argument("--region-days", type=int, default=365,
                        help="days of the European hourly ERA5 file")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="folder for the files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    return parser


def _site_rows(tmp: Path, years: int, repeat: int) -> list[dict]:
    """The half-hourly site file read as it is and aggregated to days."""
    site = tmp / f"FLX_XX-Ben_FLUXNET2015_FULLSET_HH_2000-{1999 + years}_1-4.csv"
    t0 = time.perf_counter()
    n_rows, n_cols = write_half_hourly(site, years)
    size = site.stat().st_size / 2**20
    print(f"site file: {n_rows} x {n_cols}, {size:.0f} MiB "
          f"(written in {time.perf_counter() - t0:.0f} s)", flush=True)
    res = {c: _run_child(c, site, repeat) for c in (
        "site_fluxbridge", "site_plain", "site_plain_same", "site_daily_fluxbridge",
        "site_daily_plain")}
    detail = f"{years} years half-hourly, {n_rows} rows x {n_cols} columns"
    site.unlink()
    return [_row("site HH FULLSET read", detail, size, res["site_fluxbridge"],
                 res["site_plain"], res["site_plain_same"], "plain_same"),
            _row("site HH -> daily", detail + "; plain = same columns + "
                 "resample('1D').mean()", size, res["site_daily_fluxbridge"],
                 res["site_plain"], res["site_daily_plain"], "plain_same")]


def _era5_rows(tmp: Path, region_days: int, global_days: int, repeat: int) -> list[dict]:
    """A year of hourly ERA5 over Europe and a month over the globe, read to daily values."""
    res_deg = 0.5
    north, south, west, east = EUROPE
    files = [
        ("ERA5 hourly year, Europe 0.5 deg", region_days,
         np.arange(north, south - res_deg / 2, -res_deg),
         np.arange(west, east + res_deg / 2, res_deg)),
        ("ERA5 hourly month, global 0.5 deg", global_days,
         np.arange(90.0, -90.0 - res_deg / 2, -res_deg), np.arange(0.0, 360.0, res_deg)),
    ]
    rows = []
    for case, days, lat, lon in files:
        path = tmp / "era5_hourly.nc"
        t0 = time.perf_counter()
        shape = write_era5_legacy(path, 24 * days, lat, lon)
        size = path.stat().st_size / 2**20
        print(f"{case}: {shape}, {size:.0f} MiB (written in "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
        res = {c: _run_child(c, path, repeat) for c in (
            "era5_fluxbridge", "era5_plain", "era5_plain_daily")}
        detail = (f"{days} days, {shape[0]} x {shape[1]} x {shape[2]} x 4 variables "
                  f"({shape[0] * shape[1] * shape[2]:.3g} values each), legacy CDS "
                  "NetCDF3 int16 packed")
        rows.append(_row(case, detail, size, res["era5_fluxbridge"], res["era5_plain"],
                         res["era5_plain_daily"], "plain_daily"))
        path.unlink()
    return rows


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'case':36s} {'MiB':>6s} {'ours s':>8s} {'plain s':>8s} {'same s':>8s} "
          f"{'ratio':>6s} {'same':>6s} {'peak ours/plain/same MiB':>26s}")
    for r in rows:
        same = r.get("plain_same_s", r.get("plain_daily_s"))
        same_peak = r.get("plain_same_peak_rss_mib", r.get("plain_daily_peak_rss_mib"))
        print(f"{r['case']:36s} {r['file_mib']:6.0f} {r['fluxbridge_s']:8.2f} "
              f"{r['plain_s']:8.2f} {same:8.2f} {r['ratio']:6.2f} {r['ratio_same_work']:6.2f} "
              f"{r['fluxbridge_peak_rss_mib']:>8d}/{r['plain_peak_rss_mib']}/{same_peak}")


def _setup(argv: list[str] | None, repeat: int) -> dict:
    return {
        "command": "python -P benchmarks/io.py " + " ".join(argv or sys.argv[1:]),
        "date": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "repeat": repeat, "timing": "best of repeat, each case in a fresh process",
        "era5_note": ("a full year of hourly global 0.5 deg ERA5 (8760 x 361 x 720 x 4 "
                      "variables, 36 GB as float32) exceeds this 24 GB machine; benchmarked "
                      "instead: a full year on a European 0.5 deg window and one month on the "
                      "global 0.5 deg grid, both legacy CDS NetCDF3 int16 packed"),
        "ratio": "fluxbridge_s / plain_s; ratio_same_work = fluxbridge_s / (plain_same_s or "
                 "plain_daily_s)",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(args.measure, args.file, args.repeat)))
        return []
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = _site_rows(Path(tmp), args.years, args.repeat)
        rows += _era5_rows(Path(tmp), args.region_days, args.global_days, args.repeat)
    _print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": _setup(argv, args.repeat), "rows": rows},
                                   indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
