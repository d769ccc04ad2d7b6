"""ERA5 single levels: both CDS layouts, hourly and daily, CDS zip, bad variants."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.era5 import extract_at_sites, open_era5


def _esat(t_kelvin: float) -> float:  # ECMWF Tetens over water, FORMATS.md section 2
    return 611.21 * np.exp(17.502 * (t_kelvin - 273.16) / (t_kelvin - 32.19))


def test_hourly_new_layout(tmp_path, hourly_times, make_era5):
    path = tmp_path / "era5_hourly.nc"
    make_era5(hourly_times).to_netcdf(path)
    ds = open_era5(path).load()
    assert ds.sizes["time"] == 2 and ds["time"].dtype == np.dtype("datetime64[ns]")
    # canonical grid: latitude descending, longitude ascending in [-180, 180)
    assert np.all(np.diff(ds["lat"].values) < 0)
    np.testing.assert_allclose(ds["lon"].values, np.arange(-180.0, 180.0, 45.0))
    # t2m carries lon / 100 [K]: lon -45 is source lon 315
    assert float(ds["ta"].sel(lon=-45.0).isel(time=0, lat=0)) == pytest.approx(
        293.16 + 3.15 - 273.15, abs=1e-4)
    # day 1 sums hours 01..24 (24 values); day 2 lacks its hour 24 -> unknown, not short
    assert float(ds["sw_in"].isel(time=0, lat=0, lon=0)) == pytest.approx(360_000 * 24 / 86400)
    assert bool(ds["sw_in"].isel(time=1).isnull().all())
    assert float(ds["precip"].isel(time=0, lat=0, lon=0)) == pytest.approx(24.0, rel=1e-5)
    vpd = (_esat(293.16 + 1.8) - _esat(283.16 + 1.8)) / 100  # lon 180 -> +1.8 K on both
    assert float(ds["vpd"].sel(lon=-180.0).isel(time=0, lat=0)) == pytest.approx(vpd, rel=1e-4)
    for name in ("ta", "vpd", "sw_in", "precip"):
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"]


def test_legacy_layout_packed_with_expver(tmp_path, make_era5):
    times = pd.date_range("2010-01-01", periods=3, freq="D")
    new = make_era5(times, ssrd=8.64e6, tp=0.002).drop_vars(["expver", "number"])
    legacy = new.rename(valid_time="time").sortby("latitude")  # ascending latitudes
    # ERA5 (expver 1) misses the last day, ERA5T (expver 5) has only that day
    stacked = xr.concat([legacy.where(legacy["time"] < times[-1]),
                         legacy.where(legacy["time"] == times[-1])], dim="expver")
    stacked = stacked.assign_coords(expver=[1, 5]).transpose("time", "expver", ...)
    encoding = {v: {"dtype": "int16", "scale_factor": 0.01 if v in ("t2m", "d2m") else
                    (400.0 if v == "ssrd" else 1e-6), "add_offset": 250.0 if v in
                    ("t2m", "d2m") else 0.0, "_FillValue": -32767} for v in stacked.data_vars}
    path = tmp_path / "era5_legacy.nc"
    stacked["time"].encoding.update(units="hours since 1900-01-01", dtype="int32")
    stacked.to_netcdf(path, encoding=encoding)
    ds = open_era5(path).load()
    assert ds.sizes["time"] == 3 and not bool(ds["ta"].isnull().any())
    np.testing.assert_allclose(ds["sw_in"].values, 100.0, rtol=1e-3)  # daily J m-2 / 86400
    np.testing.assert_allclose(ds["precip"].values, 2.0, rtol=1e-3)
    assert np.all(np.diff(ds["lat"].values) < 0)


def test_cds_zip_of_instant_and_accum(tmp_path, hourly_times, make_era5):
    ds = make_era5(hourly_times)
    archive = tmp_path / "era5.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for kind, names in (("instant", ["t2m", "d2m"]), ("accum", ["ssrd", "tp"])):
            member = tmp_path / f"data_stream-oper_stepType-{kind}.nc"
            ds[names].to_netcdf(member)
            zf.write(member, member.name)
    single = tmp_path / "single.nc"
    ds.to_netcdf(single)
    xr.testing.assert_allclose(open_era5(archive).load(), open_era5(single).load())


@pytest.mark.parametrize(("change", "variable"), [
    ("drop_d2m", "d2m"),
    ("wrong_units", "ssrd"),
    ("no_units", "tp"),
    ("latitude_out_of_range", "latitude"),
    ("unknown_calendar", "time"),
    ("duplicate_time", "time"),
])
def test_bad_era5(tmp_path, hourly_times, change, variable, make_era5):
    ds = make_era5(hourly_times)
    if change == "drop_d2m":
        ds = ds.drop_vars("d2m")
    elif change == "wrong_units":
        ds["ssrd"].attrs["units"] = "W m**-2"
    elif change == "no_units":
        del ds["tp"].attrs["units"]
    elif change == "latitude_out_of_range":
        ds = ds.assign_coords(latitude=ds["latitude"] * 2)
    elif change == "duplicate_time":
        ds = ds.assign_coords(valid_time=np.repeat(ds["valid_time"].values[::2], 2))
        ds["valid_time"].encoding.update(units="seconds since 1970-01-01", dtype="int64")
    path = tmp_path / "bad.nc"
    ds.to_netcdf(path)
    if change == "unknown_calendar":
        import netCDF4

        with netCDF4.Dataset(path, "a") as nc:
            nc["valid_time"].calendar = "martian"
    with pytest.raises(InputError) as err:
        open_era5(path)
    assert str(path) in str(err.value) and variable in str(err.value)


def test_not_netcdf(tmp_path):
    path = tmp_path / "era5.nc"
    path.write_bytes(b"CDF\x01 truncated")
    with pytest.raises(InputError, match="NetCDF"):
        open_era5(path)


def test_extract_at_sites_nearest_land(tmp_path, make_era5):
    times = pd.date_range("2010-01-01", periods=2, freq="D")
    path = tmp_path / "era5_daily.nc"
    make_era5(times).to_netcdf(path)
    ds = open_era5(path).load()
    land = xr.zeros_like(ds["ta"].isel(time=0, drop=True))
    land.loc[{"lat": 22.5, "lon": 90.0}] = 1.0
    out = extract_at_sites(ds, np.array([22.5, 30.0]), np.array([45.0, 80.0]), land=land)
    assert out["ta"].dims[0] == "site" and out.sizes["site"] == 2
    expected = float(ds["ta"].sel(lat=22.5, lon=90.0).isel(time=0))
    np.testing.assert_allclose(out["ta"].isel(time=0).values, expected)
