"""Atmospheric inversion fluxes as an ensemble of regional monthly targets.

Gridded land flux files as the Global Carbon Budget distributes them
(``land_flux_only_fossil_cement_adjusted``, PgC m-2 yr-1), CarbonTracker flux files
(``bio_flux_opt`` + ``fire_flux_imp``, mol m-2 s-1), CAMS (``flux_apos_bio``, kgC m-2 month-1)
and Jena CarboScope (``co2flux_land``, PgC yr-1 per cell), each on its own grid; and two
pre-aggregated real products read as latitude-band targets: the Global Carbon Budget 2018
regional tables (``North_Land`` ..., PgC per month, 360_day calendar) and zonal integrals
(``SFCO2_LND``, PgC yr-1 per degree of latitude) integrated over the bands. Inversions
estimate net biome exchange (NBE): fossil removed, fire and lateral imprints kept. Regional
totals per month go through the region mask; correction terms (fire, rivers, trade) from a table
turn NBE into NEE comparable with towers, and every correction is recorded in the attributes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG, MOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area, normalise_longitude
from fluxbridge.regions import LATITUDE_BAND_NAMES, region_names

log = logging.getLogger(__name__)

# variables whose sum is the land NBE, by product style
STYLES: dict[str, tuple[str, ...]] = {
    "GCB": ("land_flux_only_fossil_cement_adjusted",),
    "CarbonTracker": ("bio_flux_opt", "fire_flux_imp"),
    "CarbonTracker Europe": ("biosphere_flux_optimized", "fire_flux_imposed"),
    "CAMS": ("flux_apos_bio",),
    "Jena CarboScope": ("co2flux_land",),
}

TARGET_UNITS = "Tg month-1"


def _month_starts(time: xr.DataArray, where: str) -> pd.DatetimeIndex:
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


def _open(path: Path) -> xr.Dataset:
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
        ``nbe`` (region, time) [Tg month-1], positive to the atmosphere; attribute
        ``member`` (the inversion's name).
    """
    path = Path(path)
    ds = _open(path)
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
    times = _month_starts(ds["time"], where)
    area = (ds["cell_area"] if "cell_area" in ds else ds["area"] if "area" in ds
            and ds["area"].dims == ("lat", "lon") else cell_area(lat, lon))
    flux = sum(flux_to_gc_m2_d(ds[n], times, area, where) for n in STYLES[style])
    mask = _mask_on(lat, lon, regions)
    names = region_names(regions)
    ids = np.array(sorted(names))
    onehot = (mask == xr.DataArray(ids, dims="region")).astype(float)
    days = xr.DataArray(np.asarray(times.days_in_month, dtype=float), dims="time")
    total = xr.dot(flux.fillna(0.0) * area, onehot, dim=("lat", "lon")) * days / G_PER_TG
    allnan = flux.isnull().all(("lat", "lon"))
    total = total.where(~allnan)  # an all-missing period is unknown, not zero
    total = total.assign_coords(time=times.values, region=ids,
                                region_name=("region", [names[i] for i in ids]))
    name = str(ds.attrs.get("inversion_name") or path.stem)
    total.name = "nbe"
    total.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                   "per month, positive to the atmosphere", "member": name, "style": style,
                   "source": where}
    return total.transpose("region", "time")


