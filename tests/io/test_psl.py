"""NOAA PSL monthly and long-term-mean NetCDF: canonical names, units, grid and climatology."""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import make_grid
from fluxbridge.io.psl import read_psl

METEO = "grids/meteorology"


def psl_file(path, name: str, units: str, values: np.ndarray, ltm: bool,
             months: list[int] | None = None):
    """A PSL-layout file on a 90° grid (lat from 45N, lon 0..270), values (time, lat, lon).

    ``ltm``: 12 months stamped in year 1 with ``climatology_bounds`` 1981-2010, as
    ``doMonthLTM`` writes them; else month starts of 2018, hours since 1800-01-01.
    """
    months = months or list(range(1, values.shape[0] + 1))
    if ltm:
        units_t = "days since 1800-01-01 00:00:0.0"
        stamps = [cftime.DatetimeGregorian(1, m, 1) for m in months]
        bounds = [[cftime.DatetimeGregorian(1981, m, 1), cftime.DatetimeGregorian(2010, m, 28)]
                  for m in months]
    else:
        units_t = "hours since 1800-01-01"
        stamps = [cftime.DatetimeGregorian(2018, m, 1) for m in months]
    time = cftime.date2num(stamps, units_t, calendar="standard")
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), values.astype(np.float32), {"units": units})},
        coords={"time": ("time", time, {"units": units_t}),
                "lat": ("lat", [45.0, -45.0], {"units": "degrees_north"}),
                "lon": ("lon", [0.0, 90.0, 180.0, 270.0], {"units": "degrees_east"})},
        attrs={"title": "test"})
    if ltm:
        ds["time"].attrs["climatology"] = "climatology_bounds"
        ds["climatology_bounds"] = (("time", "nbnds"), cftime.date2num(
            bounds, "hours since 1800-01-01", calendar="standard"),
            {"units": "hours since 1800-01-01"})
    ds.to_netcdf(path)
    return path


def lon_signal(n_time: int) -> np.ndarray:
    """Value = 100 * month + longitude/10 + (10 in the south)."""
    month = np.arange(1, n_time + 1)[:, None, None]
    return 100.0 * month + np.array([0, 9, 18, 27])[None, None, :] + np.array(
        [0, 10])[None, :, None]


def test_long_term_mean_is_a_seasonal_cycle_in_degc(tmp_path):
    values = lon_signal(12)
    order = [7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6]  # stored from July
    path = psl_file(tmp_path / "air.mon.ltm.nc", "air", "degC", values[np.array(order) - 1],
                    ltm=True, months=order)
    ds = read_psl(path)
    assert ds.attrs["climatology"] == "true"
    assert ds.attrs["climatology_period"] == "1981-2010"
    assert "time" not in ds.dims and list(ds["month"].values) == list(range(1, 13))
    ta = ds["ta"]
    assert ta.attrs["units"] == "degC" and ta.attrs["source_variable"] == "air"
    assert list(ds["lat"].values) == [45.0, -45.0]  # canonical: descending
    assert list(ds["lon"].values) == [-180.0, -90.0, 0.0, 90.0]
    # March at 45S, 270E (= -90E): 300 + 27 + 10
    assert float(ta.sel(month=3, lat=-45.0, lon=-90.0)) == 337.0


def test_monthly_series_in_kelvin_becomes_degc_on_month_starts(tmp_path):
    values = 273.15 + lon_signal(8) / 100.0
    ds = read_psl(psl_file(tmp_path / "air.mon.mean.nc", "air", "degK", values, ltm=False))
    assert ds.attrs["climatology"] == "false" and "climatology_period" not in ds.attrs
    assert list(ds["time"].values) == list(pd.date_range("2018-01-01", periods=8, freq="MS"))
    assert float(ds["ta"].sel(time="2018-02-01", lat=45.0, lon=0.0)) == pytest.approx(
        2.0, abs=1e-4)


