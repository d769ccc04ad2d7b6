"""Gridded inversion flux files as one inversion's regional monthly totals, and their ensemble.

Land flux files as the Global Carbon Budget distributes them
(``land_flux_only_fossil_cement_adjusted``, PgC m-2 yr-1), CarbonTracker flux files
(``bio_flux_opt`` + ``fire_flux_imp``, mol m-2 s-1), CAMS (``flux_apos_bio``, kgC m-2 month-1)
and Jena CarboScope (``co2flux_land``, PgC yr-1 per cell), each on its own grid. Inversions
estimate net biome exchange (NBE): fossil removed, fire and lateral imprints kept. Regional
totals per month go through the region mask; :mod:`fluxbridge.io.targets` turns the members
into the corrected ensemble. Pre-aggregated products (latitude bands) are read by
:mod:`fluxbridge.io.inversion_bands`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG, MOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area, normalise_longitude
from fluxbridge.io.plausible import check_inversion_flux, check_regional_totals
from fluxbridge.io.targets import TARGET_UNITS, ensemble_targets
from fluxbridge.regions import region_names
from fluxbridge.vocabulary import VARIABLES

log = logging.getLogger(__name__)

# variables whose sum is the land NBE, by product style
STYLES: dict[str, tuple[str, ...]] = {
    "GCB": ("land_flux_only_fossil_cement_adjusted",),
    "CarbonTracker": ("bio_flux_opt", "fire_flux_imp"),
    "CarbonTracker Europe": ("biosphere_flux_optimized", "fire_flux_imposed"),
    "CAMS": ("flux_apos_bio",),
    "Jena CarboScope": ("co2flux_land",),
}

MAX_MISSING_AREA = 0.01
"""Largest fraction of a region's area [1] with missing flux (NaN) in a month whose total is
still given (coastal cells of another grid); above it the member's region-month is missing."""


def month_starts(time: xr.DataArray, where: str) -> pd.DatetimeIndex:
    """Month starts of a monthly time axis (any CF calendar); one record per month, in order."""
    values = time.values
    if np.issubdtype(values.dtype, np.datetime64):
        t = pd.DatetimeIndex(values)
    else:  # cftime objects (noleap, 360_day ...): keep year and month
        try:
            t = pd.DatetimeIndex([pd.Timestamp(int(v.year), int(v.month), 1) for v in values])
        except AttributeError:
            raise InputError("time axis is not decodable to dates", path=where,
                             variable="time", expected="a CF time axis") from None
    months = pd.DatetimeIndex(t.to_period("M").to_timestamp()).as_unit("ns")
    if months.has_duplicates:
        raise InputError(f"month {months[months.duplicated()][0]:%Y-%m} appears twice",
                         path=where, variable="time", expected="one record per month")
    if not months.is_monotonic_increasing:
        raise InputError("times are not in increasing order", path=where, variable="time",
                         expected="monthly records sorted in time")
    return months


def open_flux_file(path: Path) -> xr.Dataset:
    """An inversion NetCDF file, times decoded with cftime (any CF calendar)."""
    if not path.is_file():
        raise InputError("inversion file not found", path=path)
    try:
        return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    except ValueError as exc:
        msg = str(exc).replace("\n", " ")
        raise InputError(f"cannot decode the file: {msg}", path=path, variable="time",
                         expected="a CF calendar (standard, noleap, 360_day ...)") from None
    except OSError as exc:
        raise InputError(f"cannot open as NetCDF ({exc})", path=path) from None


def flux_to_gc_m2_d(da: xr.DataArray, time: pd.DatetimeIndex, area: xr.DataArray,
                    where: str) -> xr.DataArray:
    """A flux field in any unit real inversions use, as g m-2 d-1 of carbon per cell area.

    Recognised units: ``mol m-2 s-1``; ``PgC m-2 yr-1``; ``gC m-2 yr-1`` / ``g m-2 yr-1``;
    ``gC m-2 d-1``; ``kgC m-2 month-1`` (CAMS); ``kg m-2 s-1`` (of carbon); ``PgC yr-1`` and
    ``PgC/yr`` per cell (CarboScope).
    """
    units = da.attrs.get("units")
    if units is None:
        raise InputError("no units attribute", path=where, variable=str(da.name),
                         expected="units such as 'mol m-2 s-1' or 'PgC m-2 yr-1'")
    u = units.replace("**", "").replace("^", "").replace("/m2", " m-2").replace("/s", " s-1")
    u = " ".join(u.replace("gC", "g").replace("molCO2", "mol").split())
    days_year = xr.DataArray(np.where(time.is_leap_year, 366.0, 365.0), dims="time")
    days_month = xr.DataArray(np.asarray(time.days_in_month, dtype=float), dims="time")
    factors = {
        "mol m-2 s-1": MOL_M2_S_TO_GC_M2_D,
        "Pg m-2 yr-1": G_PER_PG / days_year,
        "Pg m-2 y-1": G_PER_PG / days_year,
        "g m-2 yr-1": 1.0 / days_year,
        "g m-2 y-1": 1.0 / days_year,
        "g m-2 d-1": 1.0,
        "g m-2 day-1": 1.0,
        "kg m-2 month-1": 1000.0 / days_month,
        "kg m-2 s-1": 1000.0 * 86400.0,
    }
    if u in factors:
        return da * factors[u]
    if u in ("Pg yr-1", "PgC/yr", "Pg/yr", "Pg y-1"):
        return da * G_PER_PG / area / days_year
    raise InputError(f"units {units!r}", path=where, variable=str(da.name),
                     expected=f"one of {sorted(factors)} or 'PgC yr-1' per cell")