def read_corrections(path: str | os.PathLike[str],
                     regions: xr.Dataset | dict[int, str]) -> xr.Dataset:
    """Per-region monthly correction terms from a table.

    The table has columns ``region`` (name as in the region mask), ``time`` (YYYY-MM) and one
    column per term ending in ``_tgc`` [Tg month-1]; each term is part of NBE and not of NEE:
    ``NBE = NEE + Σ terms``.

    Parameters
    ----------
    path
        CSV table.
    regions
        Canonical regions dataset, or its region id → name mapping.

    Returns
    -------
    xr.Dataset
        One variable per term (region, time) [Tg month-1].
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("corrections table not found", path=path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot parse the table: {exc}".replace("\n", " "), path=path,
                         expected="a CSV with columns region, time, <term>_tgc") from None
    for col in ("region", "time"):
        if col not in df:
            raise InputError("column missing", path=path, variable=col,
                             expected="columns region, time and <term>_tgc")
    terms = [c for c in df.columns if c.endswith("_tgc")]
    if not terms:
        raise InputError("no correction column", path=path, variable="<term>_tgc",
                         expected="columns like fire_tgc, river_tgc, trade_tgc [TgC/month]")
    names = regions if isinstance(regions, dict) else region_names(regions)
    ids = {v: k for k, v in names.items()}
    unknown = sorted(set(df["region"].astype(str)) - set(ids))
    if unknown:
        raise InputError(f"unknown region names {unknown[:5]}", path=path, variable="region",
                         expected=f"names of the region mask: {sorted(ids)}")
    try:
        time = pd.to_datetime(df["time"].astype(str), format="%Y-%m")
    except ValueError as exc:
        raise InputError(f"invalid month: {exc}", path=path, variable="time",
                         expected="YYYY-MM") from None
    df = df.assign(region=df["region"].astype(str).map(ids), time=time)
    if df.duplicated(["region", "time"]).any():
        raise InputError("a (region, month) appears twice", path=path, variable="region/time",
                         expected="one row per region and month")
    out = df.set_index(["region", "time"])[terms].astype(float).to_xarray()
    out = out.assign_coords(time=out["time"].values.astype("datetime64[ns]"))
    for t in terms:
        out[t].attrs = {"units": TARGET_UNITS, "long_name": f"{t[:-4]} term of NBE",
                        "source": str(path)}
    return out


def _member_names(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        return [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def ensemble_targets(
    members: Sequence[xr.DataArray],
    names: dict[int, str],
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
    source_files: Sequence[str | os.PathLike[str]] = (),
) -> xr.Dataset:
    """Assemble per-member regional NBE series into the canonical targets dataset.

    Parameters
    ----------
    members
        ``nbe`` (region, time) [Tg month-1] of each member, attribute ``member`` (its name).
    names
        Region id → name.
    corrections
        Table of correction terms (see :func:`read_corrections`); None = no correction (NBE
        compared as it is, recorded so in the attributes).
    min_members
        Region-months with fewer finite members get NaN spread.
    source_files
        Recorded in the attributes.

    Returns
    -------
    xr.Dataset
        ``nbe`` (member, region, time), ``correction`` (region, time), ``nee`` (member, region,
        time), ``nee_mean`` and ``nee_spread`` (region, time), all [Tg month-1]; attribute
        ``corrections`` (JSON list of the terms removed, with sign, source and global size).
    """
    labels = _member_names([str(m.attrs.get("member", i)) for i, m in enumerate(members)])
    nbe = xr.concat(list(members), dim=xr.DataArray(np.array(labels, dtype=str), dims="member",
                                                     name="member"), join="outer")
    nbe.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                 "per month, positive to the atmosphere"}
    correction = xr.zeros_like(nbe.isel(member=0, drop=True))
    record: list[dict[str, object]] = []
    if corrections is not None:
        terms = read_corrections(corrections, names)
        aligned = terms.reindex(region=nbe["region"], time=nbe["time"])
        for term in terms.data_vars:
            values = aligned[term]
            covered = float(values.notnull().mean())
            if covered < 1.0:
                log.warning("correction %s covers %.0f%% of region-months; the rest is taken "
                            "as zero", term, 100 * covered)
            correction = correction + values.fillna(0.0)
            years = nbe.sizes["time"] / 12
            record.append({"term": term[:-4], "sign": -1, "source": str(corrections),
                           "global_pgc_yr": round(float(values.sum()) / 1000 / years, 4),
                           "coverage": round(covered, 4)})
    else:
        record.append({"term": "none", "note": "NBE used as NEE without correction"})
    nee = nbe - correction
    finite = nee.notnull().sum("member")
    mean = nee.mean("member", skipna=True).where(finite >= 1)
    spread = nee.std("member", ddof=1, skipna=True).where(finite >= min_members)
    dropped = [n for n in labels if bool(nbe.sel(member=n).isnull().all())]
    if dropped:
        log.warning("inversion member(s) without any value: %s", dropped)
    out = xr.Dataset({
        "nbe": nbe,
        "correction": correction.assign_attrs(units=TARGET_UNITS, long_name="sum of the "
                                              "correction terms removed from NBE"),
        "nee": nee.assign_attrs(units=TARGET_UNITS, long_name="corrected inversion NEE"),
        "nee_mean": mean.assign_attrs(units=TARGET_UNITS, long_name="ensemble mean NEE"),
        "nee_spread": spread.assign_attrs(units=TARGET_UNITS, long_name="ensemble spread "
                                          "(standard deviation across members) of NEE"),
    })
    out["time"].attrs.update(long_name="start of the month")
    out.attrs = {"corrections": json.dumps(record), "members": " ".join(labels),
                 "members_all_missing": " ".join(dropped),
                 "sign_convention": "positive to the atmosphere",
                 "source_files": "\n".join(str(p) for p in source_files)}
    return out


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


# ---- pre-aggregated real products read as latitude-band targets -------------------------------

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
    ds = _open(path)
    where = str(path)
    if "time" not in ds.dims:
        raise InputError(f"dimensions {tuple(ds.dims)}", path=path, variable="time",
                         expected="a time dimension")
    times = _month_starts(ds["time"], where)
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
    if not paths:
        raise InputError("no inversion files given", variable="inversions")
    members = [read_gcb_regional_file(p) for p in paths]
    out = ensemble_targets(members, dict(LATITUDE_BAND_NAMES), corrections, min_members, paths)
    out.attrs["region_set"] = "latitude_bands"
    return out


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
    ds = _open(path)
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
    times = _month_starts(ds["time"], where)
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


def read_zonal_inversions(
    paths: Sequence[str | os.PathLike[str]],
    variable: str = "SFCO2_LND",
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
) -> xr.Dataset:
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
    if not paths:
        raise InputError("no inversion files given", variable="inversions")
    members = [read_zonal_inversion(p, variable) for p in paths]
    out = ensemble_targets(members, dict(LATITUDE_BAND_NAMES), corrections, min_members, paths)
    out.attrs["region_set"] = "latitude_bands"
    return out
