"""A tiny hand-built world for the feature tests: predictors, regions and two sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.grid import make_grid
from fluxbridge.regions import region_dataset
from fluxbridge.vocabulary import attrs

RS = ("ndvi", "evi", "nirv", "lst_day", "lst_night")
METEO = ("ta", "vpd", "sw_in", "precip")


def tiny_predictors(n_time: int = 6, resolution: float = 30.0, seed: int = 0) -> xr.Dataset:
    """Predictors on a coarse grid; every value distinct; cell (1, 2) is water."""
    grid = make_grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    time = pd.date_range("2020-03-01", periods=n_time, freq="D")
    rng = np.random.default_rng(seed)
    ds = xr.Dataset(coords={"time": time, "lat": lat, "lon": lon})
    for name in METEO + RS:
        ds[name] = (("time", "lat", "lon"),
                    rng.normal(size=(n_time, lat.size, lon.size)).astype(np.float32),
                    attrs(name))
    lc = rng.integers(1, 17, size=(lat.size, lon.size)).astype(np.int16)
    lc[1, 2] = 0
    lc[:, 0] = 0  # a column of sea
    ds["land_cover"] = (("lat", "lon"), lc, attrs("land_cover"))
    return ds


def tiny_regions(ds: xr.Dataset) -> xr.Dataset:
    lat, lon = ds["lat"].values, ds["lon"].values
    frac = np.ones((lat.size, lon.size))
    frac[:, 0] = 0.0
    frac[0, 3] = 0.0  # no land fraction although the land cover says land
    mask = np.where(frac > 0, 1 + (np.arange(lat.size)[:, None] % 2), 0) * np.ones_like(frac)
    land = xr.DataArray(frac, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        attrs=attrs("land_fraction"))
    return region_dataset(mask.astype(int), {1: "A", 2: "B"}, lat, lon, land=land)


def tiny_sites(pred: xr.Dataset) -> xr.Dataset:
    """Two sites: one at the water cell (1, 2), one at the centre of cell (3, 5)."""
    lat = np.array([pred["lat"].values[1], pred["lat"].values[3] + 1.0])
    lon = np.array([pred["lon"].values[2], pred["lon"].values[5] - 2.0])
    time = pd.date_range("2020-03-02", periods=4, freq="D")
    nee = np.array([[1.0, np.nan, 2.0, 3.0], [-1.0, -2.0, np.nan, np.nan]])
    weight = np.where(np.isfinite(nee), 0.5, np.nan)
    ds = xr.Dataset(coords={"site": ["AA-One", "BB-Two"], "time": time,
                            "lat": ("site", lat), "lon": ("site", lon),
                            "igbp": ("site", ["ENF", "GRA"])})
    ds["nee"] = (("site", "time"), nee, attrs("nee"))
    ds["nee_weight"] = (("site", "time"), weight, attrs("nee_weight"))
    ds["ta"] = (("site", "time"), np.arange(8.0).reshape(2, 4) + 100.0, attrs("ta"))
    return ds


def tiny_world() -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Predictors, regions and sites of the tiny world."""
    pred = tiny_predictors()
    return pred, tiny_regions(pred), tiny_sites(pred)
