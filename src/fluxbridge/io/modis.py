"""MODIS products aggregated to a regular grid (CMG-like NetCDF), and point extractions.

Gridded: MOD13 vegetation indices (NDVI, EVI, NIR reflectance; SummaryQA), MOD11 land surface
temperature (LST_Day/Night; QC); land cover is read by :mod:`fluxbridge.io.land_cover`. Scale
factors and fill values
are honoured in both conventions: CF (``value = raw × scale_factor + add_offset``) and the MODIS
HDF one (``value = (raw − add_offset) / scale_factor``, recognised by a scale factor ≥ 1 on
reflectance-like bands). Composites are gap-filled in time and interpolated to daily values;
optionally the mean seasonal cycle replaces them (FLUXCOM RS+METEO).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, spatial_dim, to_canonical_grid
from fluxbridge.io.land_cover import LAND_COVER_NAMES
from fluxbridge.io.tables import read_csv_table
from fluxbridge.schema import check_time_axis
from fluxbridge.vocabulary import attrs as var_attrs

log = logging.getLogger(__name__)

# source name -> canonical name, for every spelling of the gridded products
BANDS: dict[str, str] = {
    "NDVI": "ndvi", "CMG_0.05_Deg_16_days_NDVI": "ndvi",
    "EVI": "evi", "CMG_0.05_Deg_16_days_EVI": "evi",
    "NIR_reflectance": "nir", "CMG_0.05_Deg_16_days_NIR_reflectance": "nir",
    "sur_refl_b02": "nir", "Nadir_Reflectance_Band2": "nir",
    "LST_Day_CMG": "lst_day", "LST_Day_1km": "lst_day",
    "LST_Night_CMG": "lst_night", "LST_Night_1km": "lst_night",
    "Fpar_500m": "fpar", "Lai_500m": "lai",
}
QA_BANDS = ("SummaryQA", "CMG_0.05_Deg_16_days_pixel_reliability")
_UNITS = {"ndvi": "1", "evi": "1", "nir": "1", "lst_day": "K", "lst_night": "K", "fpar": "1",
          "lai": "m2 m-2"}


def decode_band(raw: xr.DataArray, where: str) -> xr.DataArray:
    """Physical values of a packed MODIS band: fill and valid range masked, scale applied."""
    a = raw.attrs
    enc = raw.encoding
    fill = a.get("_FillValue", enc.get("_FillValue"))
    scale = float(a.get("scale_factor", enc.get("scale_factor", 1.0)))
    offset = float(a.get("add_offset", enc.get("add_offset", 0.0)))
    values = raw.astype("float32")
    mask = values.notnull()
    if fill is not None:
        mask &= raw != fill
    valid = a.get("valid_range")
    if valid is not None:
        lo, hi = np.asarray(valid, dtype=float)[:2]
        mask &= (raw >= lo) & (raw <= hi)
    if scale >= 1.0 and raw.name in BANDS and BANDS[raw.name] in ("ndvi", "evi", "nir"):
        phys = (values - offset) / scale  # MODIS HDF convention
    else:
        phys = values * scale + offset
    if scale == 1.0 and offset == 0.0 and np.issubdtype(raw.dtype, np.integer):
        raise InputError("packed integer band without scale_factor", path=where,
                         variable=str(raw.name), expected="a scale_factor attribute")
    return phys.where(mask)


def _open_raw(path: Path) -> xr.Dataset:
    if not path.is_file():
        raise InputError("MODIS file not found", path=path)
    try:
        return xr.open_dataset(path, mask_and_scale=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "), path=path) from None


def read_composites(path: Path, max_qa: int) -> xr.Dataset:
    """One file of MODIS composites in canonical names, on the canonical grid, QA applied."""
    ds = xr.decode_cf(_open_raw(path), mask_and_scale=False)
    bands = {}
    qa_name = next((q for q in QA_BANDS if q in ds), None)
    qa = ds[qa_name] if qa_name else None
    for src, canon in BANDS.items():
        if src not in ds:
            continue
        da = decode_band(ds[src], str(path))
        if qa is not None and canon in ("ndvi", "evi", "nir"):
            da = da.where(qa <= max_qa)
        bands[canon] = da
    if not bands:
        raise InputError("no MODIS band found", path=path, variable="bands",
                         expected=f"one of {sorted(set(BANDS))}")
    out = xr.Dataset(bands)
    check_time_axis(out, str(path), dims="composites along 'time'")
    _refuse_empty_bands(out, ds, path, max_qa)
    return to_canonical_grid(out, lat=spatial_dim(out, "lat"), lon=spatial_dim(out, "lon"))


def _refuse_empty_bands(bands: xr.Dataset, raw: xr.Dataset, path: Path, max_qa: int) -> None:
    """Refuse a file in which a band has no usable value (an all-fill year, say): it would
    otherwise be filled silently from the neighbouring years."""
    times = pd.DatetimeIndex(bands["time"].values)
    for canon, da in bands.data_vars.items():
        if bool(da.notnull().any()):
            continue
        source = next(src for src, c in BANDS.items() if c == canon and src in raw)
        raise InputError(
            f"no usable value in its {times.size} composites {times.min():%Y-%m-%d}.."
            f"{times.max():%Y-%m-%d}: every value is fill, outside the valid range or of QA "
            f"above {max_qa}", path=path, variable=source,
            expected="some valid values in each file (an empty year is not filled from the "
            "other years)")


def _daily(parts: list[xr.Dataset], times: pd.DatetimeIndex | None) -> xr.Dataset:
    """Composites of one product joined in time, gaps filled, interpolated to daily values."""
    try:
        ds = xr.concat(sorted(parts, key=lambda d: d["time"].values[0]), dim="time",
                       join="exact")
    except ValueError:
        raise InputError("composite files on different grids", variable="lat/lon",
                         expected="one grid for every composite file") from None
    if ds.indexes["time"].has_duplicates:
        raise InputError("composites overlap in time", variable="time",
                         expected="each composite date once")
    missing = {n: float(ds[n].isnull().mean()) for n in ds.data_vars}
    ds = ds.interpolate_na("time", method="linear").bfill("time").ffill("time")
    span = times if times is not None else pd.date_range(
        ds["time"].values[0], pd.Timestamp(ds["time"].values[-1]) + pd.Timedelta(days=15))
    daily = ds.interp(time=pd.DatetimeIndex(span), method="linear")
    daily = daily.bfill("time").ffill("time")
    for n in daily.data_vars:
        daily[n].attrs["gap_filled_fraction"] = missing[n]
    return daily


def open_modis(
    paths: Sequence[str | os.PathLike[str]],
    times: pd.DatetimeIndex | None = None,
    grid: xr.Dataset | None = None,
    *,
    max_qa: int = 1,
    seasonal_cycle: bool = False,
) -> xr.Dataset:
    """Gridded MODIS composites as canonical daily remote-sensing predictors.

    Parameters
    ----------
    paths
        Composite files (MOD13-like and MOD11-like); land cover files are skipped here (see
        :func:`fluxbridge.io.land_cover.read_land_cover`).
    times
        Daily times to interpolate to; by default every day of the composites' span.
    grid
        Model grid to check against.
    max_qa
        Highest accepted SummaryQA (0 good, 1 marginal, 2 snow, 3 cloud).
    seasonal_cycle
        Replace values by each cell's mean seasonal cycle (by day of year).

    Returns
    -------
    xr.Dataset
        (time, lat, lon): ``ndvi``, ``evi``, ``nirv`` (NDVI × NIR) [1], ``lst_day``,
        ``lst_night`` [K] — whichever the files carry; gaps filled linearly in time, the ends
        with the nearest value. Attribute ``gap_filled_fraction`` per variable.
    """
    files = [Path(p) for p in paths]
    groups: dict[frozenset[str], list[xr.Dataset]] = {}
    for f in files:
        raw = _open_raw(f)
        if any(n in raw for n in LAND_COVER_NAMES):
            continue
        comp = read_composites(f, max_qa)
        if grid is not None:
            check_same_grid(comp, grid, what="MODIS grid and model grid", path=str(f))
        groups.setdefault(frozenset(comp.data_vars), []).append(comp)
    if not groups:
        raise InputError("no MODIS composite files", variable="remote_sensing",
                         expected="MOD13/MOD11-like NetCDF files")
    daily_parts = [_daily(parts, times) for parts in groups.values()]
    out = xr.merge(daily_parts, join="inner", compat="override")
    if "nir" in out:
        if "ndvi" in out:
            out["nirv"] = out["ndvi"] * out["nir"]
        out = out.drop_vars("nir")
    if seasonal_cycle:
        doy = out["time"].dt.dayofyear
        out = out.groupby(doy).mean("time").sel(dayofyear=doy).drop_vars("dayofyear")
    for name in out.data_vars:
        filled = out[name].attrs.get("gap_filled_fraction")
        out[name] = out[name].astype("float32")
        out[name].attrs = var_attrs(name) if name != "nir" else {"units": "1"}
        if filled is not None:
            out[name].attrs["gap_filled_fraction"] = filled
    out.attrs = {"source": " ".join(str(f) for f in files), "max_qa": max_qa,
                 "seasonal_cycle": int(seasonal_cycle)}
    if grid is not None:
        check_same_grid(out, grid, what="MODIS grid and model grid", path=str(files[0]))
        out = out.assign_coords(lat=grid["lat"].values, lon=grid["lon"].values)
    return out


_POINT_BANDS = {"fapar": "fpar", "fpar": "fpar", "lai": "lai", "ndvi": "ndvi", "evi": "evi"}
_POINT_RANGE = {"fpar": (0.0, 1.0), "lai": (0.0, 10.0), "ndvi": (-0.2, 1.0), "evi": (-0.2, 1.0)}
_SITE_IN_NAME = re.compile(r"(?<![A-Za-z])([A-Z]{2}-[A-Za-z0-9]{3})(?![A-Za-z0-9])")


def _point_frame(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    site = next((c for c in ("site", "Site", "sitename") if c in df), None)
    if site is not None:
        out["site"] = df[site].astype(str)
    else:
        found = _SITE_IN_NAME.search(path.name)
        out["site"] = found.group(1) if found else path.stem
    date = next((c for c in ("date", "Date", "calendar_date", "t") if c in df), None)
    if date is None:
        raise InputError("no date column", path=path, variable="date",
                         expected="a column date (YYYY-MM-DD)")
    try:
        out["date"] = pd.to_datetime(df[date].astype(str), format="%Y-%m-%d").astype(
            "datetime64[ns]")
    except ValueError as exc:
        raise InputError(f"invalid date: {exc}", path=path, variable=date,
                         expected="YYYY-MM-DD") from None
    return out


def _mod13_points(df: pd.DataFrame, path: Path, invalid: dict[str, int]) -> pd.DataFrame:
    """MOD13A1 point values (raw scaled integers) in physical units; counts the invalid ones."""
    out = _point_frame(df, path)
    for band in ("NDVI", "EVI"):
        raw = pd.to_numeric(df[band], errors="coerce")
        ok = (raw >= -2000) & (raw <= 10000)
        invalid[band.lower()] = int((~ok).sum())
        out[band.lower()] = (raw * 1e-4).where(ok)
    if "sur_refl_b02" in df:
        nir = pd.to_numeric(df["sur_refl_b02"], errors="coerce")
        ok = (nir >= 0) & (nir <= 10000)
        invalid["nirv"] = int((~ok).sum())
        out["nirv"] = out["ndvi"] * (nir * 1e-4).where(ok)
    if "SummaryQA" in df:
        out["qa"] = df["SummaryQA"]
    return out


def read_modis_points(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Point extractions of MODIS bands at sites, with scale, fill and valid range applied.

    Three table layouts are recognised:

    * MOD13A1 (phenofit / Earth Engine): ``site``, ``date``, raw ``NDVI``, ``EVI`` (× 0.0001,
      valid -2000..10000), ``sur_refl_b02`` (NIR, × 0.0001), ``SummaryQA``;
    * simple tables already in physical units, one band per file: ``date,fapar`` or
      ``date,lai`` (MODISTools exports of MOD15A2H; several pixels per date), the site taken
      from the file name;
    * MODISTools long tables: ``calendar_date``, ``band``, ``value``, ``scale``.

    Returns
    -------
    pd.DataFrame
        Columns ``site``, ``date`` and the bands present in canonical names (``ndvi``, ``evi``,
        ``nirv`` [1], ``fpar`` [1], ``lai`` [m2 m-2], ``qa``) or ``band``/``value``. Values
        outside the valid range become NaN; ``attrs["invalid"]`` counts them per band and
        ``attrs["units"]`` gives the units.
    """
    path = Path(path)
    df = read_csv_table(path, "file", expected="a CSV table of MODIS point values")
    if df.empty:
        raise InputError("table has a header but no rows", path=path)
    invalid: dict[str, int] = {}
    if {"NDVI", "EVI"} <= set(df.columns):
        out = _mod13_points(df, path, invalid)
    elif {"value", "calendar_date"} <= set(df.columns):
        out = _point_frame(df, path)
        scale = pd.to_numeric(df["scale"], errors="coerce").fillna(1.0) if "scale" in df \
            else 1.0
        value = pd.to_numeric(df["value"], errors="coerce")
        band = df["band"].astype(str) if "band" in df else pd.Series("", index=df.index)
        ok = ~(band.str.contains("Fpar|Lai") & (value >= 249)) & value.notna()
        invalid["value"] = int((~ok).sum())
        out["band"] = band
        out["value"] = (value * scale).where(ok)
    else:
        bands = [c for c in df.columns if c.lower() in _POINT_BANDS]
        if not bands:
            raise InputError(f"unknown MODIS point table (columns {list(df.columns)[:8]})",
                             path=path, variable="columns",
                             expected="NDVI/EVI (MOD13A1), date + fapar/lai, or "
                             "calendar_date/band/value (MODISTools)")
        out = _point_frame(df, path)
        for column in bands:
            name = _POINT_BANDS[column.lower()]
            raw = pd.to_numeric(df[column], errors="coerce")
            lo, hi = _POINT_RANGE[name]
            ok = (raw >= lo) & (raw <= hi)
            invalid[name] = int((~ok).sum())
            out[name] = raw.where(ok)
    values = [c for c in out.columns if c in _POINT_RANGE or c == "nirv"]
    if values and out[values].isna().all().all():
        raise InputError("every value is missing or invalid", path=path, variable=values[0],
                         expected="some valid MODIS values")
    if any(invalid.values()):
        log.info("%s: values outside the valid range set to NaN: %s", path, invalid)
    out.attrs = {"source": str(path), "invalid": invalid,
                 "units": {c: _UNITS.get(c, "1") for c in out.columns
                           if c in _UNITS or c == "nirv"}}
    return out
