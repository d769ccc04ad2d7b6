"""Inspecting gridded and vector files: ERA5, MODIS, inversions, region masks and polygons.

Each function reads the file through the reader the pipeline would use and fills a
:class:`~fluxbridge.io.file_report.FileReport`; a reader's refusal propagates as its
:class:`~fluxbridge.errors.InputError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area
from fluxbridge.io import inversions as inv
from fluxbridge.io.era5 import REQUIRED, open_era5
from fluxbridge.io.era5_set import inspect_era5_part
from fluxbridge.io.file_report import FileReport, finite_share, period
from fluxbridge.io.inversion_bands import read_gcb_regional_file, read_zonal_inversion
from fluxbridge.io.land_cover import LAND_COVER_NAMES, TIFF_SUFFIXES, read_land_cover
from fluxbridge.io.modis import BANDS, read_composites
from fluxbridge.io.plausible import check_inversion_flux, check_meteorology
from fluxbridge.io.region_masks import MASK_NAMES, read_region_mask
from fluxbridge.io.region_vectors import read_region_polygons, read_region_vector
from fluxbridge.regions import region_names

_REGION_COLUMNS = ("name", "names", "region_name", "region", "regions", "region_id", "id",
                   "transcom", "reccap", "label")
"""Attribute columns tried, in order (case-insensitive), to name the regions of a vector file."""
_CHECK_GRID_DEG = 1.0


def inspect_era5(path: Path, report: FileReport) -> None:
    ds = open_era5(path)
    check_meteorology(ds, [path])
    step = ds.attrs["era5_time_step_hours"]
    report.format = "ERA5 single levels"
    report.resolution = ("hourly" if step < 1.5 else "daily" if step < 30
                         else "monthly") + " (read as daily)"
    report.period = period(ds["time"].values)
    report.variables = {n: ds[n].attrs["units"] for n in ds.data_vars}
    report.coverage = {n: finite_share(ds[n].values) for n in ds.data_vars}
    report.notes.append(f"grid {ds.sizes['lat']} x {ds.sizes['lon']}")
    report.usable = True


def inspect_netcdf(path: Path, report: FileReport) -> None:
    try:
        with xr.open_dataset(path, decode_times=False) as probe:
            names = set(probe.variables)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc}); truncated or not NetCDF?",
                         path=path) from None
    if set(REQUIRED) <= names:
        inspect_era5(path, report)
    elif set(REQUIRED) & names:
        inspect_era5_part(path, report, [n for n in REQUIRED if n in names])
    elif any(set(v) <= names for v in inv.STYLES.values()):
        _inspect_gridded_inversion(path, report)
    elif "North_Land" in names:
        nbe = read_gcb_regional_file(path)
        _band_report(nbe, report, "Global Carbon Budget regional inversion (PgC per month)")
    elif "SFCO2_LND" in names:
        nbe = read_zonal_inversion(path)
        _band_report(nbe, report, "zonal-mean inversion flux (PgC yr-1 per degree)")
    elif set(LAND_COVER_NAMES) & names:
        inspect_land_cover(path, report)
    elif set(BANDS) & names:
        ds = read_composites(path, max_qa=1)
        report.format = "MODIS composites"
        report.period = period(ds["time"].values)
        report.resolution = f"{ds.sizes['time']} composites"
        report.variables = {n: str(ds[n].attrs.get("units", "1")) for n in ds.data_vars}
        report.coverage = {n: finite_share(ds[n].values) for n in ds.data_vars}
        report.notes.append("gaps (fill, poor QA) are filled in time on reading")
        report.usable = True
    elif set(MASK_NAMES) & names or any(n.startswith("region") for n in names):
        regions = read_region_mask(path)
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


def inspect_vector(path: Path, report: FileReport) -> None:
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
    ds = inv.open_flux_file(path)
    style = next(s for s, v in inv.STYLES.items() if all(n in ds for n in v))
    time_name = next((n for n in ("time", "mtime") if n in ds.dims), None)
    lat = next((n for n in ("latitude", "lat") if n in ds.dims), None)
    lon = next((n for n in ("longitude", "lon") if n in ds.dims), None)
    if None in (time_name, lat, lon):
        raise InputError(f"dimensions {tuple(ds.dims)}", path=path, variable="dims",
                         expected="(time, latitude, longitude)")
    times = inv.month_starts(ds[time_name], str(path))
    area = cell_area(ds[lat].values, ds[lon].values).rename(lat=lat, lon=lon)
    flux = sum(inv.flux_to_gc_m2_d(ds[name].rename({time_name: "time"}), times, area,
                                   str(path)) for name in inv.STYLES[style])
    check_inversion_flux(flux, str(path), "+".join(inv.STYLES[style]))
    report.format = f"gridded inversion flux ({style} style)"
    report.resolution = "monthly"
    report.period = period(times, "%Y-%m")
    report.variables = {n: str(ds[n].attrs["units"]) for n in inv.STYLES[style]}
    report.coverage = {n: finite_share(ds[n].values) for n in inv.STYLES[style]}
    report.notes.append(f"grid {ds.sizes[lat]} x {ds.sizes[lon]}; regional totals need a "
                        "region mask")
    report.usable = True


def _band_report(nbe: xr.DataArray, report: FileReport, what: str) -> None:
    report.format = f"{what}, member {nbe.attrs['member']}"
    report.resolution = "monthly"
    report.period = period(nbe["time"].values, "%Y-%m")
    report.variables = {"nbe (North, Tropical, South land)": nbe.attrs["units"]}
    report.coverage = {"nbe": finite_share(nbe.values)}
    report.notes.append("read as latitude-band targets (regions North > 30N, Tropical, "
                        "South < 30S)")
    report.usable = True


def inspect_land_cover(path: Path, report: FileReport) -> None:
    """An IGBP land cover NetCDF or GeoTIFF: its grid and the classes present."""
    lc = read_land_cover(path)
    report.format = "MODIS land cover (IGBP)" + (" GeoTIFF" if path.suffix.lower() in
                                                  TIFF_SUFFIXES else "")
    report.variables = {"land_cover": "IGBP code 0..16"}
    codes, counts = np.unique(lc.values, return_counts=True)
    report.notes.append(f"grid {lc.sizes['lat']} x {lc.sizes['lon']}; classes present: "
                        f"{', '.join(str(c) for c in codes[counts > 0])}; a finer grid than "
                        "the model's is aggregated to it by majority")
    report.usable = True
