"""Gridded inversion files as regional monthly targets."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.constants import MOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.grid import cell_area
from fluxbridge.io.inversions import read_inversions
from fluxbridge.regions import region_dataset


def _gridded(path, flux, units="mol m-2 s-1", calendar="standard", times=None):
    lat = np.array([45.0, 15.0, -15.0, -45.0])
    lon = np.array([-135.0, -45.0, 45.0, 135.0])
    times = pd.date_range("2010-01-01", periods=3, freq="MS") if times is None else times
    data = np.full((len(times), lat.size, lon.size), flux)
    ds = xr.Dataset({"bio_flux_opt": (("time", "latitude", "longitude"), data, {"units": units}),
                     "fire_flux_imp": (("time", "latitude", "longitude"), np.zeros_like(data),
                                       {"units": units})},
                    coords={"time": times, "latitude": lat, "longitude": lon})
    ds["time"].encoding.update(units="days since 2000-01-01", calendar=calendar)
    ds.attrs["inversion_name"] = path.stem
    ds.to_netcdf(path)
    return path


@pytest.fixture
def quadrants():
    lat = np.array([45.0, 15.0, -15.0, -45.0])
    lon = np.array([-135.0, -45.0, 45.0, 135.0])
    mask = np.zeros((4, 4), dtype=int)
    mask[0, :] = 1  # the northern row
    land = xr.DataArray(np.ones((4, 4)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return region_dataset(mask, {1: "North row"}, lat, lon, land=land)


def test_gridded_constant_flux_integrates_to_area_times_days(tmp_path, quadrants):
    flux = 1e-7  # mol m-2 s-1
    paths = [_gridded(tmp_path / "a.nc", flux), _gridded(tmp_path / "b.nc", 2 * flux)]
    table = tmp_path / "corrections.csv"
    table.write_text("region,time,fire_tgc\nNorth row,2010-01,5.0\n")
    targets = read_inversions(paths, quadrants, corrections=table)
    area = float(cell_area(quadrants["lat"], quadrants["lon"]).isel(lat=0).sum())
    expected = flux * MOL_M2_S_TO_GC_M2_D * area * 31 / 1e12
    nbe = targets["nbe"].sel(region=1, time="2010-01-01")
    np.testing.assert_allclose(nbe.values, [expected, 2 * expected], rtol=1e-10)
    assert targets["nee"].sel(member="a", region=1, time="2010-01-01").item() == pytest.approx(
        expected - 5.0)
    record = json.loads(targets.attrs["corrections"])
    assert record[0]["term"] == "fire" and record[0]["sign"] == -1


@pytest.mark.parametrize(("change", "variable"), [
    ("no_units", "bio_flux_opt"),
    ("wrong_units", "bio_flux_opt"),
    ("calendar", "time"),
    ("duplicate", "time"),
    ("unordered", "time"),
])
def test_bad_gridded_inversion(tmp_path, quadrants, change, variable):
    path = tmp_path / "bad.nc"
    times = None
    if change == "duplicate":
        times = pd.DatetimeIndex(["2010-01-01", "2010-01-15", "2010-02-01"])
    elif change == "unordered":
        times = pd.DatetimeIndex(["2010-02-01", "2010-01-01", "2010-03-01"])
    units = {"no_units": None, "wrong_units": "furlongs"}.get(change, "mol m-2 s-1")
    _gridded(path, 1e-7, units=units or "x", times=times)
    if change in ("no_units", "calendar"):
        with netCDF4.Dataset(path, "a") as nc:
            if change == "no_units":
                nc["bio_flux_opt"].delncattr("units")
            else:
                nc["time"].calendar = "martian"
    with pytest.raises(InputError) as err:
        read_inversions([path], quadrants)
    assert str(path) in str(err.value) and variable in str(err.value)


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_model_calendars_give_the_totals_of_the_standard_calendar(tmp_path, quadrants, calendar):
    flux = 1e-7  # mol m-2 s-1, constant: a month's total is rate x area x its Gregorian days
    reference = read_inversions([_gridded(tmp_path / "std.nc", flux)], quadrants)
    path = _gridded(tmp_path / f"{calendar}.nc", flux, calendar=calendar)
    with netCDF4.Dataset(path) as nc:
        assert nc["time"].calendar == calendar
    other = read_inversions([path], quadrants)
    np.testing.assert_array_equal(other["time"].values, reference["time"].values)
    np.testing.assert_allclose(other["nbe"].values, reference["nbe"].values, rtol=1e-12)
    area = float(cell_area(quadrants["lat"], quadrants["lon"]).isel(lat=0).sum())
    days = np.array([31, 28, 31])
    np.testing.assert_allclose(other["nbe"].sel(region=1).squeeze().values,
                               flux * MOL_M2_S_TO_GC_M2_D * area * days / 1e12, rtol=1e-10)
