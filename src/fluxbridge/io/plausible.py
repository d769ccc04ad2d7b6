"""Plausibility of physical inputs: values within the vocabulary's valid ranges.

A file in wrong units that are labelled right (air temperature in °C labelled K, precipitation
in mm labelled m, an inversion in PgC m-2 yr-1 labelled gC m-2 d-1) reads without error and
gives nonsense downstream. These checks compare the range of values found with the plausible
range of :data:`fluxbridge.vocabulary.VARIABLES` and refuse the file with one line naming it,
the variable, the range found and the range expected. Minimum and maximum are computed lazily
(one pass of dask over the data).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.vocabulary import VARIABLES

log = logging.getLogger(__name__)

TOLERANCE = 1e-3
"""Slack at both ends of a valid range, as a fraction of its width (float rounding)."""

HINTS = {"ta": " (180..340 K)", "precip": " (daily totals)", "sw_in": " (daily mean)"}

ERA5_SOURCES = {"ta": "t2m", "sw_in": "ssrd", "precip": "tp"}
"""ERA5 variable that each checked canonical predictor is made from."""

MIN_FLUX = 1e-3
"""Smallest largest |flux| of a plausible inversion member [g m-2 d-1]: a member below it
everywhere is in the wrong units (e.g. PgC m-2 yr-1 labelled gC m-2 d-1)."""


def value_range(*arrays: xr.DataArray) -> list[tuple[float, float]]:
    """Minimum and maximum of each array over its finite values, in one dask pass.

    Returns
    -------
    list of (float, float)
        ``(min, max)`` of each array; NaN for an array without a finite value.
    """
    reductions = [(da.min(), da.max()) for da in arrays]
    found = dask.compute(*reductions)
    return [(float(lo), float(hi)) for lo, hi in found]


def range_problem(name: str, found: tuple[float, float], where: str | os.PathLike[str] | None,
                  source: str | None = None) -> InputError | None:
    """The error for values of canonical variable ``name`` beyond its valid range, or None.

    Parameters
    ----------
    name
        Canonical variable with a ``valid_range`` in the vocabulary.
    found
        ``(min, max)`` found, in the variable's canonical units.
    where
        The file, named in the error.
    source
        The variable's name in the file, when it differs.
    """
    var = VARIABLES[name]
    if var.valid_range is None or not np.all(np.isfinite(found)):
        return None
    lo, hi = var.valid_range
    slack = TOLERANCE * (hi - lo)
    if found[0] >= lo - slack and found[1] <= hi + slack:
        return None
    label = name if source in (None, name) else f"{source} ({name})"
    return InputError(
        f"values {found[0]:.4g}..{found[1]:.4g} {var.units} found; wrong units?", path=where,
        variable=label, expected=f"{var.long_name} within {lo:g}..{hi:g} {var.units}"
        f"{HINTS.get(name, '')}")


def _era5_file_times(path: Path) -> tuple[set[str], np.datetime64, np.datetime64] | None:
    """Variables and first and last day of one ERA5 NetCDF file (None: not a NetCDF)."""
    try:
        with xr.open_dataset(path, decode_times=True) as ds:
            dim = next(d for d in ("valid_time", "time") if d in ds.dims)
            t = ds[dim].values.astype("datetime64[D]")
            return set(ds.data_vars), t.min(), t.max()
    except (OSError, ValueError, StopIteration):
        return None


def _era5_culprit(met: xr.Dataset, name: str, paths: Sequence[Path]
                  ) -> tuple[Path, tuple[float, float]] | None:
    """The ERA5 file holding implausible values of predictor ``name``, and their range."""
    for path in paths:
        info = _era5_file_times(path)
        if info is None or ERA5_SOURCES[name] not in info[0]:
            continue
        part = met[name].sel(time=slice(info[1], info[2]))
        found = value_range(part)[0] if part.sizes["time"] else (np.nan, np.nan)
        if range_problem(name, found, path) is not None:
            return path, found
    return None


def check_meteorology(met: xr.Dataset, paths: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse daily ERA5 predictors with values beyond the plausible range.

    Parameters
    ----------
    met
        :func:`~fluxbridge.io.era5.open_era5` output: ``ta`` [degC], ``sw_in`` [W m-2],
        ``precip`` [mm d-1].
    paths
        The ERA5 files it was read from; the error names the one at fault.

    Raises
    ------
    InputError
        Naming the file, the ERA5 variable, the range found and the range expected.
    """
    files = [Path(p) for p in paths]
    names = [n for n in ERA5_SOURCES if n in met]
    for name, found in zip(names, value_range(*(met[n] for n in names)), strict=True):
        if range_problem(name, found, None) is None:
            continue
        where: str | Path = files[0] if len(files) == 1 else \
            f"{files[0]} (+{len(files) - 1} files)"
        culprit = _era5_culprit(met, name, files) if len(files) > 1 else None
        if culprit is not None:
            where, found = culprit
        raise range_problem(name, found, where, source=ERA5_SOURCES[name])


def check_site_values(sites: xr.Dataset) -> None:
    """Refuse sites whose NEE or meteorology lie beyond the plausible range.

    Parameters
    ----------
    sites
        Canonical sites dataset with ``attrs["source_files"]`` (one file per site, in order).

    Raises
    ------
    InputError
        Naming the site's file, the variable, the range found and the range expected.
    """
    files = str(sites.attrs.get("source_files", "")).split("\n")
    sources = {"nee": str(sites.attrs.get("nee_variable", "nee"))}
    for name in ("nee", "ta", "sw_in", "precip"):
        if name not in sites:
            continue
        values = sites[name].transpose("site", ...).values
        finite = np.isfinite(values)
        lo = np.where(finite, values, np.inf).min(axis=1)
        hi = np.where(finite, values, -np.inf).max(axis=1)
        for i in np.flatnonzero(finite.any(axis=1)):
            where = files[i] if i < len(files) and files[i] else str(sites["site"].values[i])
            problem = range_problem(name, (float(lo[i]), float(hi[i])), where,
                                    source=sources.get(name))
            if problem is not None:
                raise problem


def check_inversion_flux(flux: xr.DataArray, where: str, source: str) -> None:
    """Refuse an inversion member whose flux density [g m-2 d-1] is implausibly large, or so
    small everywhere that its units must be wrong.

    Raises
    ------
    InputError
        Naming the file, the variable, the range found and the range expected.
    """
    found = value_range(flux)[0]
    problem = range_problem("nee", found, where, source=source)
    if problem is not None:
        raise problem
    if np.all(np.isfinite(found)) and max(abs(found[0]), abs(found[1])) < MIN_FLUX:
        raise InputError(f"values {found[0]:.4g}..{found[1]:.4g} g m-2 d-1 found; wrong "
                         "units?", path=where, variable=source,
                         expected=f"a land flux reaching at least {MIN_FLUX:g} g m-2 d-1 "
                         "somewhere (within -50..50 g m-2 d-1)")


def check_regional_totals(total: xr.DataArray, bound: xr.DataArray, where: str,
                          source: str) -> None:
    """Refuse regional monthly totals [Tg month-1] beyond ``bound`` [Tg month-1] (the
    largest plausible total), e.g. from a cell area in the wrong units.

    Raises
    ------
    InputError
        Naming the file, the variable, the largest ratio found and the bound.
    """
    ratio = float((abs(total) / bound).max(skipna=True).fillna(0.0))
    if ratio > 1.0:
        raise InputError(
            f"regional totals up to {ratio:.3g} times the largest plausible found; wrong "
            "units of the flux or of the cell area?", path=where, variable=source,
            expected="regional totals within 2 × region area × 50 g m-2 d-1 × days")
