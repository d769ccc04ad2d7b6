"""The upscaled products: gridded NEE in the CF layout, regional and global totals.

Each is written atomically (under a temporary name renamed on completion):

    nee.nc          daily NEE [g m-2 d-1] (+ nee_spread), CF-1.8 (nee.zarr with Zarr)
    nee_monthly.nc  monthly means, time = month start
    regional.nc     regional monthly totals [Tg month-1] (+ members, spread)
    regional.csv    region, time (YYYY-MM), nee_tgc [, nee_tgc_spread]
    global.nc       global annual totals [Pg yr-1]
    global.csv      year, nee_pgc [, nee_pgc_spread]

Totals come from :func:`fluxbridge.operators.operator.monthly_totals` (one member per row of
their first axis); the spread across ensemble members is their standard deviation (ddof 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dask
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.operators import totals_frame
from fluxbridge.outputs import cf
from fluxbridge.outputs.files import atomic_path, write_csv, write_netcdf
from fluxbridge.regions import region_names
from fluxbridge.vocabulary import attrs as var_attrs

SPREAD = "standard deviation across ensemble members of the "


def _mean_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    return x.mean(axis=0), (x.std(axis=0, ddof=1) if x.shape[0] > 1 else None)


def write_grid(nee: xr.DataArray, spread: xr.DataArray | None, regions: xr.Dataset,
               period: Literal["day", "month"], attrs: dict[str, str], n_members: int,
               path: Path, fmt: Literal["netcdf", "zarr"], chunk_rows: int) -> None:
    """Gridded NEE in the CF layout (:func:`fluxbridge.outputs.cf.gridded_dataset`).

    Parameters
    ----------
    nee, spread
        Mean NEE over the members and their spread (None for one model), (time, lat, lon)
        [g m-2 d-1]; may be lazy, computed here chunk by chunk.
    regions
        Regions dataset of the grid (``cell_area`` [m2], ``land_fraction`` [1]).
    period
        ``"day"`` or ``"month"`` (monthly means, time = month start).
    attrs
        Global attributes (provenance).
    n_members
        Ensemble members behind the mean.
    path
        NetCDF file or Zarr store.
    fmt
        ``"netcdf"`` or ``"zarr"``.
    chunk_rows
        Latitude rows of a file chunk.
    """
    ds = cf.gridded_dataset(nee, spread, regions["cell_area"], regions["land_fraction"], period,
                            attrs, n_members=n_members)
    enc = cf.encoding(ds, chunk_rows, fmt)
    with dask.config.set(scheduler="synchronous"):
        if fmt == "netcdf":
            write_netcdf(ds, path, encoding=enc, engine="netcdf4")
        else:
            with atomic_path(path) as tmp:
                ds.to_zarr(tmp, encoding=enc, mode="w", consolidated=True)


def write_regional(tgc: np.ndarray, months: pd.DatetimeIndex, regions: xr.Dataset,
                   attrs: dict[str, str], csv: Path, nc: Path) -> None:
    """Regional monthly totals as NetCDF and CSV.

    Parameters
    ----------
    tgc
        (member, region, month) totals [Tg month-1], regions in increasing id.
    months
        Month starts.
    regions
        Regions dataset (names and flag attributes of ``region``).
    attrs
        Global attributes (provenance).
    csv, nc
        Files to write.
    """
    names = region_names(regions)
    ids = np.array(sorted(names), dtype=int)
    mean, spread = _mean_spread(tgc)
    total = var_attrs("nee_tgc")
    ds = xr.Dataset(coords={"region": ids, "region_name": ("region", [names[i] for i in ids]),
                            "time": months.values})
    ds["nee_tgc"] = (("region", "time"), mean, total)
    if spread is not None:
        ds["nee_tgc_spread"] = (("region", "time"), spread, {
            "units": total["units"], "long_name": SPREAD + total["long_name"]})
        ds["nee_tgc_member"] = (("member", "region", "time"), tgc, {
            "units": total["units"], "long_name": total["long_name"] + ", each ensemble member"})
    ds["region"].attrs = {"long_name": "region id", **{k: v for k, v in
                          regions["region"].attrs.items() if k.startswith("flag")}}
    ds["time"].attrs = {"long_name": "month start", "standard_name": "time"}
    ds.attrs = {**cf.GLOBAL_ATTRS, **attrs, "title": "fluxbridge regional NEE totals"}
    write_netcdf(ds, nc, encoding={"time": {"units": cf.TIME_UNITS, "calendar": cf.CALENDAR}})
    df = totals_frame(ds["nee_tgc"])
    if spread is not None:
        df["nee_tgc_spread"] = totals_frame(ds["nee_tgc_spread"], "s")["s"].to_numpy()
    write_csv(df, csv)


def write_global(tgc: np.ndarray, months: pd.DatetimeIndex, attrs: dict[str, str], csv: Path,
                 nc: Path) -> None:
    """Global annual totals as NetCDF and CSV, summed over the months present.

    Parameters
    ----------
    tgc
        (member, month) global land totals [Tg month-1].
    months
        Month starts.
    attrs
        Global attributes (provenance).
    csv, nc
        Files to write.
    """
    years = np.unique(months.year)
    yearly = np.stack([tgc[:, months.year == y].sum(axis=1) for y in years], axis=1)
    mean, spread = _mean_spread(yearly * (G_PER_TG / G_PER_PG))
    total = var_attrs("nee_pgc")
    ds = xr.Dataset(coords={"year": ("year", years.astype(np.int32), {"long_name": "year"})})
    ds["nee_pgc"] = ("year", mean, {**total,
                                    "comment": "sum over the months present in the record"})
    if spread is not None:
        ds["nee_pgc_spread"] = ("year", spread, {"units": total["units"],
                                                 "long_name": SPREAD + total["long_name"]})
    ds.attrs = {**cf.GLOBAL_ATTRS, **attrs, "title": "fluxbridge global NEE totals"}
    write_netcdf(ds, nc)
    df = pd.DataFrame({"year": years.astype(int), "nee_pgc": mean})
    if spread is not None:
        df["nee_pgc_spread"] = spread
    write_csv(df, csv)
