"""The model grid: coordinates, cell areas, land fraction, longitude conventions.

Canonical grid convention (as X-BASE ships): coordinates ``lat`` (descending, cell centres) and
``lon`` (ascending, in [-180, 180)), regular spacing in degrees.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxbridge.constants import EARTH_RADIUS_M
from fluxbridge.errors import GridMismatchError, InputError


def make_grid(resolution_deg: float) -> xr.Dataset:
    """A global regular grid at ``resolution_deg`` with CF bounds.

    Parameters
    ----------
    resolution_deg
        Cell size [degree]; must divide 180.

    Returns
    -------
    xr.Dataset
        Coordinates ``lat`` (descending) and ``lon`` (ascending from -180) with ``lat_bnds`` and
        ``lon_bnds`` variables.
    """
    n_lat = round(180.0 / resolution_deg)
    if n_lat <= 0 or not np.isclose(n_lat * resolution_deg, 180.0):
        raise InputError(
            f"grid resolution {resolution_deg} does not divide 180 degrees",
            variable="resolution_deg",
            expected="a divisor of 180 such as 2, 1, 0.5 or 0.25",
        )
    d = 180.0 / n_lat
    lat = 90.0 - d / 2 - d * np.arange(n_lat)
    lon = -180.0 + d / 2 + d * np.arange(2 * n_lat)
    ds = xr.Dataset(
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude",
                                 "long_name": "latitude", "bounds": "lat_bnds"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude",
                                 "long_name": "longitude", "bounds": "lon_bnds"}),
        }
    )
    ds["lat_bnds"] = (("lat", "bnds"), np.stack([lat + d / 2, lat - d / 2], axis=1))
    ds["lon_bnds"] = (("lon", "bnds"), np.stack([lon - d / 2, lon + d / 2], axis=1))
    ds.attrs["resolution_deg"] = d
    return ds


def resolution_of(coord: np.ndarray | xr.DataArray, name: str = "coordinate") -> float:
    """Regular spacing [degree] of a 1-D coordinate; raises if it is not regular."""
    values = np.asarray(coord, dtype=float)
    if values.size < 2:
        raise InputError(f"{name} has fewer than two points", variable=name)
    steps = np.diff(values)
    if not np.allclose(steps, steps[0], rtol=1e-4, atol=1e-6):
        raise InputError(f"{name} is not regularly spaced", variable=name,
                         expected="a regular latitude-longitude grid")
    return float(abs(steps[0]))


def cell_area(lat: np.ndarray | xr.DataArray, lon: np.ndarray | xr.DataArray) -> xr.DataArray:
    """Area of the cells of a regular grid from the spherical formula.

    ``A = R^2 * dlon * (sin(lat_north) - sin(lat_south))`` with R = 6 371 000 m.

    Parameters
    ----------
    lat, lon
        Cell-centre coordinates [degree] of a regular grid.

    Returns
    -------
    xr.DataArray
        ``cell_area`` (lat, lon) [m2].
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    dlat = resolution_of(lat, "lat")
    dlon = resolution_of(lon, "lon")
    north = np.clip(lat + dlat / 2, -90, 90)
    south = np.clip(lat - dlat / 2, -90, 90)
    band = EARTH_RADIUS_M**2 * np.deg2rad(dlon) * (np.sin(np.deg2rad(north))
                                                     - np.sin(np.deg2rad(south)))
    area = np.repeat(band[:, None], lon.size, axis=1)
    return xr.DataArray(
        area,
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name="cell_area",
        attrs={"units": "m2", "standard_name": "cell_area", "long_name": "grid cell area",
               "earth_radius_m": EARTH_RADIUS_M},
    )


