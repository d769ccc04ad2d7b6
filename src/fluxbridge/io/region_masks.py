"""Region masks from NetCDF integer masks (TransCom-3, RECCAP-2, the twin world's).

The result is the canonical regions dataset of :mod:`fluxbridge.regions`: ``region`` (lat, lon)
with CF flags, ``cell_area`` [m2] (the file's own when it has one) and ``land_fraction`` [1].
Vector files (GeoJSON, shapefile, GeoPackage) are read by :mod:`fluxbridge.io.region_vectors`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, normalise_longitude
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset, regrid_mask

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
    ds = _open_mask_file(path)
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
    names = _region_names(da, path, values, land_only)
    undeclared = np.setdiff1d(np.unique(values[values > 0]), list(names))
    if undeclared.size and "flag_values" in da.attrs:
        raise InputError(f"region codes {undeclared[:10].tolist()} absent from flag_values",
                         path=path, variable=str(da.name),
                         expected=f"codes among flag_values {sorted(names)}, or 0 for none")
    values[~np.isin(values, list(names))] = 0
    # canonical order: lat descending, lon ascending in [-180, 180)
    lon_c = normalise_longitude(lon)
    order = np.ix_(np.argsort(-lat), np.argsort(lon_c))
    values = values[order] if da.dims[0] == lat_name else values.T[order]
    lat, lon_c = lat[order[0].ravel()], lon_c[order[1].ravel()]

    def field(name: str) -> np.ndarray | None:
        return ds[name].transpose(lat_name, lon_name).values[order] if name in ds else None

    out = _mask_dataset(values, names, lat, lon_c, field("land_fraction"), field("cell_area"),
                        path)
    empty = [names[i] for i in names if not np.any(values == i)]
    if empty:
        raise InputError(f"region(s) without any cell: {empty}", path=path,
                         variable=str(da.name), expected="every named region on the grid")
    if grid is not None:
        try:
            check_same_grid(out, grid, what="region mask and model grid", path=str(path))
        except InputError:
            if not regrid:
                raise
            out = regrid_mask(out, grid)
    return out


def _open_mask_file(path: Path) -> xr.Dataset:
    if not path.is_file():
        raise InputError("region mask file not found", path=path)
    try:
        return xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open as NetCDF ({exc})".replace("\n", " "), path=path) from None


def _region_names(da: xr.DataArray, path: Path, values: np.ndarray, land_only: bool
                  ) -> dict[int, str]:
    """Region id → name: the CF flags, the TransCom-3 names, or numbered names."""
    attrs = da.attrs
    if "flag_values" in attrs and "flag_meanings" in attrs:
        ids = np.atleast_1d(attrs["flag_values"]).astype(int)
        meanings = str(attrs["flag_meanings"]).split()
        return {int(i): m.replace("_", " ") for i, m in zip(ids, meanings, strict=True)}
    if "transcom" in str(da.name).lower() or "TRANSCOM" in path.name.upper():
        names = dict(TRANSCOM_NAMES)
        if not land_only:
            names.update({i: f"TransCom ocean {i}" for i in range(12, 23)})
        return names
    return {int(i): f"region {int(i)}" for i in np.unique(values) if i != 0}


def _mask_dataset(values: np.ndarray, names: dict[int, str], lat: np.ndarray, lon: np.ndarray,
                  land: np.ndarray | None, area: np.ndarray | None, path: Path) -> xr.Dataset:
    """The canonical regions dataset, with the file's own land fraction and cell area."""
    if land is not None:
        land = xr.DataArray(land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                            name="land_fraction", attrs={"units": "1", "source": str(path)})
    out = region_dataset(values, names, lat, lon, land=land, region_set=path.stem)
    if area is not None:
        out["cell_area"] = (("lat", "lon"), area, {**out["cell_area"].attrs,
                                                  "source": str(path)})
    out.attrs["source"] = str(path)
    return out
