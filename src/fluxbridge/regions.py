"""Built-in region sets on any regular grid, and carrying a region set to another grid.

Nothing downloads.

A region dataset (the canonical *regions* dataset) holds

* ``region`` (lat, lon) integer mask, 0 = no region, with CF ``flag_values`` and
  ``flag_meanings`` (names with underscores for spaces);
* ``cell_area`` (lat, lon) [m2] and ``land_fraction`` (lat, lon) [1].

Readers of mask files (:mod:`fluxbridge.io.region_masks`) return the same structure.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import (
    cell_area,
    land_fraction,
    make_grid,
    normalise_longitude,
    resolution_of,
)

# TransCom-3 land regions (Gurney et al. 2002) approximated by latitude-longitude boxes, applied in
# order (first match wins) to cells with land. Greenland and Antarctica belong to no region.
_TRANSCOM_BOXES: list[tuple[int, str, tuple[float, float, float, float]]] = [
    # (id, name, (lat_min, lat_max, lon_min, lon_max))
    (0, "none", (59.0, 90.0, -74.0, -11.0)),  # Greenland
    (0, "none", (-90.0, -60.0, -180.0, 180.0)),  # Antarctica
    (1, "North American Boreal", (50.0, 90.0, -170.0, -52.0)),
    (1, "North American Boreal", (55.0, 75.0, -180.0, -140.0)),
    (2, "North American Temperate", (12.0, 50.0, -130.0, -52.0)),
    (3, "South American Tropical", (-15.0, 12.0, -92.0, -30.0)),
    (4, "South American Temperate", (-60.0, -15.0, -92.0, -30.0)),
    (11, "Europe", (35.0, 72.0, -25.0, 40.0)),
    (11, "Europe", (60.0, 82.0, 10.0, 60.0)),
    (5, "Northern Africa", (0.0, 38.0, -20.0, 55.0)),
    (6, "Southern Africa", (-38.0, 0.0, -20.0, 55.0)),
    (7, "Eurasia Boreal", (50.0, 82.0, 40.0, 180.0)),
    (9, "Tropical Asia", (-11.0, 25.0, 60.0, 160.0)),
    (8, "Eurasia Temperate", (20.0, 50.0, 38.0, 150.0)),
    (8, "Eurasia Temperate", (35.0, 50.0, 26.0, 38.0)),
    (10, "Australia", (-50.0, -11.0, 110.0, 180.0)),
]

TRANSCOM_NAMES: dict[int, str] = {
    1: "North American Boreal",
    2: "North American Temperate",
    3: "South American Tropical",
    4: "South American Temperate",
    5: "Northern Africa",
    6: "Southern Africa",
    7: "Eurasia Boreal",
    8: "Eurasia Temperate",
    9: "Tropical Asia",
    10: "Australia",
    11: "Europe",
}

LATITUDE_BAND_NAMES: dict[int, str] = {1: "North", 2: "Tropical", 3: "South"}
"""Latitude bands of the Global Carbon Budget regional inversion tables: > 30N, 30S-30N, < 30S."""

BUILTIN_REGION_SETS = ("transcom_like", "latitude_bands")


def region_dataset(
    mask: np.ndarray,
    names: dict[int, str],
    lat: np.ndarray,
    lon: np.ndarray,
    land: xr.DataArray | None = None,
    region_set: str = "custom",
) -> xr.Dataset:
    """Assemble a canonical regions dataset from an integer mask.

    Parameters
    ----------
    mask
        Integer region id per cell (lat, lon); 0 = no region.
    names
        Region id to name.
    lat, lon
        Canonical grid coordinates [degree].
    land
        Land fraction [1]; computed from the land mask when not given.
    region_set
        Name recorded in the attributes.
    """
    ids = sorted(k for k in names if k != 0)
    area = cell_area(lat, lon)
    land = land_fraction(lat, lon) if land is None else land
    ds = xr.Dataset(coords={"lat": area["lat"], "lon": area["lon"]})
    ds["region"] = (("lat", "lon"), np.asarray(mask, dtype=np.int16), {
        "long_name": f"region ({region_set})",
        "flag_values": np.asarray(ids, dtype=np.int16),
        "flag_meanings": " ".join(names[i].replace(" ", "_") for i in ids),
        "comment": "0 = no region",
    })
    ds["cell_area"] = area
    ds["land_fraction"] = land
    ds["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    ds["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    ds.attrs["region_set"] = region_set
    return ds


def builtin_regions(name: str = "transcom_like", resolution_deg: float = 2.0) -> xr.Dataset:
    """A built-in region set on the canonical global grid.

    Parameters
    ----------
    name
        ``"transcom_like"``: the 11 TransCom-3 land regions approximated by latitude-longitude
        boxes on the real land mask; ``"latitude_bands"``: North (> 30N), Tropical (30S-30N),
        South (< 30S), as in the Global Carbon Budget regional inversion tables.
    resolution_deg
        Grid spacing [degree].

    Returns
    -------
    xr.Dataset
        Canonical regions dataset (``region``, ``cell_area``, ``land_fraction``).
    """
    grid = make_grid(resolution_deg)
    lat, lon = grid["lat"].values, grid["lon"].values
    land = land_fraction(lat, lon)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    has_land = land.values > 0
    if name == "transcom_like":
        mask = np.full(la.shape, -1, dtype=np.int16)
        for rid, _, (lat0, lat1, lon0, lon1) in _TRANSCOM_BOXES:
            inside = (mask < 0) & (la >= lat0) & (la < lat1) & (lo >= lon0) & (lo < lon1)
            mask[inside] = rid
        mask[mask < 0] = 0
        names = TRANSCOM_NAMES
    elif name == "latitude_bands":
        mask = np.where(la > 30, 1, np.where(la >= -30, 2, 3)).astype(np.int16)
        names = LATITUDE_BAND_NAMES
    else:
        raise InputError(f"unknown built-in region set {name!r}", variable="regions",
                         expected=" or ".join(BUILTIN_REGION_SETS))
    mask = np.where(has_land, mask, 0)
    return region_dataset(mask, names, lat, lon, land=land, region_set=name)


def region_names(regions: xr.Dataset) -> dict[int, str]:
    """Region id to name from the CF flag attributes of ``regions['region']``."""
    attrs = regions["region"].attrs
    ids = np.atleast_1d(attrs["flag_values"]).astype(int)
    names = str(attrs["flag_meanings"]).split()
    if len(ids) != len(names):
        raise InputError("flag_values and flag_meanings differ in length", variable="region",
                         expected="one name per flag value")
    return {int(i): n.replace("_", " ") for i, n in zip(ids, names, strict=True)}
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
        np.asarray(land), dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
        name="land_fraction", attrs={"units": "1", "standard_name": "land_area_fraction",
                                     "long_name": "land area fraction"}),
        region_set=regions.attrs.get("region_set", "regridded"))
    out.attrs["regridded_from"] = str(regions.attrs.get("source", "memory"))
    out.attrs["regrid_method"] = method
    return out