def land_fraction(
    lat: np.ndarray | xr.DataArray, lon: np.ndarray | xr.DataArray, subsamples: int | None = None
) -> xr.DataArray:
    """Fraction of each cell that is land, from the land mask of ``global-land-mask``.

    The mask (about 1 km, shipped with the package; nothing downloads) is sampled on a regular
    ``subsamples`` x ``subsamples`` sub-grid inside each cell.

    Parameters
    ----------
    lat, lon
        Cell-centre coordinates [degree] of a regular grid.
    subsamples
        Points per cell side; by default enough for about 0.1 degree sampling, at least 4.

    Returns
    -------
    xr.DataArray
        ``land_fraction`` (lat, lon) [1]. Antarctica counts as land.
    """
    from global_land_mask import globe

    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    dlat = resolution_of(lat, "lat")
    dlon = resolution_of(lon, "lon")
    n = subsamples or max(4, min(20, round(max(dlat, dlon) / 0.1)))
    offsets = (np.arange(n) + 0.5) / n - 0.5
    sub_lat = np.clip((lat[:, None] + offsets[None, :] * dlat).ravel(), -89.999, 89.999)
    sub_lon = normalise_longitude((lon[:, None] + offsets[None, :] * dlon).ravel())
    la, lo = np.meshgrid(sub_lat, sub_lon, indexing="ij")
    land = globe.is_land(la, lo).reshape(lat.size, n, lon.size, n)
    frac = land.mean(axis=(1, 3))
    return xr.DataArray(
        frac,
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name="land_fraction",
        attrs={"units": "1", "standard_name": "land_area_fraction",
               "long_name": "land area fraction",
               "source": f"global-land-mask, {n}x{n} samples per cell"},
    )


