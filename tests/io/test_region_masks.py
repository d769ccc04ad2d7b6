"""Region masks from NetCDF integer masks, the real TransCom-3 map among them."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.grid import make_grid
from fluxbridge.io.region_masks import read_region_mask
from fluxbridge.regions import TRANSCOM_NAMES, region_names


def test_transcom_real_mask(real_data):
    path = real_data / "regions" / "TRANSCOM_Map_MZT.nc"
    with netCDF4.Dataset(path) as nc:
        raw = np.asarray(nc["regions"][:])
        lat = np.asarray(nc["lat"][:])
        lon = np.asarray(nc["lon"][:])
    regions = read_region_mask(path)
    assert region_names(regions) == TRANSCOM_NAMES
    assert regions.sizes == {"lat": lat.size, "lon": lon.size}
    for rid in range(1, 12):  # reordering keeps every cell; oceans 12..22 become 0
        assert int((regions["region"] == rid).sum()) == int((raw == rid).sum())
    i = int(np.argmin(abs(lat - 50))), int(np.argmin(abs(lon - 10)))  # central Europe
    assert raw[i] == 11
    assert int(regions["region"].sel(lat=lat[i[0]], lon=lon[i[1]])) == 11
    # a mask on another grid: refused when regridding is off, majority when finer
    coarse = make_grid(10.0)
    with pytest.raises(GridMismatchError):
        read_region_mask(path, grid=coarse, regrid=False)
    out = read_region_mask(path, grid=coarse)
    assert out.attrs["regrid_method"] == "majority"
    assert set(region_names(out)) == set(TRANSCOM_NAMES)


def test_bad_region_masks(tmp_path):
    ds = xr.Dataset({"regions": (("lat", "lon"), np.ones((3, 4)))},
                    coords={"lat": [-95.0, 0.0, 95.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    ds.to_netcdf(path := tmp_path / "mask.nc")
    with pytest.raises(InputError) as err:
        read_region_mask(path)
    assert str(path) in str(err.value) and "lat" in str(err.value)
    two = xr.Dataset({"a": (("lat", "lon"), np.ones((2, 2), dtype=np.int16)),
                      "b": (("lat", "lon"), np.ones((2, 2), dtype=np.int16))},
                     coords={"lat": [45.0, -45.0], "lon": [-90.0, 90.0]})
    two.to_netcdf(path2 := tmp_path / "two.nc")
    with pytest.raises(InputError, match="variable"):
        read_region_mask(path2)
