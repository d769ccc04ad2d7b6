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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError

log = logging.getLogger(__name__)

_NETCDF = (".nc", ".nc4", ".cdf", ".netcdf", ".h5", ".hdf5")
_TABLE = (".csv", ".txt", ".xlsx", ".xls")
_VECTOR = (".geojson", ".json", ".shp", ".gpkg")
_REGION_COLUMNS = ("name", "names", "region_name", "region", "regions", "region_id", "id",
                   "transcom", "reccap", "label")
"""Attribute columns tried, in order (case-insensitive), to name the regions of a vector file."""
_CHECK_GRID_DEG = 1.0


@dataclass
class FileReport:
    """What :func:`inspect_file` found out about one file.

    Attributes
    ----------
    path
        The file.
    usable
        Whether fluxbridge can use it.
    reason
        Why not (one line naming the file), None when usable.
    format
        The recognised format, e.g. ``"FLUXNET2015 FULLSET site file"``.
    resolution
        Time step (``HH``, ``DD``, ``MM``, ``hourly``, ``monthly`` ...), if any.
    period
        First and last time, if any.
    variables
        Variable name → units (canonical names for what the readers produce).
    coverage
        Variable → share of finite values [1].
    notes
        Further findings (what is missing, what the name gets wrong, how it can be used).
    """

    path: Path
    usable: bool = False
    reason: str | None = None
    format: str = "unknown"
    resolution: str | None = None
    period: tuple[str, str] | None = None
    variables: dict[str, str] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """A human-readable multi-line report."""
        lines = [f"file:       {self.path}", f"format:     {self.format}"]
        if self.resolution:
            lines.append(f"resolution: {self.resolution}")
        if self.period:
            lines.append(f"period:     {self.period[0]} .. {self.period[1]}")
        if self.variables:
            lines.append("variables:  " + ", ".join(
                f"{k} [{v}]" for k, v in self.variables.items()))
        if self.coverage:
            lines.append("coverage:   " + ", ".join(
                f"{k} {100 * v:.1f}%" for k, v in self.coverage.items()))
        lines.extend(f"note:       {n}" for n in self.notes)
        lines.append("usable:     " + ("yes" if self.usable else f"no — {self.reason}"))
        return "\n".join(lines)


def _one_line(text: str, path: Path) -> str:
    line = " ".join(str(text).split())
    return line if str(path) in line else f"{path}: {line}"


def _period(times: np.ndarray | pd.DatetimeIndex, fmt: str = "%Y-%m-%d") -> tuple[str, str]:
    t = pd.DatetimeIndex(np.asarray(times))
    return t[0].strftime(fmt), t[-1].strftime(fmt)


def _finite_share(values: xr.DataArray | np.ndarray) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.isfinite(arr).mean()) if arr.size else 0.0


def _inspect_site_file(path: Path, report: FileReport) -> None:
    from fluxbridge.io.fluxnet import SITE_METEOROLOGY, parse_file_name, read_site_file

    ds = read_site_file(path, require_nee=False)
    named = parse_file_name(path)
    res = ds.attrs["time_step"]
    fmt = {"HH": "%Y-%m-%d %H:%M", "HR": "%Y-%m-%d %H:%M", "MM": "%Y-%m", "YY": "%Y"}.get(
        res, "%Y-%m-%d")
    report.format = (f"FLUXNET-family site file ({ds.attrs.get('product', 'unknown')}, "
                     f"site {ds.attrs['site_id']})")
    report.resolution = res
    report.period = _period(ds["time"].values, fmt)
    report.notes.append(f"{ds.sizes['time']} records")
    report.variables = {n: str(ds[n].attrs.get("units", "?")) + (
        f", from {ds[n].attrs['source_variable']}" if "source_variable" in ds[n].attrs else "")
        for n in ds.data_vars}
    report.coverage = {n: _finite_share(ds[n].values) for n in ds.data_vars}
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
    from fluxbridge.io.sitemeta import read_site_table

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
    from fluxbridge.io.modis import read_modis_points

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
        report.period = _period(points["date"].sort_values().values)
        report.variables = dict(points.attrs["units"])
        report.coverage = {c: _finite_share(points[c]) for c in report.variables}
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
        _inspect_vector(path, report)
        report.format += " (zipped)"
    elif any(n.endswith(".nc") for n in names):
        _inspect_era5(path, report)
        report.format = "ERA5 single levels (CDS zip of instant and accumulated streams)"
    else:
        _inspect_site_file(path, report)
        report.format += f" inside a zip of {len(names)} member(s)"