def _mask_on(grid_lat: np.ndarray, grid_lon: np.ndarray, regions: xr.Dataset) -> xr.DataArray:
    """Region ids of a flux grid's cells: the region of the nearest model cell."""
    lat = xr.DataArray(grid_lat, dims="lat")
    lon = xr.DataArray(normalise_longitude(grid_lon), dims="lon")
    mask = regions["region"].sel(lat=lat, lon=lon, method="nearest")
    return mask.assign_coords(lat=grid_lat, lon=grid_lon)


def _largest_totals(regions: xr.Dataset, ids: np.ndarray, days: xr.DataArray
                    ) -> xr.DataArray:
    """Largest plausible monthly total of each region [Tg month-1]: its area on the model grid
    (every cell, coasts included) × twice the largest plausible flux density (slack for the
    inversion's own grid) × days."""
    onehot = regions["region"] == xr.DataArray(ids, dims="region")
    area = (regions["cell_area"] * onehot).sum(("lat", "lon"))
    return 2.0 * area * VARIABLES["nee"].valid_range[1] * days / G_PER_TG


def read_inversion(path: str | os.PathLike[str], regions: xr.Dataset) -> xr.DataArray:
    """One inversion's monthly regional totals of net biome exchange.

    Parameters
    ----------
    path
        Gridded monthly flux file of one member (any style of :data:`STYLES`).
    regions
        Canonical regions dataset; its mask is carried to the file's grid by nearest cell.

    Returns
    -------
    xr.DataArray
        ``nbe`` (region, time) [Tg month-1], positive to the atmosphere; NaN where more than
        :data:`MAX_MISSING_AREA` of the region has no flux that month; attribute ``member``
        (the inversion's name).

    Raises
    ------
    InputError
        For a flux beyond ±50 g m-2 d-1, below 0.001 g m-2 d-1 everywhere, or regional totals
        beyond region area × 50 g m-2 d-1 (wrong units).
    """
    path = Path(path)
    ds = open_flux_file(path)
    where = str(path)
    style = next((s for s, names in STYLES.items() if all(n in ds for n in names)), None)
    if style is None:
        raise InputError("no land flux variable", path=path, variable="land flux",
                         expected=f"one of {[v for vs in STYLES.values() for v in vs]}")
    lat_name = next((n for n in ("latitude", "lat") if n in ds.dims), None)
    lon_name = next((n for n in ("longitude", "lon") if n in ds.dims), None)
    time_name = next((n for n in ("time", "mtime") if n in ds.dims), None)
    if lat_name is None or lon_name is None or time_name is None:
        raise InputError(f"dimensions {tuple(ds.dims)}", path=path, variable="dims",
                         expected="(time, latitude, longitude)")
    ds = ds.rename({lat_name: "lat", lon_name: "lon", time_name: "time"})
    lat, lon = ds["lat"].values, ds["lon"].values
    if np.any(np.abs(lat) > 90) or np.any(lon < -180) or np.any(lon > 360):
        raise InputError("coordinates out of range", path=path, variable="lat/lon",
                         expected="latitude in [-90, 90], longitude in [-180, 360]")
    times = month_starts(ds["time"], where)
    area = (ds["cell_area"] if "cell_area" in ds else ds["area"] if "area" in ds
            and ds["area"].dims == ("lat", "lon") else cell_area(lat, lon))
    flux = sum(flux_to_gc_m2_d(ds[n], times, area, where) for n in STYLES[style])
    source = "+".join(STYLES[style])
    check_inversion_flux(flux, where, source)
    mask = _mask_on(lat, lon, regions)
    names = region_names(regions)
    ids = np.array(sorted(names))
    onehot = (mask == xr.DataArray(ids, dims="region")).astype(float)
    days = xr.DataArray(np.asarray(times.days_in_month, dtype=float), dims="time")
    total = xr.dot(flux.fillna(0.0) * area, onehot, dim=("lat", "lon")) * days / G_PER_TG
    region_area = xr.dot(area, onehot, dim=("lat", "lon"))
    missing_area = xr.dot(flux.isnull() * area, onehot, dim=("lat", "lon"))
    total = total.where(missing_area <= MAX_MISSING_AREA * region_area)  # unknown, not zero
    check_regional_totals(total, _largest_totals(regions, ids, days), where, source)
    total = total.assign_coords(time=times.values, region=ids,
                                region_name=("region", [names[i] for i in ids]))
    name = str(ds.attrs.get("inversion_name") or path.stem)
    total.name = "nbe"
    total.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                   "per month, positive to the atmosphere", "member": name, "style": style,
                   "source": where}
    return total.transpose("region", "time")


def read_inversions(
    paths: Sequence[str | os.PathLike[str]],
    regions: xr.Dataset,
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
) -> xr.Dataset:
    """A gridded inversion ensemble as the canonical targets dataset.

    Parameters
    ----------
    paths
        One gridded flux file per member.
    regions
        Canonical regions dataset.
    corrections
        Table of correction terms (see :func:`read_corrections`); None = no correction.
    min_members
        Region-months with fewer finite members get NaN spread.

    Returns
    -------
    xr.Dataset
        Canonical targets (see :func:`ensemble_targets`) [Tg month-1].
    """
    if not paths:
        raise InputError("no inversion files given", variable="inversions")
    members = [read_inversion(p, regions) for p in paths]
    return ensemble_targets(members, region_names(regions), corrections, min_members, paths)
