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
from fluxbridge.grid import check_same_grid, land_fraction, normalise_longitude, resolution_of
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset, region_names

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
    regrid: bool = True,
) -> xr.Dataset:
    """An integer region mask file as a canonical regions dataset.

    Parameters
    ----------
    path
        NetCDF with a 2-D integer mask (0 or fill = no region).
    variable
        Mask variable; found by name or as the only 2-D integer variable otherwise.
    grid
        Model grid (a dataset with ``lat``/``lon``); the mask is carried onto it when it
        differs (:func:`regrid_mask`: majority of fractional overlap from a finer mask, nearest
        cell from a coarser one).
    land_only
        For TransCom-3 masks, keep the land regions 1-11 (ocean regions 12-22 become 0).
    regrid
        With False, a mask on another grid than ``grid`` raises
        :class:`~fluxbridge.errors.GridMismatchError` instead of being regridded.

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
            if not regrid:
                raise
            out = regrid_mask(out, grid)
    return out


def _edges(centres: np.ndarray, name: str, limit: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper cell edges [degree] of regular cell centres (any order)."""
    step = resolution_of(centres, name)
    lo, hi = centres - step / 2, centres + step / 2
    if limit is not None:
        lo, hi = np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)
    return lo, hi


def _overlap(target: tuple[np.ndarray, np.ndarray], source: tuple[np.ndarray, np.ndarray],
             period: float | None = None) -> np.ndarray:
    """Length shared by each target and each source interval (target, source)."""
    shifts = (-period, 0.0, period) if period else (0.0,)
    out = np.zeros((target[0].size, source[0].size))
    for shift in shifts:
        lo = np.maximum(target[0][:, None], source[0][None, :] + shift)
        hi = np.minimum(target[1][:, None], source[1][None, :] + shift)
        out += np.clip(hi - lo, 0.0, None)
    return out


def region_fractions(regions: xr.Dataset, grid: xr.Dataset) -> xr.DataArray:
    """Area fraction of each target cell covered by each region of a finer mask.

    Parameters
    ----------
    regions
        Canonical regions dataset (the source mask).
    grid
        Dataset with the target ``lat``/``lon`` (regular).

    Returns
    -------
    xr.DataArray
        (region, lat, lon) [1], the share of each target cell's area that the source mask gives
        to each region (spherical areas: latitudes weighted by the sine).
    """
    names = region_names(regions)
    ids = np.array(sorted(names))
    s_lat, s_lon = regions["lat"].values, regions["lon"].values
    t_lat, t_lon = grid["lat"].values, grid["lon"].values
    sin = np.sin
    s_lo, s_hi = (np.deg2rad(e) for e in _edges(s_lat, "lat", 90.0))
    t_lo, t_hi = (np.deg2rad(e) for e in _edges(t_lat, "lat", 90.0))
    w_lat = _overlap((sin(t_lo), sin(t_hi)), (sin(s_lo), sin(s_hi)))
    w_lon = _overlap(_edges(t_lon, "lon", None), _edges(s_lon, "lon", None), period=360.0)
    target_area = (sin(t_hi) - sin(t_lo))[:, None] * (_edges(t_lon, "lon", None)[1]
                                                      - _edges(t_lon, "lon", None)[0])[None, :]
    mask = regions["region"].values
    frac = np.stack([w_lat @ (mask == r).astype(float) @ w_lon.T / target_area for r in ids])
    return xr.DataArray(frac, dims=("region", "lat", "lon"),
                        coords={"region": ids, "lat": t_lat, "lon": t_lon,
                                "region_name": ("region", [names[i] for i in ids])},
                        attrs={"units": "1", "long_name": "fraction of the cell in the region"})


def regrid_mask(regions: xr.Dataset, grid: xr.Dataset, method: str = "auto") -> xr.Dataset:
    """Carry a regions dataset onto another regular grid.

    From a finer mask each target cell takes the region covering most of its area (fractional
    overlap, majority among regions; cells no region touches stay 0); from a coarser or equal
    one, the region of the nearest source cell. Target cells without land are 0. Land fraction
    comes from ``grid`` when it has one, else from the land mask; cell area is recomputed.

    Parameters
    ----------
    regions
        Canonical regions dataset.
    grid
        Dataset with the target ``lat``/``lon`` (and optionally ``land_fraction``).
    method
        ``"auto"``, ``"majority"`` or ``"nearest"``.

    Raises
    ------
    InputError
        A region that loses every cell.
    """
    lat, lon = grid["lat"].values, grid["lon"].values
    if method == "auto":
        finer = (resolution_of(regions["lat"].values, "lat") < resolution_of(lat, "lat")
                 or resolution_of(regions["lon"].values, "lon") < resolution_of(lon, "lon"))
        method = "majority" if finer else "nearest"
    names = region_names(regions)
    if method == "majority":
        frac = region_fractions(regions, grid)
        best = frac.argmax("region").values
        mask = np.where(frac.max("region").values > 0, frac["region"].values[best], 0)
    elif method == "nearest":
        mask = regions["region"].sel(lat=xr.DataArray(lat, dims="lat"),
                                     lon=xr.DataArray(normalise_longitude(lon), dims="lon"),
                                     method="nearest").values
    else:
        raise InputError(f"unknown regrid method {method!r}", variable="method",
                         expected="auto, majority or nearest")
    land = grid["land_fraction"] if "land_fraction" in grid else land_fraction(lat, lon)
    values = np.where(np.asarray(land) > 0, mask, 0)
    lost = [n for i, n in names.items() if not np.any(values == i)]
    if lost:
        raise InputError(f"region(s) {lost} have no cell on the target grid",
                         path=regions.attrs.get("source"), variable="region",
                         expected="a target grid fine enough for every region")
    out = region_dataset(values, names, lat, lon, land=xr.DataArray(
        np.asarray(land), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}),
        region_set=regions.attrs.get("region_set", "regridded"))
    out.attrs["regridded_from"] = str(regions.attrs.get("source", "memory"))
    out.attrs["regrid_method"] = method
    return out