def _inspect_era5(path: Path, report: FileReport) -> None:
    from fluxbridge.io.era5 import open_era5

    ds = open_era5(path)
    step = ds.attrs["era5_time_step_hours"]
    report.format = "ERA5 single levels"
    report.resolution = ("hourly" if step < 1.5 else "daily" if step < 30
                         else "monthly") + " (read as daily)"
    report.period = _period(ds["time"].values)
    report.variables = {n: ds[n].attrs["units"] for n in ds.data_vars}
    report.coverage = {n: _finite_share(ds[n].values) for n in ds.data_vars}
    report.notes.append(f"grid {ds.sizes['lat']} x {ds.sizes['lon']}")
    report.usable = True


def _inspect_netcdf(path: Path, report: FileReport) -> None:
    from fluxbridge.io import inversions as inv
    from fluxbridge.io.modis import BANDS, LAND_COVER_NAMES, _read_composites, read_land_cover
    from fluxbridge.io.regions import MASK_NAMES, read_region_mask

    try:
        with xr.open_dataset(path, decode_times=False) as probe:
            names = set(probe.variables)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc}); truncated or not NetCDF?",
                         path=path) from None
    if {"t2m", "d2m"} & names:
        _inspect_era5(path, report)
    elif any(set(v) <= names for v in inv.STYLES.values()):
        _inspect_gridded_inversion(path, report)
    elif "North_Land" in names:
        nbe = inv.read_gcb_regional_file(path)
        _band_report(nbe, report, "Global Carbon Budget regional inversion (PgC per month)")
    elif "SFCO2_LND" in names:
        nbe = inv.read_zonal_inversion(path)
        _band_report(nbe, report, "zonal-mean inversion flux (PgC yr-1 per degree)")
    elif set(LAND_COVER_NAMES) & names:
        lc = read_land_cover(path)
        report.format = "MODIS land cover (IGBP)"
        report.variables = {"land_cover": "IGBP code 0..16"}
        report.notes.append(f"grid {lc.sizes['lat']} x {lc.sizes['lon']}")
        report.usable = True
    elif set(BANDS) & names:
        ds = _read_composites(path, max_qa=1)
        report.format = "MODIS composites"
        report.period = _period(ds["time"].values)
        report.resolution = f"{ds.sizes['time']} composites"
        report.variables = {n: str(ds[n].attrs.get("units", "1")) for n in ds.data_vars}
        report.coverage = {n: _finite_share(ds[n].values) for n in ds.data_vars}
        report.notes.append("gaps (fill, poor QA) are filled in time on reading")
        report.usable = True
    elif set(MASK_NAMES) & names or any(n.startswith("region") for n in names):
        regions = read_region_mask(path)
        from fluxbridge.regions import region_names

        report.format = "region mask"
        report.variables = {"region": "1", "cell_area": "m2", "land_fraction": "1"}
        report.notes.append(f"grid {regions.sizes['lat']} x {regions.sizes['lon']}; regions: "
                            + ", ".join(region_names(regions).values()))
        report.usable = True
    else:
        report.reason = (f"{path}: not a format fluxbridge reads (variables "
                         f"{sorted(names)[:8]}); expected ERA5, MODIS, inversion or region "
                         "mask NetCDF")


def _region_column(path: Path) -> tuple[str | None, list[str]]:
    """The attribute column that most likely names the regions, and all attribute columns."""
    import pyogrio

    info = pyogrio.read_info(path)
    fields = [str(f) for f in info["fields"]]
    types = dict(zip(fields, (str(t) for t in info["dtypes"]), strict=True))
    by_lower = {f.lower(): f for f in fields}
    for name in _REGION_COLUMNS:
        if name in by_lower:
            return by_lower[name], fields
    usable = [f for f in fields if types[f] == "object" or types[f].startswith("int")]
    return (usable[0] if usable else None), fields


