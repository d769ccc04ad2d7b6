"""CF-1.8 layout of the gridded NEE product: variables, bounds, attributes and encodings.

Pure functions that turn (lazy) NEE fields into a dataset ready to write; nothing here opens or
writes files.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.grid import resolution_of

TIME_UNITS = "days since 1970-01-01"
CALENDAR = "standard"
NEE_LONG_NAME = "net ecosystem exchange of carbon (positive to the atmosphere)"
NEE_COMMENT = (
    "Flux density of carbon in CO2 between the land and the atmosphere, positive when the land "
    "releases carbon (a source), negative for uptake. Mean over the land part of each cell; "
    "multiply by cell_area and land_fraction for a cell total."
)
GLOBAL_ATTRS = {
    "Conventions": "CF-1.8",
    "title": "fluxbridge gridded net ecosystem exchange",
    "institution": "fluxbridge users (see fluxbridge_config)",
    "references": "Jung et al. 2020, Biogeosciences 17:1343 (FLUXCOM); "
                  "Upton et al. 2024, ACP 24:2555 (dual constraint)",
    "comment": "NEE estimated by machine learning trained on eddy-covariance sites, optionally "
               "constrained by atmospheric inversions; sign: positive to the atmosphere.",
}


def _bounds(values: np.ndarray, name: str) -> np.ndarray:
    step = resolution_of(values, name)
    sign = 1.0 if values.size < 2 or values[1] > values[0] else -1.0
    lower = np.clip(values - sign * step / 2, -90, 90) if name == "lat" else values - step / 2
    upper = np.clip(values + sign * step / 2, -90, 90) if name == "lat" else values + step / 2
    return np.stack([lower, upper], axis=1)


def time_bounds(time: pd.DatetimeIndex, period: Literal["day", "month"]) -> np.ndarray:
    """Start and end of each averaging period (time, 2) as datetime64."""
    offset = pd.DateOffset(days=1) if period == "day" else pd.offsets.MonthBegin(1)
    start = pd.DatetimeIndex(time)
    if period == "month":
        start = start.to_period("M").to_timestamp()
    return np.stack([start.values, (start + offset).values], axis=1)


def gridded_dataset(
    nee: xr.DataArray,
    spread: xr.DataArray | None,
    cell_area: xr.DataArray,
    land_fraction: xr.DataArray,
    period: Literal["day", "month"],
    attrs: dict[str, str],
    n_members: int = 1,
) -> xr.Dataset:
    """The CF-1.8 dataset of gridded NEE (daily or monthly means).

    Parameters
    ----------
    nee
        NEE (time, lat, lon) [g m-2 d-1] of carbon, positive to the atmosphere; may be lazy.
    spread
        Standard deviation across ensemble members [g m-2 d-1], or None for a single model.
    cell_area, land_fraction
        Grid cell area [m2] and land fraction [1] on the same grid.
    period
        ``"day"`` for daily means (time = day start), ``"month"`` for monthly means
        (time = month start).
    attrs
        Global attributes (provenance) added to the CF ones.
    n_members
        Number of ensemble members averaged in ``nee``.

    Returns
    -------
    xr.Dataset
        ``nee`` [, ``nee_spread``], ``cell_area``, ``land_fraction``, ``lat_bnds``, ``lon_bnds``,
        ``time_bnds``, with CF attributes.
    """
    lat = np.asarray(nee["lat"], dtype=float)
    lon = np.asarray(nee["lon"], dtype=float)
    time = pd.DatetimeIndex(nee["time"].values)
    methods = "time: mean area: mean where land"
    ds = xr.Dataset(coords={
        "time": ("time", time.values, {"standard_name": "time", "long_name": "time",
                                       "axis": "T", "bounds": "time_bnds"}),
        "lat": ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                             "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"}),
    })
    ds["time_bnds"] = (("time", "bnds"), time_bounds(time, period))
    ds["lat_bnds"] = (("lat", "bnds"), _bounds(lat, "lat"))
    ds["lon_bnds"] = (("lon", "bnds"), _bounds(lon, "lon"))
    ds["nee"] = (("time", "lat", "lon"), nee.data, {
        "units": "g m-2 d-1",
        "long_name": NEE_LONG_NAME,
        "comment": NEE_COMMENT,
        "cell_methods": methods,
        "cell_measures": "area: cell_area",
        "ensemble_members": np.int32(n_members),
    })
    if spread is not None:
        ds["nee_spread"] = (("time", "lat", "lon"), spread.data, {
            "units": "g m-2 d-1",
            "long_name": "standard deviation of net ecosystem exchange of carbon across "
                         "ensemble members",
            "cell_methods": methods,
            "cell_measures": "area: cell_area",
        })
    ds["cell_area"] = (("lat", "lon"), np.asarray(cell_area, dtype=np.float64), {
        "units": "m2", "standard_name": "cell_area", "long_name": "grid cell area"})
    ds["land_fraction"] = (("lat", "lon"), np.asarray(land_fraction, dtype=np.float32), {
        "units": "1", "standard_name": "land_area_fraction", "long_name": "land area fraction"})
    ds.attrs = {**GLOBAL_ATTRS, **attrs}
    ds.attrs["frequency"] = period
    return ds


def encoding(ds: xr.Dataset, chunk_rows: int, fmt: Literal["netcdf", "zarr"]) -> dict[str, Any]:
    """Encodings: float32 fields compressed in (1 day, ``chunk_rows`` lat, all lon) chunks."""
    n_lat, n_lon = ds.sizes["lat"], ds.sizes["lon"]
    chunks = (1, max(1, min(chunk_rows, n_lat)), n_lon)
    enc: dict[str, Any] = {}
    for name in ("nee", "nee_spread"):
        if name not in ds:
            continue
        if fmt == "netcdf":
            enc[name] = {"dtype": "float32", "zlib": True, "complevel": 1, "shuffle": True,
                         "chunksizes": chunks, "_FillValue": np.float32(np.nan)}
        else:
            enc[name] = {"dtype": "float32", "chunks": chunks, "_FillValue": np.float32(np.nan)}
    time_enc = {"units": TIME_UNITS, "calendar": CALENDAR, "dtype": "float64"}
    enc["time"] = dict(time_enc)
    enc["time_bnds"] = dict(time_enc)
    for name in ("time", "time_bnds", "lat", "lon", "lat_bnds", "lon_bnds", "cell_area"):
        enc.setdefault(name, {})["_FillValue"] = None
    return enc
