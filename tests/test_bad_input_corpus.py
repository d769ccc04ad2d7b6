"""A corpus of bad inputs across input types, each refused by ``fluxbridge validate`` before any
work with exit status 2 and one line naming the file, the variable, what was found and what was
expected."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from corpus_world import (
    Case,
    assert_refused_in_one_line,
    edit_csv,
    edit_nc,
    make_world,
    scale,
)

from fluxbridge.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("corpus"))


# -- meteorology (ERA5) ------------------------------------------------------------------------
def t2m_in_celsius_labelled_kelvin(w: Path, f: dict):
    edit_nc(w / f["meteorology"][0], scale("t2m", 1.0, -273.15))
    return f["meteorology"][0], "t2m", "degC found"


def tp_in_mm_labelled_metres(w: Path, f: dict):
    edit_nc(w / f["meteorology"][1], scale("tp", 1000.0))
    return f["meteorology"][1], "tp", "mm d-1 found"


def ssrd_a_hundred_times_too_large(w: Path, f: dict):
    edit_nc(w / f["meteorology"][0], scale("ssrd", 100.0))
    return f["meteorology"][0], "ssrd", "W m-2 found"


def era5_fifteen_days_missing(w: Path, f: dict):
    def edit(ds: xr.Dataset) -> xr.Dataset:
        dim = next(d for d in ("valid_time", "time") if d in ds.dims)
        keep = np.ones(ds.sizes[dim], bool)
        keep[59:74] = False
        return ds.isel({dim: keep})
    edit_nc(w / f["meteorology"][0], edit)
    return f["meteorology"], "time", "15 day(s) missing"


def t2m_units_degc(w: Path, f: dict):
    edit_nc(w / f["meteorology"][0], lambda ds: ds["t2m"].attrs.update(units="degC"))
    return f["meteorology"][0], "t2m", "'degC'"


def t2m_without_units(w: Path, f: dict):
    edit_nc(w / f["meteorology"][0], lambda ds: ds["t2m"].attrs.pop("units") and None)
    return f["meteorology"][0], "t2m", "no units"


# -- sites -------------------------------------------------------------------------------------
def _site(f: dict, w: Path, edit: Callable[[pd.DataFrame], None]) -> str:
    edit_csv(w / f["sites"][0], edit, dtype={"TIMESTAMP": str})
    return f["sites"][0]


def site_nee_in_micromoles(w: Path, f: dict):
    def edit(df):
        df["NEE_VUT_REF"] = df["NEE_VUT_REF"].where(df["NEE_VUT_REF"] == -9999,
                                                    df["NEE_VUT_REF"] * 100.0 + 60.0)
    return _site(f, w, edit), "NEE_VUT_REF", "g m-2 d-1 found"


def site_temperature_in_kelvin(w: Path, f: dict):
    return _site(f, w, lambda df: df.__setitem__("TA_F", df["TA_F"] + 373.15)), "ta", \
        "degC found"


def site_negative_precipitation(w: Path, f: dict):
    return _site(f, w, lambda df: df.__setitem__("P_F", -5.0)), "precip", "-5"


def site_timestamps_reversed(w: Path, f: dict):
    def edit(df):
        df.iloc[:] = df.iloc[::-1].to_numpy()
    return _site(f, w, edit), "TIMESTAMP", "order"


def site_timestamp_duplicated(w: Path, f: dict):
    return _site(f, w, lambda df: df.__setitem__(
        "TIMESTAMP", df["TIMESTAMP"].where(df.index != 5, df["TIMESTAMP"][4]))), \
        "TIMESTAMP", "duplicated timestamp"


def site_header_renamed(w: Path, f: dict):
    p = w / f["sites"][0]
    head, body = p.read_text().split("\n", 1)
    p.write_text(head.replace("TIMESTAMP", "DATE") + "\n" + body)
    return f["sites"][0], "TIMESTAMP", "DATE"


def site_latitude_95(w: Path, f: dict):
    def edit(df):
        df.loc[df.index[df["VARIABLE"] == "LOCATION_LAT"][0], "DATAVALUE"] = "95.0"
    edit_csv(w / f["site_table"], edit, sep=";", dtype=str)
    return f["site_table"], "lat", "lat 95"


# -- inversions and corrections ----------------------------------------------------------------
def _member(f: dict, style: str, w: Path) -> str:
    for rel in f["inversions"]:
        with xr.open_dataset(w / rel) as ds:
            if style in ds:
                return rel
    raise AssertionError(style)


def inversion_pgc_labelled_gc_per_day(w: Path, f: dict):
    rel = _member(f, "land_flux_only_fossil_cement_adjusted", w)
    edit_nc(w / rel, lambda ds: ds["land_flux_only_fossil_cement_adjusted"].attrs.update(
        units="gC m-2 d-1"))
    return rel, "land_flux_only_fossil_cement_adjusted", "g m-2 d-1 found"


def inversion_a_thousand_times_too_large(w: Path, f: dict):
    rel = _member(f, "bio_flux_opt", w)
    edit_nc(w / rel, scale("bio_flux_opt", 1000.0))
    return rel, "bio_flux_opt", "g m-2 d-1 found"


def inversion_units_unknown(w: Path, f: dict):
    rel = _member(f, "bio_flux_opt", w)
    edit_nc(w / rel, lambda ds: ds["bio_flux_opt"].attrs.update(units="furlongs"))
    return rel, "bio_flux_opt", "furlongs"


def inversion_cell_area_in_cm2(w: Path, f: dict):
    rel = _member(f, "land_flux_only_fossil_cement_adjusted", w)

    def edit(ds: xr.Dataset) -> None:
        from fluxbridge.grid import cell_area

        area = cell_area(ds["latitude"].values, ds["longitude"].values)
        ds["cell_area"] = (("latitude", "longitude"), area.values * 1e4)
    edit_nc(w / rel, edit)
    return rel, "land_flux_only_fossil_cement_adjusted", "times the largest plausible"


def correction_not_a_number(w: Path, f: dict):
    def edit(df):
        col = next(c for c in df.columns if c.endswith("_tgc"))
        df[col] = df[col].astype(object)
        df.loc[3, col] = "n/a?"
    edit_csv(w / f["corrections"], edit)
    return f["corrections"], "_tgc", "n/a?"


def correction_for_atlantis(w: Path, f: dict):
    edit_csv(w / f["corrections"], lambda df: df.__setitem__(
        "region", df["region"].where(df.index != 0, "Atlantis")))
    return f["corrections"], "region", "Atlantis"


def correction_month_13(w: Path, f: dict):
    edit_csv(w / f["corrections"], lambda df: df.__setitem__(
        "time", df["time"].where(df.index != 0, "2010-13")), dtype={"time": str})
    return f["corrections"], "time", "2010-13"


# -- regions, land cover, remote sensing, truth ------------------------------------------------
def region_code_not_in_flag_values(w: Path, f: dict):
    def edit(ds: xr.Dataset) -> None:
        codes = ds["region"].values
        codes[codes == codes.max()] = 77
    edit_nc(w / f["regions"], edit)
    return f["regions"], "region", "[77]"


def region_without_cells(w: Path, f: dict):
    def edit(ds: xr.Dataset) -> None:
        codes = ds["region"].values
        codes[codes == codes.max()] = 0
    edit_nc(w / f["regions"], edit)
    return f["regions"], "region", "without any cell"


def land_cover_variable_renamed(w: Path, f: dict):
    edit_nc(w / f["land_cover"], lambda ds: ds.rename(Majority_Land_Cover_Type_1="classes"))
    return f["land_cover"], "land_cover", "no land cover variable"


def modis_on_a_coarser_grid(w: Path, f: dict):
    edit_nc(w / f["remote_sensing"][0],
             lambda ds: ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2)))
    return f["remote_sensing"][0], "lat", "9"


def truth_grid_truncated(w: Path, f: dict):
    p = w / f["truth_grid"]
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    return f["truth_grid"], "nee", "truncated"


def truth_for_atlantis(w: Path, f: dict):
    edit_csv(w / f["truth_regional"], lambda df: df.__setitem__(
        "region", df["region"].where(df.index != 0, "Atlantis")))
    return f["truth_regional"], "region", "Atlantis"


# -- the experiment ----------------------------------------------------------------------------
def scheduler_address_malformed(w: Path, f: dict):
    return None, "upscaling.scheduler", "tcp:/nowhere"


def scheduler_unreachable(w: Path, f: dict):
    return None, "upscaling.scheduler", "127.0.0.1:9"


SCHEDULERS = {"scheduler_address_malformed": "tcp:/nowhere",
              "scheduler_unreachable": "tcp://127.0.0.1:9"}

CASES: list[Case] = [
    t2m_in_celsius_labelled_kelvin, tp_in_mm_labelled_metres, ssrd_a_hundred_times_too_large,
    era5_fifteen_days_missing, t2m_units_degc, t2m_without_units, site_nee_in_micromoles,
    site_temperature_in_kelvin, site_negative_precipitation, site_timestamps_reversed,
    site_timestamp_duplicated, site_header_renamed, site_latitude_95,
    inversion_pgc_labelled_gc_per_day, inversion_a_thousand_times_too_large,
    inversion_units_unknown, inversion_cell_area_in_cm2, correction_not_a_number,
    correction_for_atlantis, correction_month_13, region_code_not_in_flag_values,
    region_without_cells, land_cover_variable_renamed, modis_on_a_coarser_grid,
    truth_grid_truncated, truth_for_atlantis, scheduler_address_malformed,
    scheduler_unreachable,
]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_refused_in_one_line(world, tmp_path, capsys, corrupt):
    assert_refused_in_one_line(world, tmp_path, capsys, corrupt,
                               scheduler=SCHEDULERS.get(corrupt.__name__, "synchronous"))


def test_validate_lists_every_problem_together(world, tmp_path, capsys):
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    files = json.loads((copy / "manifest.json").read_text())["files"]
    t2m_in_celsius_labelled_kelvin(copy, files)
    correction_for_atlantis(copy, files)
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump({"inputs": str(copy / "inputs.yaml"),
                                      "upscaling": {"scheduler": "tcp:/nowhere"}}))
    assert main(["-q", "validate", str(config)]) == 2
    lines = capsys.readouterr().err.strip().split("\n")
    assert len(lines) == 3
    assert any("t2m" in x for x in lines) and any("Atlantis" in x for x in lines)
    assert any("upscaling.scheduler" in x for x in lines)


def test_valid_world_passes(world, tmp_path, capsys):
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump({"inputs": str(world / "inputs.yaml"),
                                      "upscaling": {"scheduler": "synchronous"}}))
    assert main(["-q", "validate", str(config)]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_nan_in_an_inversion_member_makes_its_region_months_missing(world, tmp_path):
    from fluxbridge.io.inversions import read_inversion
    from fluxbridge.io.region_masks import read_region_mask

    files = json.loads((world / "manifest.json").read_text())["files"]
    rel = next(r for r in files["inversions"] if r.endswith(".nc"))
    regions = read_region_mask(world / files["regions"])
    path = tmp_path / "member.nc"
    ds = xr.load_dataset(world / rel)
    lat = next(n for n in ("latitude", "lat") if n in ds.dims)
    var = next(iter(ds.data_vars))
    ds[var] = ds[var].where(ds[lat] < 0)  # the northern hemisphere is missing
    ds.to_netcdf(path)
    total = read_inversion(path, regions)
    full = read_inversion(world / rel, regions)
    lat_of = regions["lat"].where(regions["region"] > 0)
    north = [i for i in total["region"].values
             if float(lat_of.where(regions["region"] == i).min()) > 0]
    south = [i for i in total["region"].values
             if float(lat_of.where(regions["region"] == i).max()) < 0]
    assert north and south
    assert total.sel(region=north).isnull().all()
    np.testing.assert_allclose(total.sel(region=south), full.sel(region=south), rtol=1e-6)
