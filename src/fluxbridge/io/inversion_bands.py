"""Pre-aggregated real inversion products read as latitude-band targets.

The Global Carbon Budget 2018 regional tables (``North_Land`` ..., PgC per month, 360_day
calendar) and zonal integrals (``SFCO2_LND``, PgC yr-1 per degree of latitude) integrated over
the bands North (> 30N), Tropical (30S-30N) and South (< 30S): regions 1..3 of
``fluxbridge.regions.builtin_regions("latitude_bands")``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.errors import InputError
from fluxbridge.io.inversions import month_starts, open_flux_file
from fluxbridge.io.targets import TARGET_UNITS, ensemble_targets
from fluxbridge.regions import LATITUDE_BAND_NAMES

BAND_LIMITS: dict[int, tuple[float, float]] = {1: (30.0, 90.0), 2: (-30.0, 30.0),
                                               3: (-90.0, -30.0)}
"""Latitude limits [degree] of the bands of :data:`fluxbridge.regions.LATITUDE_BAND_NAMES`."""

_PG_PER_MONTH = ("PgC month-1", "Pg month-1", "PgC/month", "Pg C month-1", "PgC mon-1")
_PG_PER_YEAR_PER_DEGREE = ("PgCyr-1degree-1", "Pgyr-1degree-1", "PgC/yr/degree",
                           "PgCyr-1deg-1")


def _band_coords(values: np.ndarray) -> dict[str, object]:
    ids = np.array(sorted(LATITUDE_BAND_NAMES))
    return {"region": ids,
            "region_name": ("region", [LATITUDE_BAND_NAMES[i] for i in ids])}


def _member_name(path: Path, ds: xr.Dataset, suffixes: tuple[str, ...]) -> str:
    name = str(ds.attrs.get("inversion_name") or path.stem)
    for suffix in suffixes:
        name = name.removesuffix(suffix)
    return name


def read_gcb_regional_file(path: str | os.PathLike[str],
                           units: str = "PgC month-1") -> xr.DataArray:
    """One Global Carbon Budget 2018 regional inversion table as latitude-band NBE.

    The files hold ``{Earth,North,Tropical,South}_{Land,Ocean}`` (time) monthly totals without
    fossil emissions, negative = uptake, on a 360_day calendar, and no units attribute: they are
    PgC per month (Le Quéré et al. 2018). The land bands North (> 30N), Tropical (30S-30N) and
    South (< 30S) become regions 1..3.

    Parameters
    ----------
    path
        ``{MODEL}_month.nc``.
    units
        Units assumed where a variable has no ``units`` attribute; a variable that has one must
        say PgC per month.

    Returns
    -------
    xr.DataArray
        ``nbe`` (region, time) [Tg month-1], time = month start; attribute ``member``.
    """
    path = Path(path)
    ds = open_flux_file(path)
    where = str(path)
    if "time" not in ds.dims:
        raise InputError(f"dimensions {tuple(ds.dims)}", path=path, variable="time",
                         expected="a time dimension")
    times = month_starts(ds["time"], where)
    series = []
    for rid in sorted(LATITUDE_BAND_NAMES):
        var = f"{LATITUDE_BAND_NAMES[rid]}_Land"
        if var not in ds:
            raise InputError("variable missing", path=path, variable=var,
                             expected="North_Land, Tropical_Land and South_Land (GCB regional)")
        unit = ds[var].attrs.get("units", units)
        if unit not in _PG_PER_MONTH:
            raise InputError(f"units {unit!r}", path=path, variable=var,
                             expected=f"PgC per month ({', '.join(_PG_PER_MONTH)})")
        series.append(ds[var].values.astype(float) * G_PER_PG / G_PER_TG)
    if all(np.all(np.isnan(v)) for v in series):
        raise InputError("every land value is missing", path=path, variable="North_Land",
                         expected="some finite monthly totals")
    out = xr.DataArray(np.stack(series), dims=("region", "time"),
                       coords={"time": times.values, **_band_coords(times.values)}, name="nbe")
    out.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                 "per month, positive to the atmosphere", "source": where,
                 "member": _member_name(path, ds, ("_month",)), "style": "GCB2018 regional",
                 "source_units": units}
    return out


def read_gcb_regional(
    paths: Sequence[str | os.PathLike[str]],
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
) -> xr.Dataset:
    """The Global Carbon Budget 2018 regional inversions as latitude-band targets.

    Regions 1..3 (North > 30N, Tropical 30S-30N, South < 30S) match
    ``fluxbridge.regions.builtin_regions("latitude_bands")``.

    Parameters
    ----------
    paths
        One ``{MODEL}_month.nc`` per member.
    corrections
        Correction table with region names North, Tropical, South (see
        :func:`read_corrections`); None = no correction.
    min_members
        Region-months with fewer finite members get NaN spread.

    Returns
    -------
    xr.Dataset
        Canonical targets [Tg month-1] (see :func:`ensemble_targets`).
    """
    return _band_targets(lambda p: read_gcb_regional_file(p), paths, corrections, min_members)


def _latitude_edges(lat: np.ndarray, where: str, name: str) -> np.ndarray:
    """Cell edges [degree] of 1-D latitude centres (or nodes at the poles), clipped to ±90."""
    if lat.size < 2 or np.any(~np.isfinite(lat)) or np.any(np.abs(lat) > 90):
        raise InputError("latitudes out of range or too few", path=where, variable=name,
                         expected="at least two finite latitudes in [-90, 90]")
    if not np.all(np.diff(lat) > 0):
        raise InputError("latitudes not strictly increasing", path=where, variable=name,
                         expected="ascending unique latitudes")
    mid = (lat[1:] + lat[:-1]) / 2
    edges = np.concatenate([[lat[0] - (mid[0] - lat[0])], mid, [lat[-1] + (lat[-1] - mid[-1])]])
    return np.clip(edges, -90.0, 90.0)


def band_weights(lat: np.ndarray, where: str = "", name: str = "lat") -> xr.DataArray:
    """Degrees of latitude each cell shares with each band (region, lat) [degree].

    A flux density per degree of latitude summed with these weights integrates over the band;
    a cell straddling a band limit is split by its overlap.
    """
    lat = np.asarray(lat, dtype=float)
    edges = _latitude_edges(lat, where, name)
    lo, hi = edges[:-1], edges[1:]
    rows = []
    for rid in sorted(BAND_LIMITS):
        south, north = BAND_LIMITS[rid]
        rows.append(np.clip(np.minimum(hi, north) - np.maximum(lo, south), 0.0, None))
    return xr.DataArray(np.stack(rows), dims=("region", "lat"),
                        coords={"lat": lat, **_band_coords(lat)},
                        attrs={"units": "degree", "long_name": "latitude overlap with band"})


def read_zonal_inversion(path: str | os.PathLike[str],
                         variable: str = "SFCO2_LND") -> xr.DataArray:
    """One inversion's zonal-mean flux integrated over the latitude bands.

    Parameters
    ----------
    path
        ``{MODEL}_fluxes_za_ts_monthly.nc``: ``variable`` (time, lat) in PgC yr-1 per degree of
        latitude, monthly means.
    variable
        ``SFCO2_LND`` (land biosphere including fire, the NBE), or ``SFCO2_OCN``...

    Returns
    -------
    xr.DataArray
        ``nbe`` (region, time) [Tg month-1]: the band integral [PgC yr-1] times the days of the
        month over the days of the year.
    """
    path = Path(path)
    ds = open_flux_file(path)
    where = str(path)
    if variable not in ds:
        raise InputError("variable missing", path=path, variable=variable,
                         expected="a zonal flux such as SFCO2_LND (time, lat)")
    da = ds[variable]
    lat_name = next((d for d in da.dims if d.lower().startswith("lat")), None)
    if "time" not in da.dims or lat_name is None or da.ndim != 2:
        raise InputError(f"dimensions {da.dims}", path=path, variable=variable,
                         expected="(time, lat)")
    units = da.attrs.get("units")
    if units is None:
        raise InputError("no units attribute", path=path, variable=variable,
                         expected="'Pg C yr-1 degree-1'")
    if re.sub(r"[\s$^{}]", "", units) not in _PG_PER_YEAR_PER_DEGREE:
        raise InputError(f"units {units!r}", path=path, variable=variable,
                         expected="PgC per year per degree of latitude ('Pg C yr-1 degree-1')")
    times = month_starts(ds["time"], where)
    weights = band_weights(ds[lat_name].values, where, lat_name)
    values = da.transpose("time", lat_name).values.astype(float)
    if np.all(np.isnan(values)):
        raise InputError("every value is missing", path=path, variable=variable,
                         expected="some finite fluxes")
    pg_yr = np.nansum(values[:, None, :] * weights.values[None], axis=2)  # (time, region)
    pg_yr[np.all(np.isnan(values), axis=1)] = np.nan
    days_year = np.where(times.is_leap_year, 366.0, 365.0)
    tg_month = pg_yr * (G_PER_PG / G_PER_TG) * (np.asarray(times.days_in_month) / days_year
                                                )[:, None]
    out = xr.DataArray(tg_month.T, dims=("region", "time"),
                       coords={"time": times.values, **_band_coords(times.values)}, name="nbe")
    out.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                 "per month, positive to the atmosphere", "source": where,
                 "member": _member_name(path, ds, ("_fluxes_za_ts_monthly",)),
                 "style": "zonal integral", "source_variable": variable,
                 "source_units": units}
    return out


def read_zonal_inversions(paths: Sequence[str | os.PathLike[str]], variable: str = "SFCO2_LND",
                          corrections: str | os.PathLike[str] | None = None,
                          min_members: int = 2) -> xr.Dataset:
    """Zonal-mean inversion fluxes as latitude-band targets (an ensemble of members).

    Parameters
    ----------
    paths
        One ``{MODEL}_fluxes_za_ts_monthly.nc`` per member.
    variable
        Zonal flux variable (PgC yr-1 per degree of latitude).
    corrections
        Correction table with region names North, Tropical, South; None = no correction.
    min_members
        Region-months with fewer finite members get NaN spread.

    Returns
    -------
    xr.Dataset
        Canonical targets [Tg month-1] (see :func:`ensemble_targets`); regions 1..3 match
        ``fluxbridge.regions.builtin_regions("latitude_bands")``.
    """
    return _band_targets(lambda p: read_zonal_inversion(p, variable), paths, corrections,
                         min_members)


def _band_targets(read: Callable[[str | os.PathLike[str]], xr.DataArray],
                  paths: Sequence[str | os.PathLike[str]],
                  corrections: str | os.PathLike[str] | None, min_members: int) -> xr.Dataset:
    """Each member read by ``read``, assembled into latitude-band targets [Tg month-1]."""
    if not paths:
        raise InputError("no inversion files given", variable="inversions")
    members = [read(p) for p in paths]
    out = ensemble_targets(members, dict(LATITUDE_BAND_NAMES), corrections, min_members, paths)
    out.attrs["region_set"] = "latitude_bands"
    return out
