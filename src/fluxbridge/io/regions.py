"""Region masks from NetCDF integer masks (TransCom-3, RECCAP-2, the twin world's).

The result is the canonical regions dataset of :mod:`fluxbridge.regions`: ``region`` (lat, lon)
with CF flags, ``cell_area`` [m2] (the file's own when it has one) and ``land_fraction`` [1].
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, land_fraction, normalise_longitude
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset

log = logging.getLogger(__name__)

MASK_NAMES = ("region", "regions", "transcom_regions", "transcom", "mask", "land_regions")


def _find_mask(ds: xr.Dataset, variable: str | None, path: Path) -> xr.DataArray:
    if variable is not None:
        if variable not in ds:
            raise InputError("mask variable missing", path=path, variable=variable)
        return ds[variable]
    for name in MASK_NAMES:
        if name in ds and ds[name].ndim == 2:
            return ds[name]
    candidates = [n for n, v in ds.data_vars.items() if v.ndim == 2 and (
        np.issubdtype(v.dtype, np.integer) or bool(np.all(np.mod(v.fillna(0).values, 1) == 0)))]
    if len(candidates) != 1:
        raise InputError(f"cannot tell which variable is the mask (candidates {candidates})",
                         path=path, variable="region", expected="pass variable=NAME")
    return ds[candidates[0]]


def read_region_mask(
    path: str | os.PathLike[str],
    variable: str | None = None,
    grid: xr.Dataset | None = None,
    land_only: bool = True,
) -> xr.Dataset:
    """An integer region mask file as a canonical regions dataset.

    Parameters
    ----------
    path
        NetCDF with a 2-D integer mask (0 or fill = no region).
    variable
        Mask variable; found by name or as the only 2-D integer variable otherwise.
    grid
        Model grid (a dataset with ``lat``/``lon``); the mask is carried onto it by the nearest
        cell when it differs (:func:`regrid_mask`).
    land_only
        For TransCom-3 masks, keep the land regions 1-11 (ocean regions 12-22 become 0).

    Returns
    -------
    xr.Dataset
        Canonical regions dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("region mask file not found", path=path)
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "), path=path) from None
    da = _find_mask(ds, variable, path)
    lat_name = next((d for d in da.dims if d.lower().startswith("lat")), None)
    lon_name = next((d for d in da.dims if d.lower().startswith("lon")), None)
    if lat_name is None or lon_name is None:
        raise InputError(f"mask dims {da.dims}", path=path, variable=str(da.name),
                         expected="(lat, lon)")
    lat = ds[lat_name].values.astype(float)
    lon = ds[lon_name].values.astype(float)
    if np.any(np.abs(lat) > 90) or np.any((lon < -180) | (lon > 360)):
        raise InputError("coordinates out of range", path=path, variable="lat/lon",
                         expected="latitude in [-90, 90], longitude in [-180, 360]")
    values = np.nan_to_num(da.values.astype(float), nan=0.0).astype(np.int64)
    values[values < 0] = 0
    attrs = da.attrs
    if "flag_values" in attrs and "flag_meanings" in attrs:
        ids = np.atleast_1d(attrs["flag_values"]).astype(int)
        meanings = str(attrs["flag_meanings"]).split()
        names = {int(i): m.replace("_", " ") for i, m in zip(ids, meanings, strict=True)}
    elif "transcom" in str(da.name).lower() or "TRANSCOM" in path.name.upper():
        names = dict(TRANSCOM_NAMES)
        if not land_only:
            names.update({i: f"TransCom ocean {i}" for i in range(12, 23)})
    else:
        names = {int(i): f"region {int(i)}" for i in np.unique(values) if i != 0}
    values[~np.isin(values, list(names))] = 0
    # canonical order: lat descending, lon ascending in [-180, 180)
    lon_c = normalise_longitude(lon)
    order_lon = np.argsort(lon_c)
    order_lat = np.argsort(-lat)
    values = values[np.ix_(order_lat, order_lon)] if da.dims[0] == lat_name else \
        values.T[np.ix_(order_lat, order_lon)]
    lat, lon_c = lat[order_lat], lon_c[order_lon]
    land = None
    if "land_fraction" in ds:
        land = ds["land_fraction"].transpose(lat_name, lon_name).values[np.ix_(order_lat,
                                                                             order_lon)]
        land = xr.DataArray(land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon_c},
                            name="land_fraction", attrs={"units": "1", "source": str(path)})
    out = region_dataset(values, names, lat, lon_c, land=land, region_set=path.stem)
    if "cell_area" in ds:
        area = ds["cell_area"].transpose(lat_name, lon_name).values[np.ix_(order_lat, order_lon)]
        out["cell_area"] = (("lat", "lon"), area, {**out["cell_area"].attrs,
                                                  "source": str(path)})
    empty = [names[i] for i in names if not np.any(values == i)]
    if empty:
        raise InputError(f"region(s) without any cell: {empty}", path=path,
                         variable=str(da.name), expected="every named region on the grid")
    out.attrs["source"] = str(path)
    if grid is not None:
        try:
            check_same_grid(out, grid, what="region mask and model grid", path=str(path))
        except InputError:
            out = regrid_mask(out, grid)
    return out


def regrid_mask(regions: xr.Dataset, grid: xr.Dataset) -> xr.Dataset:
    """Carry a regions dataset onto another grid (region of the nearest source cell).

    Land fraction and cell area are recomputed on the target grid; a region that loses every
    cell raises :class:`InputError`.
    """
    lat, lon = grid["lat"].values, grid["lon"].values
    mask = regions["region"].sel(lat=xr.DataArray(lat, dims="lat"),
                                 lon=xr.DataArray(lon, dims="lon"), method="nearest")
    names = {int(i): m.replace("_", " ") for i, m in zip(
        np.atleast_1d(regions["region"].attrs["flag_values"]),
        str(regions["region"].attrs["flag_meanings"]).split(), strict=True)}
    land = grid["land_fraction"] if "land_fraction" in grid else land_fraction(lat, lon)
    values = np.where(np.asarray(land) > 0, mask.values, 0)
    lost = [n for i, n in names.items() if not np.any(values == i)]
    if lost:
        raise InputError(f"region(s) {lost} have no cell on the target grid",
                         path=regions.attrs.get("source"), variable="region",
                         expected="a target grid fine enough for every region")
    out = region_dataset(values, names, lat, lon, land=xr.DataArray(
        np.asarray(land), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}),
        region_set=regions.attrs.get("region_set", "regridded"))
    out.attrs["regridded_from"] = str(regions.attrs.get("source", "memory"))
    return out
