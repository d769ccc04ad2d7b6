"""Atmospheric inversion fluxes as an ensemble of regional monthly targets.

Gridded land flux files as the Global Carbon Budget distributes them
(``land_flux_only_fossil_cement_adjusted``, PgC m-2 yr-1), CarbonTracker flux files
(``bio_flux_opt`` + ``fire_flux_imp``, mol m-2 s-1), CAMS (``flux_apos_bio``, kgC m-2 month-1)
and Jena CarboScope (``co2flux_land``, PgC yr-1 per cell), each on its own grid. Inversions
estimate net biome exchange (NBE): fossil removed, fire and lateral imprints kept. Regional
totals per month go through the region mask; correction terms (fire, rivers, trade) from a table
turn NBE into NEE comparable with towers, and every correction is recorded in the attributes.
"""

from __future__ import annotations

import json
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
from fluxbridge.regions import region_names

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
    return pd.DatetimeIndex(t.to_period("M").to_timestamp()).as_unit("ns")


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


def read_corrections(path: str | os.PathLike[str], regions: xr.Dataset) -> xr.Dataset:
    """Per-region monthly correction terms from a table.

    The table has columns ``region`` (name as in the region mask), ``time`` (YYYY-MM) and one
    column per term ending in ``_tgc`` [Tg month-1]; each term is part of NBE and not of NEE:
    ``NBE = NEE + Σ terms``.

    Returns
    -------
    xr.Dataset
        One variable per term (region, time) [Tg month-1].
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("corrections table not found", path=path)
    df = pd.read_csv(path)
    for col in ("region", "time"):
        if col not in df:
            raise InputError("column missing", path=path, variable=col,
                             expected="columns region, time and <term>_tgc")
    terms = [c for c in df.columns if c.endswith("_tgc")]
    if not terms:
        raise InputError("no correction column", path=path, variable="<term>_tgc",
                         expected="columns like fire_tgc, river_tgc, trade_tgc [TgC/month]")
    names = region_names(regions)
    ids = {v: k for k, v in names.items()}
    unknown = sorted(set(df["region"]) - set(ids))
    if unknown:
        raise InputError(f"unknown region names {unknown[:5]}", path=path, variable="region",
                         expected=f"names of the region mask: {sorted(ids)}")
    df = df.assign(region=df["region"].map(ids),
                   time=pd.to_datetime(df["time"], format="%Y-%m"))
    out = df.set_index(["region", "time"])[terms].to_xarray()
    for t in terms:
        out[t].attrs = {"units": TARGET_UNITS, "long_name": f"{t[:-4]} term of NBE",
                        "source": str(path)}
    return out


def read_inversions(
    paths: Sequence[str | os.PathLike[str]],
    regions: xr.Dataset,
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
) -> xr.Dataset:
    """An inversion ensemble as the canonical targets dataset.

    Parameters
    ----------
    paths
        One gridded flux file per member.
    regions
        Canonical regions dataset.
    corrections
        Table of correction terms (see :func:`read_corrections`); None = no correction (NBE
        compared as it is, recorded so).
    min_members
        Region-months with fewer finite members get NaN mean and spread.

    Returns
    -------
    xr.Dataset
        ``nbe`` (member, region, time), ``correction`` (region, time), ``nee`` (member, region,
        time), ``nee_mean`` and ``nee_spread`` (region, time), all [Tg month-1]; attribute
        ``corrections`` (JSON list of the terms removed, with sign, source and global size).
    """
    if not paths:
        raise InputError("no inversion files given", variable="inversions")
    members = [read_inversion(p, regions) for p in paths]
    names = [m.attrs["member"] for m in members]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    nbe = xr.concat(members, dim=xr.DataArray(np.array(names, dtype=str), dims="member",
                                               name="member"), join="outer")
    nbe.attrs = {k: v for k, v in members[0].attrs.items() if k in ("units", "long_name")}
    correction = xr.zeros_like(nbe.isel(member=0, drop=True))
    record: list[dict[str, object]] = []
    if corrections is not None:
        terms = read_corrections(corrections, regions)
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
    dropped = [n for n in names if bool(nbe.sel(member=n).isnull().all())]
    out = xr.Dataset({
        "nbe": nbe,
        "correction": correction.assign_attrs(units=TARGET_UNITS, long_name="sum of the "
                                              "correction terms removed from NBE"),
        "nee": nee.assign_attrs(units=TARGET_UNITS, long_name="corrected inversion NEE"),
        "nee_mean": mean.assign_attrs(units=TARGET_UNITS, long_name="ensemble mean NEE"),
        "nee_spread": spread.assign_attrs(units=TARGET_UNITS, long_name="ensemble spread "
                                          "(standard deviation across members) of NEE"),
    })
    out.attrs = {"corrections": json.dumps(record), "members": " ".join(names),
                 "members_all_missing": " ".join(dropped),
                 "sign_convention": "positive to the atmosphere",
                 "source_files": "\n".join(str(p) for p in paths)}
    return out
