"""`inspect` on the files of an ERA5 set delivered one variable per file."""

from __future__ import annotations

import pandas as pd
import pytest

from fluxbridge.io.inspect import inspect_file

VARIABLES = ("t2m", "d2m", "ssrd", "tp")


@pytest.fixture
def era5_set(tmp_path, make_era5):
    """era5_{t2m,d2m,ssrd,tp}_2004.nc: two days of hourly values, one variable per file."""
    whole = make_era5(pd.date_range("2004-01-01", periods=48, freq="h"))
    paths = {}
    for name in VARIABLES:
        paths[name] = tmp_path / f"era5_{name}_2004.nc"
        whole[[name]].to_netcdf(paths[name])
    return paths


@pytest.mark.parametrize("name", VARIABLES)
def test_each_file_of_the_set_is_one_variable_usable_with_its_siblings(era5_set, name):
    report = inspect_file(era5_set[name])
    assert report.usable, report.reason
    assert report.format.startswith(f"one variable of an ERA5 set ({name} of")
    assert report.resolution == "hourly"
    assert report.period == ("2004-01-01", "2004-01-02")
    assert list(report.variables) == [name] and report.coverage[name] == 1.0
    text = report.to_text()
    assert "usable with its siblings" in text and "'era5_*_2004.nc'" in text
    others = [f"era5_{n}_2004.nc" for n in VARIABLES if n != name]
    assert all(o in text for o in others)
    assert "the set opens as daily ta, vpd, sw_in, precip over 2004-01-01 .. 2004-01-02" in text


def test_a_lone_file_names_the_siblings_it_lacks(era5_set):
    for name in ("d2m", "tp"):
        era5_set[name].unlink()
    report = inspect_file(era5_set["t2m"])
    assert report.usable
    assert "not found beside it: d2m, tp" in report.to_text()


def test_a_set_that_does_not_open_together_says_why(era5_set, make_era5):
    later = make_era5(pd.date_range("2005-06-01", periods=48, freq="h"))
    later[["tp"]].to_netcdf(era5_set["tp"])  # another period
    report = inspect_file(era5_set["t2m"])
    assert report.usable  # the file itself is right
    assert "the set does not open" in report.to_text()


def test_cds_request_names_in_file_names(tmp_path, make_era5):
    whole = make_era5(pd.date_range("2004-01-01", periods=24, freq="h"))
    long = {"t2m": "2m_temperature", "d2m": "2m_dewpoint_temperature",
            "ssrd": "surface_solar_radiation_downwards", "tp": "total_precipitation"}
    for name, cds in long.items():
        whole[[name]].to_netcdf(tmp_path / f"{cds}_2004.nc")
    text = inspect_file(tmp_path / "2m_dewpoint_temperature_2004.nc").to_text()
    assert "the set opens as daily" in text


def test_wrong_units_in_one_file_are_refused(tmp_path, make_era5):
    part = make_era5(pd.date_range("2004-01-01", periods=24, freq="h"))[["t2m"]]
    part["t2m"].attrs["units"] = "degC"
    part.to_netcdf(path := tmp_path / "era5_t2m_2004.nc")
    report = inspect_file(path)
    assert not report.usable
    assert "units 'degC'" in report.reason and str(path) in report.reason
