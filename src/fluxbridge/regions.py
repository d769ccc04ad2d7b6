"""Built-in region sets on any regular grid; nothing downloads.

A region dataset (the canonical *regions* dataset) holds

* ``region`` (lat, lon) integer mask, 0 = no region, with CF ``flag_values`` and
  ``flag_meanings`` (names with underscores for spaces);
* ``cell_area`` (lat, lon) [m2] and ``land_fraction`` (lat, lon) [1].

Readers of mask files (:mod:`fluxbridge.io.regions`) return the same structure.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area, land_fraction, make_grid

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
