"""Spatial and temporal totals of flux fields: the exact regional sum that everything refers to.

Flux densities are gC m-2 d-1 (positive = source). Regional totals are Tg of carbon per month,
global totals Pg of carbon per year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid
from fluxbridge.regions import region_names


def region_weights(regions: xr.Dataset) -> xr.DataArray:
    """One-hot area weights (region, lat, lon) [m2]: cell_area × land_fraction inside a region.

    The coordinate ``region`` holds integer ids; ``region_name`` their names.
    """
    names = region_names(regions)
    ids = np.array(sorted(names), dtype=int)
    land_area = (regions["cell_area"] * regions["land_fraction"]).fillna(0.0)
    onehot = regions["region"] == xr.DataArray(ids, dims="region")
    weights = (onehot * land_area).astype("float64")
    weights = weights.assign_coords(region=ids,
                                    region_name=("region", [names[i] for i in ids]))
    weights.attrs = {"units": "m2", "long_name": "land area of each cell in each region"}
    return weights


def time_step_days(time: xr.DataArray | pd.DatetimeIndex) -> float:
    """Median spacing of a time coordinate [days]."""
    t = pd.DatetimeIndex(np.asarray(time))
    if t.size < 2:
        raise InputError("cannot tell the time step of a single time", variable="time",
                         expected="at least two times")
    steps = np.diff(t.values).astype("timedelta64[s]").astype(float)
    return float(np.median(steps) / 86_400.0)


def regional_totals(nee: xr.DataArray, regions: xr.Dataset) -> xr.DataArray:
    """Monthly regional totals of a flux density field.

    Parameters
    ----------
    nee
        Flux density (time, lat, lon) [g m-2 d-1] of carbon, daily or monthly means (time = month
        start); NaN counts as zero flux (use a filled field where that matters).
    regions
        Canonical regions dataset on the same grid.

    Returns
    -------
    xr.DataArray
        (region, time) [Tg month-1] of carbon, time = month start.
    """
    check_same_grid(nee, regions, what="flux field and region mask")
    weights = region_weights(regions)
    per_time = xr.dot(nee.fillna(0.0), weights, dim=("lat", "lon"))  # g d-1
    step = time_step_days(nee["time"])
    if step < 1.5:  # daily: sum the days of each month
        monthly = per_time.resample(time="MS").sum()
    elif 27 <= step <= 32:  # monthly means: times the days in the month
        days = per_time["time"].dt.days_in_month
        monthly = (per_time * days).resample(time="MS").sum()
    else:
        raise InputError(f"time step of {step:.1f} days is neither daily nor monthly",
                         variable="time", expected="daily or monthly flux fields")
    out = (monthly / G_PER_TG).transpose("region", "time")
    out.name = "nee_tgc"
    out.attrs = {"units": "Tg month-1", "long_name": "regional total of net ecosystem exchange "
                 "of carbon per month, positive to the atmosphere"}
    return out


def totals_frame(totals: xr.DataArray, value_name: str = "nee_tgc") -> pd.DataFrame:
    """(region, time) totals as the long CSV table ``region, time (YYYY-MM), value_name``."""
    df = totals.to_dataframe(name=value_name).reset_index()
    name_col = "region_name" if "region_name" in df else "region"
    out = pd.DataFrame({
        "region": df[name_col].astype(str),
        "time": pd.DatetimeIndex(df["time"]).strftime("%Y-%m"),
        value_name: df[value_name].astype(float),
    })
    return out


def global_annual_totals(nee: xr.DataArray, cell_area: xr.DataArray,
                         land_fraction: xr.DataArray) -> xr.DataArray:
    """Global annual totals [Pg yr-1] of carbon from a daily or monthly flux density field."""
    area = (cell_area * land_fraction).fillna(0.0)
    per_time = xr.dot(nee.fillna(0.0), area, dim=("lat", "lon"))  # g d-1
    step = time_step_days(nee["time"])
    if step < 1.5:
        yearly = per_time.resample(time="YS").sum()
    else:
        yearly = (per_time * per_time["time"].dt.days_in_month).resample(time="YS").sum()
    out = yearly / G_PER_PG
    out.name = "nee_global"
    out.attrs = {"units": "Pg yr-1", "long_name": "global land net ecosystem exchange of carbon "
                 "per year, positive to the atmosphere"}
    return out