def normalise_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes mapped into [-180, 180)."""
    lon = np.asarray(lon, dtype=float)
    return (lon + 180.0) % 360.0 - 180.0


def spatial_dim(obj: xr.Dataset | xr.DataArray, kind: str) -> str:
    """The name of the latitude (``kind="lat"``) or longitude dimension of ``obj``."""
    names = ("lat", "latitude", "y") if kind == "lat" else ("lon", "longitude", "x")
    for n in names:
        if n in obj.dims:
            return n
    raise InputError(f"no {kind} dimension", variable=kind, expected=" or ".join(names))


def to_canonical_grid(obj: xr.Dataset | xr.DataArray, lat: str = "lat", lon: str = "lon"):
    """Rename, normalise and sort coordinates to the canonical convention.

    Longitudes 0..360 become -180..180 (sorted ascending); latitudes are sorted descending.
    """
    rename = {k: v for k, v in {lat: "lat", lon: "lon"}.items() if k != v and k in obj.dims}
    obj = obj.rename(rename)
    lon_values = normalise_longitude(obj["lon"].values)
    obj = obj.assign_coords(lon=("lon", lon_values, obj["lon"].attrs)).sortby("lon")
    obj = obj.sortby("lat", ascending=False)
    return obj


def check_same_grid(a: xr.Dataset | xr.DataArray, b: xr.Dataset | xr.DataArray,
                    what: str = "grids", path: str | None = None) -> None:
    """Raise :class:`GridMismatchError` unless ``a`` and ``b`` share lat and lon."""
    for name in ("lat", "lon"):
        va, vb = np.asarray(a[name]), np.asarray(b[name])
        if va.shape != vb.shape or not np.allclose(va, vb, atol=1e-6):
            raise GridMismatchError(
                f"{what} differ in {name}: {va.size} points "
                f"[{va.min():.3f}..{va.max():.3f}] against {vb.size} points "
                f"[{vb.min():.3f}..{vb.max():.3f}]",
                path=path,
                variable=name,
                expected="the model grid",
            )


def sw_in_pot_daily(lat: np.ndarray | xr.DataArray, dayofyear: np.ndarray | xr.DataArray
                    ) -> np.ndarray:
    """Daily mean potential (top-of-atmosphere) shortwave radiation [W m-2].

    Standard daily insolation formula (declination from the day of year, sunset hour angle).
    """
    from fluxbridge.constants import SOLAR_CONSTANT_W_M2

    phi = np.deg2rad(np.asarray(lat, dtype=float))
    doy = np.asarray(dayofyear, dtype=float)
    decl = 0.409 * np.sin(2 * np.pi * doy / 365.0 - 1.39)
    dr = 1 + 0.033 * np.cos(2 * np.pi * doy / 365.0)
    x = np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0)
    ws = np.arccos(x)
    return (SOLAR_CONSTANT_W_M2 / np.pi) * dr * (
        ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws)
    )


def sw_in_pot_field(ds: xr.Dataset) -> xr.DataArray:
    """Daily potential shortwave radiation [W m-2] (time, lat, lon) at the times and latitudes
    of ``ds``, the same in every longitude."""
    doy = ds["time"].dt.dayofyear.values.astype(float)
    lat = np.asarray(ds["lat"].values, dtype=float)
    pot = sw_in_pot_daily(lat[None, :], doy[:, None])[:, :, None]
    pot = np.broadcast_to(pot, (doy.size, lat.size, ds.sizes["lon"]))
    return xr.DataArray(pot, dims=("time", "lat", "lon"),
                        coords={"time": ds["time"], "lat": ds["lat"], "lon": ds["lon"]},
                        attrs={"units": "W m-2"})


def majority_to_grid(codes: xr.DataArray, grid: xr.Dataset | xr.DataArray, n_classes: int,
                     background: int | None = None) -> xr.DataArray:
    """The most frequent class among the finer cells whose centres fall in each target cell.

    Parameters
    ----------
    codes
        Integer classes (lat, lon) on a regular grid finer than ``grid``; values outside
        0..``n_classes``-1 (fill) are not counted.
    grid
        Target regular ``lat``/``lon`` [degree] (any order, either longitude convention).
    n_classes
        Number of classes.
    background
        A class (water, say) given to a cell only where no finer cell of another class falls
        in it, so that a coastal cell takes its majority land class; None = counted like any.

    Returns
    -------
    xr.DataArray
        (lat, lon) int64 on ``grid``: the majority class, the lower class on ties, 0 where no
        finer cell is counted.
    """
    t_lat, t_lon = np.asarray(grid["lat"], float), np.asarray(grid["lon"], float)
    rows = _cell_index(np.asarray(codes["lat"], float), t_lat, "lat", period=None)
    cols = _cell_index(normalise_longitude(np.asarray(codes["lon"], float)),
                       normalise_longitude(t_lon), "lon", period=360.0)
    values = np.asarray(codes.transpose("lat", "lon").values)[:, cols >= 0]
    cols = cols[cols >= 0]
    counts = np.zeros((t_lat.size, t_lon.size, n_classes), dtype=np.int32)
    for i in np.unique(rows[rows >= 0]):
        block = values[rows == i]
        keep = (block >= 0) & (block < n_classes)
        index = np.broadcast_to(cols, block.shape)[keep] * n_classes + block[keep]
        counts[i] += np.bincount(index.astype(np.int64), minlength=t_lon.size * n_classes
                                 ).reshape(t_lon.size, n_classes).astype(np.int32)
    if background is not None:
        others = np.delete(counts, background, axis=2).sum(axis=2) > 0
        counts[others, background] = 0
    out = np.where(counts.sum(axis=2) > 0, counts.argmax(axis=2), 0).astype(np.int64)
    return xr.DataArray(out, dims=("lat", "lon"), coords={"lat": t_lat, "lon": t_lon},
                        name=codes.name)


def _cell_index(source: np.ndarray, target: np.ndarray, name: str, period: float | None
                ) -> np.ndarray:
    """Index of the target cell holding each source centre, -1 outside the target grid."""
    step = resolution_of(target, name)
    order = np.argsort(target)
    offset = source - (target[order[0]] - step / 2)
    if period is not None:
        offset = np.mod(offset, period)
    k = np.floor(offset / step).astype(np.int64)
    inside = (k >= 0) & (k < target.size)
    return np.where(inside, order[np.clip(k, 0, target.size - 1)], -1)
