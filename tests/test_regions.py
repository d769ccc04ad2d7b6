"""Carrying a region set onto another grid: fractional overlap, majority and nearest."""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxbridge.grid import make_grid
from fluxbridge.regions import region_dataset, region_fractions, regrid_mask


def _halves(resolution):
    grid = make_grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    mask = np.where(lon[None, :] < 0, 1, 2) * np.ones((lat.size, 1), dtype=int)
    mask[np.abs(lat) > 60] = 0
    land = xr.DataArray(np.ones(mask.shape), dims=("lat", "lon"),
                        coords={"lat": lat, "lon": lon})
    return region_dataset(mask, {1: "West", 2: "East"}, lat, lon, land=land)


def test_majority_regrid_from_finer_mask():
    fine = _halves(1.0)
    target = make_grid(20.0).assign(land_fraction=xr.DataArray(
        np.ones((9, 18)), dims=("lat", "lon")))
    frac = region_fractions(fine, target)
    assert float(frac.sum("region").max()) <= 1.0 + 1e-12
    # the 50..70N target row is covered up to 60N (|lat| > 60 belongs to no region): a share
    # of its spherical area, not of its degrees
    sin = np.sin(np.deg2rad([50.0, 60.0, 70.0]))
    np.testing.assert_allclose(frac.sel(region=1, lat=60.0, lon=-170.0),
                               (sin[1] - sin[0]) / (sin[2] - sin[0]), rtol=1e-10)
    np.testing.assert_allclose(frac.sel(region=1, lat=0.0).values[:9], 1.0)
    out = regrid_mask(fine, target)
    assert out.attrs["regrid_method"] == "majority"
    np.testing.assert_array_equal(out["region"].sel(lat=0.0).values, [1] * 9 + [2] * 9)
    assert int(out["region"].sel(lat=-90 + 10, lon=10.0)) == 0
    nearest = regrid_mask(_halves(20.0), make_grid(10.0).assign(land_fraction=xr.DataArray(
        np.ones((18, 36)), dims=("lat", "lon"))))
    assert nearest.attrs["regrid_method"] == "nearest"
