"""Latitude-band targets from the real GCB2018 regional and zonal inversion files."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.inversion_bands import (
    band_weights,
    read_gcb_regional,
    read_gcb_regional_file,
    read_zonal_inversion,
    read_zonal_inversions,
)
from fluxbridge.regions import LATITUDE_BAND_NAMES
from fluxbridge.schema import check_targets


def _folder(real_data, name):
    return real_data / "inversions" / name


def test_gcb_regional_ensemble(real_data):
    paths = sorted(_folder(real_data, "gcb2018_regional").glob("*_month.nc"))
    assert len(paths) == 6
    targets = check_targets(read_gcb_regional(paths))
    assert list(targets["member"].values) == [p.name.removesuffix("_month.nc") for p in paths]
    assert list(targets["region"].values) == [1, 2, 3]
    assert list(targets["region_name"].values) == [LATITUDE_BAND_NAMES[i] for i in (1, 2, 3)]
    assert targets["time"].dtype == np.dtype("datetime64[ns]")
    assert json.loads(targets.attrs["corrections"])[0]["term"] == "none"
    assert float(abs(targets["correction"]).max()) == 0.0
    # CAMS: 468 months from 1979-01; the three land bands add up to Earth_Land [PgC/month]
    with netCDF4.Dataset(paths[0]) as nc:
        earth = np.asarray(nc["Earth_Land"][:], dtype=float)
        north = np.asarray(nc["North_Land"][:], dtype=float)
    cams = targets["nbe"].sel(member="CAMS").dropna("time", how="all")
    assert cams.sizes["time"] == 468
    assert pd.Timestamp(cams["time"].values[0]) == pd.Timestamp("1979-01-01")
    assert pd.Timestamp(cams["time"].values[-1]) == pd.Timestamp("2017-12-01")
    np.testing.assert_allclose(cams.sel(region=1).values, north * 1000)
    np.testing.assert_allclose(cams.sum("region").values, earth * 1000, atol=1.0)
    assert float(targets["nee_spread"].mean()) > 0


def test_zonal_ensemble_by_hand(real_data):
    paths = sorted(_folder(real_data, "zonal").glob("*_fluxes_za_ts_monthly.nc"))
    assert len(paths) == 8
    targets = check_targets(read_zonal_inversions(paths))
    assert targets.sizes["member"] == 8 and list(targets["region"].values) == [1, 2, 3]
    ct = next(p for p in paths if p.name.startswith("CT2017"))
    with netCDF4.Dataset(ct) as nc:
        lat = np.asarray(nc["lat"][:])
        first = np.asarray(nc["SFCO2_LND"][0, :], dtype=float)  # January 2000, 1-degree bands
    north_pg_yr = first[lat > 30].sum() * 1.0
    expected = north_pg_yr * 1000 * 31 / 366
    got = targets["nbe"].sel(member="CT2017", region=1, time="2000-01-01").item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_zonal_integral_with_pole_nodes_is_trapezoid(real_data):
    path = _folder(real_data, "zonal") / "CAMSv20r1_fluxes_za_ts_monthly.nc"
    with netCDF4.Dataset(path) as nc:
        lat = np.asarray(nc["lat"][:])
        flux = np.asarray(nc["SFCO2_LND"][:], dtype=float)
    assert lat[0] == -90 and lat[-1] == 90  # nodes at the poles: edges at the midpoints
    nbe = read_zonal_inversion(path)
    times = pd.DatetimeIndex(nbe["time"].values)
    scale = 1000 * times.days_in_month / np.where(times.is_leap_year, 366, 365)
    np.testing.assert_allclose(nbe.sum("region").values,
                               np.trapezoid(flux, lat, axis=1) * scale, rtol=1e-10)


def test_band_weights_split_straddling_cells():
    lat = np.arange(-80.0, 81.0, 10.0)  # cells 25..35 and -35..-25 straddle the limits
    w = band_weights(lat)
    np.testing.assert_allclose(w.sum("region").values, 10.0)
    assert float(w.sel(region=1, lat=30.0)) == pytest.approx(5.0)
    assert float(w.sel(region=2, lat=30.0)) == pytest.approx(5.0)
    assert float(w.sel(region=3, lat=-30.0)) == pytest.approx(5.0)
    assert float(w.sel(region=2, lat=0.0)) == pytest.approx(10.0)


def test_bad_band_files(tmp_path, real_data):
    src = _folder(real_data, "gcb2018_regional") / "CAMS_month.nc"
    ds = xr.open_dataset(src, decode_times=False)
    ds["North_Land"].attrs["units"] = "mol m-2 s-1"
    wrong = tmp_path / "WRONG_month.nc"
    ds.to_netcdf(wrong)
    with pytest.raises(InputError, match="North_Land"):
        read_gcb_regional_file(wrong)
    ds = xr.open_dataset(src, decode_times=False).drop_vars("South_Land")
    ds.to_netcdf(missing := tmp_path / "MISSING_month.nc")
    with pytest.raises(InputError, match="South_Land"):
        read_gcb_regional_file(missing)
    zonal = xr.open_dataset(_folder(real_data, "zonal") / "CT2017_fluxes_za_ts_monthly.nc",
                            decode_times=False)
    zonal["SFCO2_LND"] = zonal["SFCO2_LND"] * np.nan
    zonal.to_netcdf(empty := tmp_path / "EMPTY_fluxes_za_ts_monthly.nc")
    with pytest.raises(InputError, match="missing"):
        read_zonal_inversion(empty)
    zonal = xr.open_dataset(_folder(real_data, "zonal") / "CT2017_fluxes_za_ts_monthly.nc",
                            decode_times=False)
    del zonal["SFCO2_LND"].attrs["units"]
    zonal.to_netcdf(nounits := tmp_path / "NOUNITS_fluxes_za_ts_monthly.nc")
    with pytest.raises(InputError, match="units"):
        read_zonal_inversion(nounits)
