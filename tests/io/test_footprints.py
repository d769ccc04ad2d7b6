"""STILT footprint reader: files written to the STILT-R layout, good and bad."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from tower_files import write_stilt_foot

from fluxbridge.errors import InputError
from fluxbridge.io.footprints import Receptor, read_stilt_footprint, receptor_from_name

LAT = np.array([44.5, 45.5, 46.5])
LON = np.array([-91.5, -90.5])
NAME = "202007011800_-90.27_45.95_396_foot.nc"


def _foot(n_hours: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 0.01, (n_hours, LAT.size, LON.size))


def test_reads_canonical_grid_hours_and_receptor(tmp_path):
    foot = _foot()
    foot[1, 0, 0] = np.nan  # written as the fill -1: no influence
    path = write_stilt_foot(tmp_path / NAME, foot, LAT, LON, "2020-07-01 18:00")
    da = read_stilt_footprint(path)
    assert da.dims == ("time", "lat", "lon")
    assert np.all(np.diff(da["lat"].values) < 0) and np.all(np.diff(da["lon"].values) > 0)
    np.testing.assert_array_equal(pd.DatetimeIndex(da["time"].values),
                                  pd.date_range("2020-07-01 14:00", periods=4, freq="h"))
    # the file's first hour back (index 0) is 17:00, the last of the sorted times; lat flipped
    np.testing.assert_allclose(da.sel(time="2020-07-01 17:00").values,
                               foot[0, ::-1, :], rtol=1e-6)
    assert float(da.sel(time="2020-07-01 16:00", lat=44.5, lon=-91.5)) == 0.0
    np.testing.assert_allclose(float(da.sum()), np.nansum(foot.astype("f4")), rtol=1e-6)
    assert pd.Timestamp(da["receptor_time"].values) == pd.Timestamp("2020-07-01 18:00")
    assert (float(da["receptor_lat"]), float(da["receptor_lon"])) == (45.95, -90.27)
    assert float(da["receptor_height"]) == 396.0
    assert da.attrs["units"] == "ppm (umol-1 m2 s)"


def test_longitudes_0_360_become_canonical(tmp_path):
    path = write_stilt_foot(tmp_path / NAME, _foot(), LAT, LON + 360.0, "2020-07-01 18:00")
    np.testing.assert_allclose(read_stilt_footprint(path)["lon"].values, LON)


@pytest.mark.parametrize(("name", "expected"), [
    ("2015061822_-111.980323_40.782561_5_foot.nc",
     Receptor(pd.Timestamp("2015-06-18 22:00"), 40.782561, -111.980323, 5.0)),
    ("201506182230_40.78_-111.98_5.5_foot.nc",  # latitude first, told by the range
     Receptor(pd.Timestamp("2015-06-18 22:30"), 40.78, -111.98, 5.5)),
    ("foot.nc", None),
])
def test_receptor_from_simulation_id(name, expected):
    assert receptor_from_name(name) == expected


def test_receptor_argument_overrules_the_name(tmp_path):
    path = write_stilt_foot(tmp_path / "foot.nc", _foot(), LAT, LON, "2020-07-01 18:00")
    with pytest.raises(InputError, match="no receptor in the file name"):
        read_stilt_footprint(path)
    rec = Receptor(pd.Timestamp("2020-07-01 18:00"), 45.0, -90.0, 100.0)
    assert float(read_stilt_footprint(path, receptor=rec)["receptor_height"]) == 100.0


@pytest.mark.parametrize(("change", "message"), [
    ({"units": "umol CO2 m-2 s-1"}, r"foot\.nc, variable 'foot': units 'umol CO2 m-2 s-1'"),
    ({"name": "Footprint"}, r"variable 'foot': no footprint variable"),
    ({"negative": True}, r"variable 'foot': 1 negative footprint values"),
    ({"lat": np.array([44.5, 45.5, 47.5])}, r"variable 'lat': lat is not regularly spaced"),
    ({"receptor_time": "2020-07-01 16:00"}, r"variable 'time': footprint hour .* not before"),
])
def test_bad_files_raise_one_line_errors(tmp_path, change, message):
    foot = _foot()
    if change.pop("negative", False):
        foot[2, 1, 1] = -0.5
    kwargs = {"lat": LAT, "lon": LON, "receptor_time": "2020-07-01 18:00"} | change
    path = write_stilt_foot(tmp_path / NAME, foot, kwargs.pop("lat"), kwargs.pop("lon"),
                            **kwargs)
    if "receptor_time" in change:  # the file's hours are after the name's receptor time
        path = path.rename(tmp_path / NAME.replace("1800", "1500"))
    with pytest.raises(InputError, match=message) as err:
        read_stilt_footprint(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="footprint file not found"):
        read_stilt_footprint(tmp_path / NAME)


def test_hours_must_be_hourly(tmp_path):
    path = write_stilt_foot(tmp_path / "x.nc", _foot(), LAT, LON, "2020-07-01 18:00")
    with xr.open_dataset(path, decode_times=False) as ds:
        ds = ds.load()
    ds["time"] = ds["time"].copy(data=ds["time"].values - [0, 0, 1800, 1800])
    ds.to_netcdf(tmp_path / NAME)
    with pytest.raises(InputError, match=r"variable 'time': time steps of \[3600, 5400\] s"):
        read_stilt_footprint(tmp_path / NAME)