def test_precipitation_rate_in_kg_m2_s_becomes_mm_per_day(tmp_path):
    values = np.full((12, 2, 4), 1.0 / 86400.0)  # 1 kg m-2 per day
    values[0, 0, 0] = -1e-9  # a small negative from packing is no precipitation
    ds = read_psl(psl_file(tmp_path / "prate.mon.ltm.nc", "prate", "kg/m^2/s", values, True))
    precip = ds["precip"]
    assert precip.attrs["units"] == "mm d-1"
    assert float(precip.sel(month=2, lat=45.0, lon=0.0)) == pytest.approx(1.0, rel=1e-6)
    assert float(precip.sel(month=1, lat=45.0, lon=0.0)) == 0.0


@pytest.mark.parametrize("change, match", [
    ("units", "units 'furlong'"),
    ("months", "each of the 12 months"),
    ("name", "no PSL variable"),
])
def test_bad_psl_files_are_refused_in_one_line(tmp_path, change, match):
    name, units, months = "air", "degC", list(range(1, 13))
    if change == "units":
        units = "furlong"
    if change == "months":
        months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11]
    if change == "name":
        name = "tmp"
    path = psl_file(tmp_path / "x.nc", name, units, lon_signal(12), True, months)
    with pytest.raises(InputError, match=match) as err:
        read_psl(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_onto_the_model_grid_by_area(tmp_path):
    values = np.broadcast_to(lon_signal(12)[:, :1, :1], (12, 2, 4))  # one value a month
    ds = read_psl(psl_file(tmp_path / "air.mon.ltm.nc", "air", "degC", values, True),
                  grid=make_grid(30.0))
    assert ds.sizes == {"month": 12, "lat": 6, "lon": 12}
    np.testing.assert_allclose(ds["ta"].sel(month=5), 500.0)
    assert ds.attrs["climatology"] == "true"


# --- the real files ---------------------------------------------------------------------

def test_real_ncep_air_ltm(real_data):
    ds = read_psl(real_data / METEO / "ncep_r1_air.sig995.mon.ltm.1981-2010.nc")
    assert ds.attrs["climatology"] == "true" and ds.attrs["climatology_period"] == "1981-2010"
    ta = ds["ta"]
    assert ta.attrs["units"] == "degC" and ta.sizes == {"month": 12, "lat": 73, "lon": 144}
    assert float(ds["lon"].min()) == -180.0 and float(ds["lat"][0]) == 90.0
    # July warmer than January in the north, the reverse in the south
    north = ta.sel(lat=slice(70, 30)).mean(("lat", "lon"))
    south = ta.sel(lat=slice(-30, -70)).mean(("lat", "lon"))
    assert float(north.sel(month=7)) > float(north.sel(month=1)) + 10
    assert float(south.sel(month=1)) > float(south.sel(month=7))
    # global annual mean near-surface air temperature about 14 °C (1981-2010)
    weights = np.cos(np.deg2rad(ds["lat"]))
    assert 12.0 < float(ta.weighted(weights).mean()) < 16.0


def test_real_cmap_precip_ltm(real_data):
    ds = read_psl(real_data / METEO / "cmap_precip.mon.ltm.1981-2010.nc", grid=make_grid(2.0))
    precip = ds["precip"]
    assert precip.attrs["units"] == "mm d-1" and ds.attrs["climatology"] == "true"
    assert precip.sizes == {"month": 12, "lat": 90, "lon": 180}
    # global mean precipitation about 2.7 mm/day
    weights = np.cos(np.deg2rad(ds["lat"]))
    assert 2.4 < float(precip.weighted(weights).mean()) < 3.0


def test_real_ghcn_cams_monthly_series(real_data):
    ds = read_psl(real_data / METEO / "ghcn_cams_air.mon.mean.2018-01_2018-08.nc")
    assert ds.attrs["climatology"] == "false"
    assert list(ds["time"].values) == list(pd.date_range("2018-01", periods=8, freq="MS"))
    ta = ds["ta"]
    assert ta.attrs["units"] == "degC" and ta.attrs["source_units"] == "degK"
    # Siberia cold in January, warm in July; nothing left in kelvin
    assert float(ta.sel(time="2018-01-01").sel(lat=62.25, lon=129.75)) < -25
    assert float(ta.sel(time="2018-07-01").sel(lat=62.25, lon=129.75)) > 10
    assert float(ta.max()) < 60
