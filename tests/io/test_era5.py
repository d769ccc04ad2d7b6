"""ERA5 single levels: both CDS layouts, hourly and daily, CDS zip, bad variants."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.era5 import open_era5


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


def test_one_variable_per_file_over_two_periods(tmp_path, make_era5):
    """A CDS set of one file per variable and period reads as the same file merged."""
    times = pd.date_range("2010-12-30 00:00", periods=24 * 4, freq="h")
    whole = make_era5(times)
    whole.to_netcdf(merged := tmp_path / "merged.nc")
    paths = []
    for k, part in enumerate((slice(0, 48), slice(48, None))):
        for name in ("t2m", "d2m", "ssrd", "tp"):
            paths.append(tmp_path / f"era5_{name}_{k}.nc")
            whole[[name]].isel(valid_time=part).to_netcdf(paths[-1])
    expected = open_era5(merged).load()
    got = open_era5(sorted(paths)).load()
    assert got.sizes == expected.sizes
    for name in ("ta", "vpd", "sw_in", "precip"):
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)


def _packed_hourly(times: pd.DatetimeIndex, seed: int, legacy: bool) -> tuple[xr.Dataset, dict]:
    """Hourly ERA5 with gaps (fill values), int16 packed like legacy CDS files."""
    rng = np.random.default_rng(seed)
    shape = (times.size, 3, 5)
    t2m = 280.0 + 10.0 * rng.random(shape)
    fields = {"t2m": t2m, "d2m": t2m - 8.0 * rng.random(shape),
              "ssrd": 2.0e6 * rng.random(shape), "tp": rng.exponential(4e-4, shape)}
    fields["tp"][rng.random(shape) < 0.5] = 0.0
    for values in fields.values():
        values[rng.random(shape) < 0.02] = np.nan
    units = {"t2m": "K", "d2m": "K", "ssrd": "J m**-2", "tp": "m"}
    dim = "time" if legacy else "valid_time"
    ds = xr.Dataset({n: ((dim, "latitude", "longitude"), v, {"units": units[n]})
                     for n, v in fields.items()},
                    coords={dim: times.values, "latitude": [50.0, 49.5, 49.0],
                            "longitude": np.arange(5) * 0.5})
    ds[dim].encoding.update(units="hours since 1900-01-01", dtype="int32")
    ranges = {"t2m": (250.0, 300.0), "d2m": (250.0, 300.0), "ssrd": (0.0, 2.5e6),
              "tp": (0.0, 0.01)}
    encoding = {n: {"dtype": "int16", "scale_factor": (hi - lo) / 65533.0 * (1 + seed / 10),
                    "add_offset": (hi + lo) / 2.0, "_FillValue": -32767}
                for n, (lo, hi) in ranges.items()}
    return ds, encoding


def _daily_in_memory(paths) -> dict[str, np.ndarray]:
    """The daily predictors computed plainly: whole files in float64, a loop over the days."""
    parts = [xr.open_dataset(p).load() for p in paths]
    parts = [d.rename(valid_time="time") if "valid_time" in d.dims else d for d in parts]
    ds = xr.concat(parts, dim="time").sortby("latitude", ascending=False)
    hours = pd.DatetimeIndex(ds["time"].values)
    values = {n: ds[n].values.astype(np.float64) for n in ("t2m", "d2m", "ssrd", "tp")}
    vpd = np.clip(_esat(values["t2m"]) - _esat(values["d2m"]), 0, None) / 100
    days = hours.floor("D").unique()
    out: dict[str, list] = {"ta": [], "vpd": [], "sw_in": [], "precip": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: mean of nothing
        for day in days:
            inst = np.asarray(hours.floor("D") == day)
            acc = np.asarray((hours - pd.Timedelta(hours=1)).floor("D") == day)
            out["ta"].append(np.nanmean(values["t2m"][inst], axis=0) - 273.15)
            out["vpd"].append(np.nanmean(vpd[inst], axis=0))
            for name, source, factor in (("sw_in", "ssrd", 1 / 86400), ("precip", "tp", 1000)):
                hourly = values[source][acc]
                total = hourly.sum(axis=0) if hourly.shape[0] == 24 else np.nan + hourly[0]
                out[name].append(total * factor)
    result = {n: np.stack(v) for n, v in out.items()}
    result["precip"] = np.clip(result["precip"], 0, None)
    return result


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("hours", ["regular", "gap"])
def test_chunked_daily_equals_in_memory(tmp_path, monkeypatch, legacy, hours):
    """Lazy, chunked, float32 unpacking gives the daily values of a plain float64 computation.

    Two files with their own packing, a record starting at 05:00 and ending mid-day (partial
    days), fill values, chunks of two days; ``gap`` drops hours (the group-by path).
    """
    import fluxbridge.io.era5_daily as era5_daily

    monkeypatch.setattr(era5_daily, "CHUNK_VALUES", 2 * 24 * 15)
    times = pd.date_range("2010-01-01 05:00", periods=24 * 7 + 7, freq="h")
    if hours == "gap":
        times = times.delete(slice(50, 53))
    paths = []
    for i, part in enumerate((times[:80], times[80:])):
        ds, encoding = _packed_hourly(part, seed=i, legacy=legacy)
        paths.append(tmp_path / f"era5_{i}.nc")
        ds.to_netcdf(paths[-1], encoding=encoding)
    got = open_era5(paths)
    assert all(got[n].chunks is not None for n in got.data_vars)
    got = got.load()
    expected = _daily_in_memory(paths)
    assert got.sizes["time"] == 8 and all(got[n].dtype == np.float32 for n in got.data_vars)
    for name in ("ta", "vpd", "sw_in", "precip"):
        e = expected[name]
        np.testing.assert_array_equal(np.isnan(got[name].values), np.isnan(e), err_msg=name)
        np.testing.assert_allclose(got[name].values, e, rtol=1e-5, atol=1e-4, err_msg=name)
    assert np.isnan(got["sw_in"].values[0]).all() and np.isnan(got["precip"].values[-1]).all()
    assert not np.isnan(got["sw_in"].values[1]).all()
