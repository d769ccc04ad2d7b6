"""Canonical predictors opened lazily from NetCDF files or a Zarr store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.predictors import HDF5_CHUNK_CACHE, limit_chunk_cache, open_predictors


@pytest.fixture
def predictors() -> xr.Dataset:
    """Four days of air temperature [degC] on a 2 x 3 grid, one value per cell and day."""
    time = pd.date_range("2010-01-01", periods=4, freq="D")
    values = np.arange(24, dtype="float32").reshape(4, 2, 3)
    return xr.Dataset({"ta": (("time", "lat", "lon"), values, {"units": "degC"})},
                      coords={"time": time, "lat": [-45.0, 45.0], "lon": [0.0, 120.0, 240.0]})


def test_one_netcdf_file_opens_lazily_as_written(predictors, tmp_path):
    predictors.to_netcdf(tmp_path / "p.nc")
    with open_predictors(str(tmp_path / "p.nc")) as ds:
        xr.testing.assert_identical(ds.load(), predictors)


def test_several_netcdf_files_are_combined_by_time(predictors, tmp_path):
    files = [tmp_path / "a.nc", tmp_path / "b.nc"]
    predictors.isel(time=slice(2, 4)).to_netcdf(files[1])
    predictors.isel(time=slice(0, 2)).to_netcdf(files[0])
    with open_predictors(files[::-1]) as ds:
        assert ds["ta"].chunks is not None
        np.testing.assert_array_equal(ds["ta"].values, predictors["ta"].values)


def test_a_zarr_store_opens_with_dask(predictors, tmp_path):
    predictors.to_zarr(tmp_path / "p.zarr")
    ds = open_predictors(tmp_path / "p.zarr")
    assert ds["ta"].chunks is not None
    np.testing.assert_array_equal(ds["ta"].values, predictors["ta"].values)
    assert ds["ta"].attrs["units"] == "degC"


def test_a_missing_file_is_named(predictors, tmp_path):
    predictors.to_netcdf(tmp_path / "a.nc")
    with pytest.raises(InputError, match=r"b\.nc.*not found"):
        open_predictors([tmp_path / "a.nc", tmp_path / "b.nc"])


def test_the_hdf5_chunk_cache_is_bounded():
    netCDF4 = pytest.importorskip("netCDF4")
    before = netCDF4.get_chunk_cache()
    try:
        netCDF4.set_chunk_cache(4 * HDF5_CHUNK_CACHE, before[1], before[2])
        limit_chunk_cache()
        assert netCDF4.get_chunk_cache()[0] == HDF5_CHUNK_CACHE
        netCDF4.set_chunk_cache(HDF5_CHUNK_CACHE // 2, before[1], before[2])
        limit_chunk_cache()  # a smaller cache is left as it is
        assert netCDF4.get_chunk_cache()[0] == HDF5_CHUNK_CACHE // 2
    finally:
        netCDF4.set_chunk_cache(*before)
