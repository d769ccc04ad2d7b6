"""MODIS point tables (real extractions) and gridded composites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.io.modis import decode_band, open_modis, read_modis_points


def test_modis_point_tables(real_data):
    folder = real_data / "modis"
    fapar = folder / "CH-Oe2_modistools_06a1_fapar_2004-2023.csv"
    raw = pd.read_csv(fapar)
    points = read_modis_points(fapar)
    assert len(points) == len(raw) and set(points["site"]) == {"CH-Oe2"}
    np.testing.assert_allclose(points["fpar"], raw["fapar"])
    vi = folder / "MOD13A1_phenofit_10sites.csv"
    raw = pd.read_csv(vi)
    points = read_modis_points(vi)
    assert len(points) == len(raw) and points["site"].nunique() == 10
    assert points["ndvi"].iloc[0] == pytest.approx(raw["NDVI"].iloc[0] * 1e-4)
    assert points["ndvi"].max() <= 1.0 and points["evi"].min() >= -0.2


def test_modis_composites_gap_filled(tmp_path):
    lat, lon = np.array([10.0, -10.0]), np.array([-10.0, 10.0])
    times = pd.date_range("2010-01-01", periods=4, freq="16D")
    raw = np.full((4, 2, 2), 5000, dtype=np.int16)
    raw[1] = -3000  # a cloudy composite: fill value
    raw[2] = 7000
    ds = xr.Dataset({"NDVI": (("time", "lat", "lon"), raw,
                              {"scale_factor": 0.0001, "add_offset": 0.0, "_FillValue": -3000,
                               "valid_range": [-2000, 10000]})},
                    coords={"time": times, "lat": lat, "lon": lon})
    ds.to_netcdf(path := tmp_path / "MOD13C1_2010.nc")
    daily = open_modis([path])
    assert daily["ndvi"].attrs["gap_filled_fraction"] == pytest.approx(0.25)
    day16 = daily["ndvi"].sel(time=times[1]).values
    np.testing.assert_allclose(day16, 0.6, rtol=1e-5)  # between 0.5 and 0.7
    decoded = decode_band(ds["NDVI"], str(path))
    assert bool(decoded.isel(time=1).isnull().all())
    cycle = open_modis([path], seasonal_cycle=True)
    assert cycle.sizes == daily.sizes
