"""Whether the inputs overlap in time: the sites' measured years and the inversions' months
against the meteorology's record, checked before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError


def _years(years: list[int]) -> str:
    """Years as short text: ``2010-2012`` when consecutive, else a list."""
    if not years:
        return "none"
    if years == list(range(years[0], years[-1] + 1)):
        return str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def _files(paths: list[Path]) -> str:
    """The first file in full, then the names of (up to four) further files."""
    more = [p.name for p in paths[1:5]] + ([f"{len(paths) - 5} more"] if len(paths) > 5 else [])
    return f"{paths[0]} (+ {', '.join(more)})" if more else str(paths[0])


def check_site_years(sites: xr.Dataset, meteorology_times: pd.DatetimeIndex,
                     meteorology_files: list[Path]) -> None:
    """Refuse meteorology whose years hold no day of measured site NEE.

    Parameters
    ----------
    sites
        Canonical sites dataset (``nee`` [g m-2 d-1] over ``site``, ``time``).
    meteorology_times
        Days of the meteorology (the model's record).
    meteorology_files
        The meteorology's files, for the message.

    Raises
    ------
    InputError
        Naming the meteorology's files, the years they hold and the years with site NEE.
    """
    t = pd.DatetimeIndex(sites["time"].values)
    measured = np.asarray(sites["nee"].notnull().any("site"))
    needed = sorted(set(t[measured].year))
    if np.isin(t[measured], meteorology_times).any():
        return
    found = sorted(set(meteorology_times.year))
    raise InputError(f"the meteorology holds the years {_years(found)}, none with measured "
                     f"site NEE", path=_files(meteorology_files), variable="time",
                     expected=f"meteorology for some of the sites' years {_years(needed)}")


def check_target_months(targets: xr.Dataset, meteorology_times: pd.DatetimeIndex,
                        inversion_files: list[Path]) -> None:
    """Refuse inversions whose months all lie outside the meteorology's record.

    Raises
    ------
    InputError
        Naming the inversions' files, their period and the meteorology's.
    """
    t = pd.DatetimeIndex(targets["time"].values)
    first, last = meteorology_times.min(), meteorology_times.max()
    if t.max() >= first.to_period("M").start_time and t.min() <= last:
        return
    raise InputError(
        f"months {t.min():%Y-%m}..{t.max():%Y-%m} do not overlap the meteorology's "
        f"{first:%Y-%m-%d}..{last:%Y-%m-%d}", path=_files(inversion_files),
        variable="inputs.inversions", expected="months within the meteorology's period")
