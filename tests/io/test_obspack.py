"""ObsPack CO2 reader and the daytime selection: files written to the ObsPack layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tower_files import write_obspack

from fluxbridge.errors import InputError
from fluxbridge.io.obspack import daytime, read_obspack

TIMES = pd.date_range("2020-07-01", periods=48, freq="h")


def _value() -> np.ndarray:
    return 400e-6 + 1e-6 * np.arange(TIMES.size) / 10  # mol mol-1


def test_reads_ppm_and_drops_fill_and_rejected(tmp_path):
    value = _value()
    value[5] = np.nan  # written as the fill -999.999
    flags = ["..."] * TIMES.size
    flags[7] = "V.."  # rejected
    flags[8] = ".S."  # selection flag only: kept
    table = read_obspack(write_obspack(tmp_path / "co2.nc", TIMES, value, qc_flag=flags))
    assert len(table) == TIMES.size - 2
    assert TIMES[5] not in set(table["time"]) and TIMES[7] not in set(table["time"])
    np.testing.assert_allclose(table["co2"].iloc[0], 400.0)
    np.testing.assert_allclose(table.set_index("time").loc[TIMES[9], "co2"], 400.9)
    np.testing.assert_allclose(table["co2_unc"], 0.2)
    assert set(table["qc_flag"]) == {"...", ".S."}
    assert table["obspack_id"].iloc[0].endswith("~0")
    assert (table["site"] == "TST").all() and (table["intake_height"] == 396.0).all()
    all_rows = read_obspack(tmp_path / "co2.nc", qc=False)
    assert len(all_rows) == TIMES.size - 1 and "V.." in set(all_rows["qc_flag"])


def test_micromol_units_are_ppm(tmp_path):
    path = write_obspack(tmp_path / "co2.nc", TIMES, _value() * 1e6, units="micromol mol-1")
    np.testing.assert_allclose(read_obspack(path)["co2"].iloc[:2], [400.0, 400.1])


@pytest.mark.parametrize(("lon", "utc_hours"), [
    (0.0, [12, 13, 14, 15]),
    (-90.0, [18, 19, 20, 21]),  # 6 h behind UTC
    (135.0, [3, 4, 5, 6]),  # 9 h ahead
])
def test_daytime_is_12_to_16_local_solar_time(tmp_path, lon, utc_hours):
    table = read_obspack(write_obspack(tmp_path / "co2.nc", TIMES, _value(), lon=lon))
    day = daytime(table)
    assert sorted(set(pd.DatetimeIndex(day["time"]).hour)) == utc_hours
    assert len(day) == 2 * 4  # two days
    assert day["solar_hour"].between(12, 16, inclusive="left").all()


def test_daytime_window_checked():
    with pytest.raises(InputError, match="daytime window"):
        daytime(pd.DataFrame({"time": TIMES, "lon": 0.0}), 16, 12)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"units": "ppb"}, r"co2\.nc, variable 'value': units 'ppb'"),
    ({"units": "micromol mol-1"}, r"variable 'value': CO2 from 0.0004 to 0.0004047 ppm"),
    ({"drop": ("value",)}, r"variable 'value': ObsPack variable missing"),
    ({"drop": ("qc_flag",)}, r"variable 'qc_flag': ObsPack variable missing"),
])
def test_bad_files_raise_one_line_errors(tmp_path, kwargs, message):
    path = write_obspack(tmp_path / "co2.nc", TIMES, _value(), **kwargs)
    with pytest.raises(InputError, match=message) as err:
        read_obspack(path)
    assert "\n" not in str(err.value)


def test_without_qc_flag_when_not_filtering(tmp_path):
    path = write_obspack(tmp_path / "co2.nc", TIMES, _value(), drop=("qc_flag", "value_unc"))
    table = read_obspack(path, qc=False)
    assert len(table) == TIMES.size and table["co2_unc"].isna().all()