def _inspect_vector(path: Path, report: FileReport) -> None:
    from fluxbridge.io.regions import read_region_polygons, read_region_vector

    kind = {".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "shapefile",
            ".gpkg": "GeoPackage", ".zip": "shapefile"}.get(path.suffix.lower(), "vector file")
    report.format = f"region polygons ({kind})"
    try:
        column, fields = _region_column(path)
    except Exception as exc:  # pyogrio raises its own error types
        raise InputError(f"cannot read as a vector file ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())})", path=path,
                         expected="GeoJSON, shapefile or GeoPackage") from None
    if column is None:
        report.reason = (f"{path}: no attribute column to name the regions (columns "
                         f"{fields}); expected a text or integer column such as 'name'")
        return
    polygons = read_region_polygons(path, column)
    report.variables = {"region": "1", "region_fraction": "1", "cell_area": "m2",
                        "land_fraction": "1"}
    report.notes.append(f"{len(polygons)} regions from column {column!r} (choose another with "
                        f"column=...; attribute columns {fields}): "
                        + ", ".join(polygons["name"].astype(str).head(12))
                        + (" ..." if len(polygons) > 12 else ""))
    report.notes.append(f"CRS: {polygons.attrs['crs']}")
    if polygons.attrs["repaired"]:
        report.notes.append(f"{polygons.attrs['repaired']} invalid polygon(s) repaired")
    try:
        ds = read_region_vector(path, column, resolution_deg=_CHECK_GRID_DEG, fractions=False)
    except InputError as exc:
        report.notes.append(f"on a {_CHECK_GRID_DEG:g}° grid: {exc.detail}; a finer model "
                            "grid may hold them")
    else:
        counts = np.bincount(ds["region"].values.ravel(), minlength=int(polygons.index.max()) + 1)
        report.notes.append(f"rasterised by fractional overlap on a {_CHECK_GRID_DEG:g}° grid: "
                            + ", ".join(f"{n} {counts[i]} cells"
                                        for i, n in polygons["name"].head(12).items()))
    report.usable = True


def _inspect_gridded_inversion(path: Path, report: FileReport) -> None:
    from fluxbridge.grid import cell_area
    from fluxbridge.io import inversions as inv

    ds = inv._open(path)
    style = next(s for s, v in inv.STYLES.items() if all(n in ds for n in v))
    time_name = next((n for n in ("time", "mtime") if n in ds.dims), None)
    lat = next((n for n in ("latitude", "lat") if n in ds.dims), None)
    lon = next((n for n in ("longitude", "lon") if n in ds.dims), None)
    if None in (time_name, lat, lon):
        raise InputError(f"dimensions {tuple(ds.dims)}", path=path, variable="dims",
                         expected="(time, latitude, longitude)")
    times = inv._month_starts(ds[time_name], str(path))
    first = ds.isel({time_name: slice(0, 1)}).rename({time_name: "time"})
    area = cell_area(ds[lat].values, ds[lon].values).rename(lat=lat, lon=lon)
    for name in inv.STYLES[style]:
        inv.flux_to_gc_m2_d(first[name], times[:1], area, str(path))  # checks the units
    report.format = f"gridded inversion flux ({style} style)"
    report.resolution = "monthly"
    report.period = _period(times, "%Y-%m")
    report.variables = {n: str(ds[n].attrs["units"]) for n in inv.STYLES[style]}
    report.coverage = {n: _finite_share(ds[n].values) for n in inv.STYLES[style]}
    report.notes.append(f"grid {ds.sizes[lat]} x {ds.sizes[lon]}; regional totals need a "
                        "region mask")
    report.usable = True


def _band_report(nbe: xr.DataArray, report: FileReport, what: str) -> None:
    report.format = f"{what}, member {nbe.attrs['member']}"
    report.resolution = "monthly"
    report.period = _period(nbe["time"].values, "%Y-%m")
    report.variables = {"nbe (North, Tropical, South land)": nbe.attrs["units"]}
    report.coverage = {"nbe": _finite_share(nbe.values)}
    report.notes.append("read as latitude-band targets (regions North > 30N, Tropical, "
                        "South < 30S)")
    report.usable = True


def inspect_file(path: str | os.PathLike[str]) -> FileReport:
    """Identify a data file and tell whether fluxbridge can use it.

    Parameters
    ----------
    path
        Any input file: FLUXNET-family site CSV or zip, site metadata table, MODIS point table,
        correction table, ERA5 NetCDF or CDS zip, MODIS composites or land cover, inversion
        flux (gridded, GCB regional, zonal), region mask, region polygons (GeoJSON, shapefile,
        zipped shapefile, GeoPackage).

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
            _inspect_netcdf(path, report)
        elif suffix in _VECTOR:
            _inspect_vector(path, report)
        else:
            report.reason = (f"{path}: unknown file type {suffix or '(none)'}; expected .csv, "
                             ".zip, .nc, .xlsx, .geojson, .shp or .gpkg")
    except InputError as exc:
        report.usable = False
        report.reason = _one_line(str(exc), path)
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        log.debug("inspect %s failed", path, exc_info=True)
        report.usable = False
        report.reason = _one_line(f"cannot read ({type(exc).__name__}: {exc})", path)
    return report
