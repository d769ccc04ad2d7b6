"""What is this file, and can fluxbridge use it? (``fluxbridge inspect FILE``)

:func:`inspect_file` recognises every format the readers of :mod:`fluxbridge.io` know, reads the
file through the same reader the pipeline would use, and reports its format, resolution,
variables and units, period and coverage. A file the readers refuse is reported unusable with the
reader's one-line reason (which names the file, the variable and what was expected).
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.io.file_report import FileReport, finite_share, one_line, period
from fluxbridge.io.fluxnet import SITE_METEOROLOGY, read_site_file
from fluxbridge.io.fluxnet_csv import parse_file_name
from fluxbridge.io.inspect_gridded import (
    inspect_era5,
    inspect_land_cover,
    inspect_netcdf,
    inspect_vector,
)
from fluxbridge.io.land_cover import TIFF_SUFFIXES
from fluxbridge.io.modis import read_modis_points
from fluxbridge.io.plausible import check_site_values
from fluxbridge.io.sitemeta import read_site_table

log = logging.getLogger(__name__)

_NETCDF = (".nc", ".nc4", ".cdf", ".netcdf", ".h5", ".hdf5")
_TABLE = (".csv", ".txt", ".xlsx", ".xls")
_VECTOR = (".geojson", ".json", ".shp", ".gpkg")


def _inspect_site_file(path: Path, report: FileReport) -> None:
    ds = read_site_file(path, require_nee=False)
    named = parse_file_name(path)
    res = ds.attrs["time_step"]
    if res not in ("HH", "HR"):  # the valid ranges are of daily or longer means
        check_site_values(ds.assign_attrs(source_files=str(path)))
    fmt = {"HH": "%Y-%m-%d %H:%M", "HR": "%Y-%m-%d %H:%M", "MM": "%Y-%m", "YY": "%Y"}.get(
        res, "%Y-%m-%d")
    report.format = (f"FLUXNET-family site file ({ds.attrs.get('product', 'unknown')}, "
                     f"site {ds.attrs['site_id']})")
    report.resolution = res
    report.period = period(ds["time"].values, fmt)
    report.notes.append(f"{ds.sizes['time']} records")
    report.variables = {n: str(ds[n].attrs.get("units", "?")) + (
        f", from {ds[n].attrs['source_variable']}" if "source_variable" in ds[n].attrs else "")
        for n in ds.data_vars}
    report.coverage = {n: finite_share(ds[n].values) for n in ds.data_vars}
    years = pd.DatetimeIndex(ds["time"].values).year
    if named.first_year is not None and (years[0] != named.first_year
                                         or years[-1] != named.last_year):
        report.notes.append(f"the name says {named.first_year}-{named.last_year} but the "
                            f"records cover {years[0]}-{years[-1]} (the content is trusted)")
    meteo = [n for n in SITE_METEOROLOGY if n in ds]
    if "nee" in ds:
        report.notes.append(f"NEE from {ds.attrs['nee_variable']}; mean QC weight "
                            f"{float(ds['nee_weight'].mean()):.2f}")
        report.usable = True
    elif len(meteo) == len(SITE_METEOROLOGY):
        report.notes.append("meteorology only, no NEE: usable as site meteorology "
                            f"({', '.join(meteo)}), not as training targets")
        report.usable = True
    else:
        lacking = [n for n in SITE_METEOROLOGY if n not in ds]
        report.reason = (f"{path}: no NEE column and incomplete site meteorology (lacks "
                         f"{', '.join(lacking)}); fluxbridge cannot use it")


def _inspect_site_table(path: Path, report: FileReport) -> None:
    meta = read_site_table(path)
    report.format = "site metadata table"
    report.variables = {"lat": "degrees_north", "lon": "degrees_east", "igbp": "IGBP class"}
    counts = meta["igbp"].value_counts()
    report.notes.append(f"{len(meta)} sites; IGBP: " + ", ".join(
        f"{k} {v}" for k, v in counts.items()))
    if meta.attrs["dropped"]:
        report.notes.append(f"{len(meta.attrs['dropped'])} site(s) without coordinates "
                            f"left out: {meta.attrs['dropped'][:5]}")
    if meta.attrs["unknown_igbp"]:
        report.notes.append(f"unknown IGBP classes: {meta.attrs['unknown_igbp']}")
    if meta.empty:
        report.reason = f"{path}: no site with coordinates"
        return
    report.usable = True


def _inspect_csv(path: Path, report: FileReport) -> None:
    head = path.read_bytes()[:4096].decode("latin-1").splitlines()
    header = head[0] if head else ""
    columns = {c.strip() for c in header.replace(";", ",").split(",")}
    if {"TIMESTAMP", "TIMESTAMP_START"} & columns:
        _inspect_site_file(path, report)
    elif {"VARIABLE", "DATAVALUE"} <= columns or ({"lat", "lon"} <= {c.lower() for c in columns}
                                                 or {"LOCATION_LAT"} <= columns
                                                 or {"latitude", "longitude"} <= columns):
        _inspect_site_table(path, report)
    elif {"region", "time"} <= columns and any(c.endswith("_tgc") for c in columns):
        table = pd.read_csv(path)
        terms = [c for c in table.columns if c.endswith("_tgc")]
        report.format = "inversion correction table"
        report.variables = dict.fromkeys(terms, "Tg month-1")
        report.period = (str(table["time"].min()), str(table["time"].max()))
        report.notes.append(f"regions: {sorted(map(str, table['region'].unique()))}; the "
                            "names must match the region mask's")
        report.usable = True
    elif not (({"NDVI", "EVI"} <= columns) or {"value", "calendar_date"} <= columns
              or {c.lower() for c in columns} & {"fapar", "fpar", "lai", "ndvi", "evi"}):
        report.reason = (f"{path}: not a table fluxbridge reads (columns "
                         f"{sorted(columns)[:6]}); expected a FLUXNET-family site file, a site "
                         "metadata table, MODIS point values or a correction table")
    else:
        points = read_modis_points(path)
        report.format = "MODIS point extractions"
        report.period = period(points["date"].sort_values().values)
        report.variables = dict(points.attrs["units"])
        report.coverage = {c: finite_share(points[c]) for c in report.variables}
        report.notes.append(f"{len(points)} rows, sites {sorted(points['site'].unique())[:10]}")
        report.usable = True


def _inspect_zip(path: Path, report: FileReport) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            broken = zf.testzip()
    except zipfile.BadZipFile:
        raise InputError("not a valid zip file (truncated download?)", path=path) from None
    if broken is not None:
        raise InputError(f"member {broken} is corrupt", path=path)
    if any(n.lower().endswith(".shp") for n in names):
        inspect_vector(path, report)
        report.format += " (zipped)"
    elif any(n.endswith(".nc") for n in names):
        inspect_era5(path, report)
        report.format = "ERA5 single levels (CDS zip of instant and accumulated streams)"
    else:
        _inspect_site_file(path, report)
        report.format += f" inside a zip of {len(names)} member(s)"


def inspect_file(path: str | os.PathLike[str]) -> FileReport:
    """Identify a data file and tell whether fluxbridge can use it.

    Parameters
    ----------
    path
        Any input file: FLUXNET-family site CSV or zip, site metadata table, MODIS point table,
        correction table, ERA5 NetCDF or CDS zip, MODIS composites, land cover (NetCDF or
        GeoTIFF), inversion flux (gridded, GCB regional, zonal), region mask, region polygons
        (GeoJSON, shapefile, zipped shapefile, GeoPackage).

    Returns
    -------
    FileReport
        ``usable`` and, if not, a one-line ``reason`` naming the file.
    """
    path = Path(path)
    report = FileReport(path=path)
    if not path.is_file():
        report.reason = f"{path}: file not found"
        return report
    if path.stat().st_size == 0:
        report.reason = f"{path}: the file is empty"
        return report
    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":
            _inspect_zip(path, report)
        elif suffix in (".xlsx", ".xls"):
            _inspect_site_table(path, report)
        elif suffix in _TABLE:
            _inspect_csv(path, report)
        elif suffix in _NETCDF:
            inspect_netcdf(path, report)
        elif suffix in _VECTOR:
            inspect_vector(path, report)
        elif suffix in TIFF_SUFFIXES:
            inspect_land_cover(path, report)
        else:
            report.reason = (f"{path}: unknown file type {suffix or '(none)'}; expected .csv, "
                             ".zip, .nc, .tif, .xlsx, .geojson, .shp or .gpkg")
    except InputError as exc:
        report.usable = False
        report.reason = one_line(str(exc), path)
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        log.debug("inspect %s failed", path, exc_info=True)
        report.usable = False
        report.reason = one_line(f"cannot read ({type(exc).__name__}: {exc})", path)
    return report
