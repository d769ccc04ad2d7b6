"""The climatological year: a mean seasonal cycle standing in for a real year.

Where the predictors are long-term means of each calendar month (a climatology, such as the
NCEP/NCAR R1 or CMAP 1981-2010 means), they have no year, so the site records and the inversion
targets are reduced to the same mean seasonal cycle (each calendar month averaged over the
years) before they meet. All three are then stamped on the months of one nominal year,
:data:`CLIMATOLOGY_YEAR`, so that the monthly machinery (days of each step, monthly totals)
applies unchanged; the attribute ``climatology = "true"`` and the averaged periods say that the
times are months of the year, not of that year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError

CLIMATOLOGY_YEAR = 2001
"""Nominal year (not a leap year) whose month starts carry a mean seasonal cycle."""

COMMENT = (f"mean seasonal cycle: time holds the months of the nominal year {CLIMATOLOGY_YEAR}, "
           "each the mean of that calendar month over the period stated")


def climatological_times() -> pd.DatetimeIndex:
    """Month starts of :data:`CLIMATOLOGY_YEAR`."""
    return pd.date_range(f"{CLIMATOLOGY_YEAR}-01-01", periods=12, freq="MS")


def is_climatology(ds: xr.Dataset) -> bool:
    """Whether a dataset holds a mean seasonal cycle (attribute ``climatology = "true"``)."""
    return str(ds.attrs.get("climatology", "false")) == "true"


def months_to_times(ds: xr.Dataset, period: str) -> xr.Dataset:
    """A dataset on a ``month`` dimension (1..12) put on the months of the nominal year.

    Parameters
    ----------
    ds
        Data with dimension ``month`` holding each calendar month once.
    period
        Years averaged (e.g. ``"1981-2010"``), recorded as ``climatology_period``.
    """
    months = np.asarray(ds["month"].values).astype(int)
    if sorted(months.tolist()) != list(range(1, 13)):
        raise InputError(f"months {months.tolist()}", variable="month",
                         expected="each of the 12 calendar months once")
    out = ds.sortby("month").rename(month="time").assign_coords(time=climatological_times())
    out["time"].attrs = {"long_name": "month of the mean seasonal cycle (nominal year)"}
    out.attrs.update(climatology="true", climatology_period=period, comment=COMMENT)
    return out


def sites_seasonal_cycle(sites: xr.Dataset) -> xr.Dataset:
    """Each site's mean seasonal cycle: every monthly variable averaged by calendar month.

    Parameters
    ----------
    sites
        Canonical sites dataset at the monthly step (``nee`` [g m-2 d-1], ``nee_weight`` [1] and
        site meteorology on (site, time)).

    Returns
    -------
    xr.Dataset
        The same variables (units kept) on the 12 months of the nominal year: the mean over the
        years with a value (NaN where a site never measured that month); ``n_years`` (site,
        time) [1] counts them. Attributes ``climatology`` and ``climatology_period``.
    """
    time = pd.DatetimeIndex(sites["time"].values)
    finite = sites["nee"].notnull()
    years = time[np.asarray(finite.any("site"))].year
    monthly = sites.groupby("time.month").mean("time", skipna=True, keep_attrs=True)
    monthly["n_years"] = finite.groupby("time.month").sum("time").assign_attrs(
        units="1", long_name="years averaged into the site's month")
    monthly["month"] = monthly["month"].astype(int)
    if monthly.sizes["month"] != 12:
        monthly = monthly.reindex(month=np.arange(1, 13))
    period = f"{years.min()}-{years.max()}" if years.size else "none"
    return months_to_times(monthly, period).transpose("site", "time").assign_attrs(
        {**sites.attrs, "climatology": "true", "climatology_period": period,
         "comment": COMMENT})


def targets_seasonal_cycle(targets: xr.Dataset, years: tuple[int, int] | None = None,
                           min_members: int = 2) -> xr.Dataset:
    """The inversion targets' mean seasonal cycle over a period.

    Each member's NBE, its corrections and its NEE are averaged by calendar month over the years
    (so a member's annual total is its mean annual total); the ensemble mean and spread are
    then taken across the members' cycles.

    Parameters
    ----------
    targets
        Canonical targets (``nbe``, ``nee`` (member, region, time), ``correction`` (region,
        time)) [Tg month-1].
    years
        First and last year averaged; None = the years in which every member has all 12 months.
    min_members
        Region-months with fewer finite members get NaN spread.

    Returns
    -------
    xr.Dataset
        Canonical targets on the months of the nominal year, attributes ``climatology`` and
        ``climatology_period``.
    """
    time = pd.DatetimeIndex(targets["time"].values)
    if years is None:
        full = targets["nee"].notnull().all(("member", "region")).groupby("time.year").sum()
        complete = full["year"].values[full.values == 12]
        if complete.size == 0:
            raise InputError("no year in which every inversion member has 12 months",
                             variable="inversions", expected="members sharing a full year")
        years = (int(complete.min()), int(complete.max()))
    inside = (time.year >= years[0]) & (time.year <= years[1])
    if not inside.any():
        raise InputError(f"no month in {years[0]}-{years[1]}", variable="inversions",
                         expected=f"months within {time.min():%Y-%m}..{time.max():%Y-%m}")
    sel = targets.isel(time=np.flatnonzero(inside))
    cycle = sel[["nbe", "nee", "correction"]].groupby("time.month").mean(
        "time", keep_attrs=True)
    finite = cycle["nee"].notnull().sum("member")
    cycle["nee_mean"] = cycle["nee"].mean("member").where(finite >= 1).assign_attrs(
        targets["nee_mean"].attrs)
    cycle["nee_spread"] = cycle["nee"].std("member", ddof=1).where(
        finite >= min_members).assign_attrs(targets["nee_spread"].attrs)
    cycle["month"] = cycle["month"].astype(int)
    period = f"{years[0]}-{years[1]}"
    out = months_to_times(cycle, period).transpose("member", "region", "time")
    out.attrs = {**targets.attrs, "climatology": "true", "climatology_period": period,
                 "comment": COMMENT}
    return out


def time_axis_attrs(predictors: xr.Dataset, targets: xr.Dataset) -> dict[str, str]:
    """Output attributes that say what the times of a product stand for.

    Returns
    -------
    dict
        ``climatology`` ("true" or "false") and, for a climatological year, the periods the
        predictors, the towers and the inversions were averaged over, and a comment.
    """
    if not is_climatology(predictors):
        return {"climatology": "false"}
    return {"climatology": "true", "comment": COMMENT,
            "climatology_period": str(predictors.attrs.get("climatology_period", "unknown")),
            "inversions_period": str(targets.attrs.get("climatology_period", "unknown"))}
