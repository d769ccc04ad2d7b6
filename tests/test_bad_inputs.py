"""Bad inputs are found before any training: one line naming the file and the variable."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.fluxnet_csv import parse_file_name
from fluxbridge.io.inputs import open_inputs, read_inputs_file

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 24, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("bad-inputs") / "world"
    synthesize(root, config=dict(TINY_WORLD), seed=2, progress=False)
    return root


def _first_site(files: dict) -> str:
    return files["sites"][0]


def truncated_site(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    text = p.read_text()
    p.write_text(text[: len(text) // 2 - 7])
    return _first_site(files), "truncated"


def wrong_header(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    head, body = p.read_text().split("\n", 1)
    p.write_text(head.replace("TIMESTAMP", "DATE") + "\n" + body)
    return _first_site(files), "TIMESTAMP"


def all_missing_nee(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df["NEE_VUT_REF"] = -9999
    df.to_csv(p, index=False)
    return _first_site(files), "NEE_VUT_REF"


def unordered_timestamps(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df.iloc[::-1].to_csv(p, index=False)
    return _first_site(files), "TIMESTAMP"


def duplicated_timestamps(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df.loc[5, "TIMESTAMP"] = df.loc[4, "TIMESTAMP"]
    df.to_csv(p, index=False)
    return _first_site(files), "TIMESTAMP"


def _edit_netcdf(path: Path, edit: Callable[[xr.Dataset], xr.Dataset]) -> None:
    ds = edit(xr.load_dataset(path))
    ds.to_netcdf(path)


def wrong_units(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        ds["t2m"].attrs["units"] = "degC"
        return ds

    _edit_netcdf(w / files["meteorology"][0], edit)
    return files["meteorology"][0], "t2m"


def missing_units(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        del ds["t2m"].attrs["units"]
        return ds

    _edit_netcdf(w / files["meteorology"][0], edit)
    return files["meteorology"][0], "t2m"


def site_out_of_range(w: Path, files: dict) -> tuple[str, str]:
    p = w / files["site_table"]
    df = pd.read_csv(p, sep=";", dtype=str)
    df.loc[df.index[df["VARIABLE"] == "LOCATION_LAT"][0], "DATAVALUE"] = "95.0"
    df.to_csv(p, sep=";", index=False)
    return files["site_table"], "lat"


def modis_on_another_grid(w: Path, files: dict) -> tuple[str, str]:
    path = w / files["remote_sensing"][0]
    _edit_netcdf(path, lambda ds: ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2)))
    return files["remote_sensing"][0], "lat"


def land_cover_without_classes(w: Path, files: dict) -> tuple[str, str]:
    _edit_netcdf(w / files["land_cover"],
                 lambda ds: ds.rename(Majority_Land_Cover_Type_1="classes"))
    return files["land_cover"], "land_cover"


def inversion_in_unknown_units(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        name = next(iter(ds.data_vars))
        ds[name].attrs["units"] = "furlongs"
        return ds

    _edit_netcdf(w / files["inversions"][0], edit)
    return files["inversions"][0], "furlongs"


def _unknown_region_in(role: str, w: Path, files: dict) -> tuple[str, str]:
    """The first row of a regional table (corrections, truth) renamed to a region that the
    mask does not have."""
    p = w / files[role]
    df = pd.read_csv(p)
    df.loc[0, "region"] = "Atlantis"
    df.to_csv(p, index=False)
    return files[role], "Atlantis"


def correction_for_unknown_region(w: Path, files: dict) -> tuple[str, str]:
    return _unknown_region_in("corrections", w, files)


def truth_for_unknown_region(w: Path, files: dict) -> tuple[str, str]:
    return _unknown_region_in("truth_regional", w, files)


def empty_region(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        codes = ds["region"].values
        present = np.unique(codes[codes > 0])
        ds["region"].values = np.where(codes == present[-1], 0, codes).astype(codes.dtype)
        return ds

    _edit_netcdf(w / files["regions"], edit)
    return files["regions"], "region"


CASES = [truncated_site, wrong_header, all_missing_nee, unordered_timestamps,
         duplicated_timestamps, wrong_units, missing_units, site_out_of_range,
         modis_on_another_grid, empty_region, land_cover_without_classes,
         inversion_in_unknown_units, correction_for_unknown_region, truth_for_unknown_region]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_reported_before_training(world, tmp_path, corrupt):
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    files = json.loads((copy / "manifest.json").read_text())["files"]
    relative, variable = corrupt(copy, files)
    inputs = open_inputs(copy / "inputs.yaml")
    with pytest.raises(InputError) as err:
        inputs.check()
    message = str(err.value)
    assert "\n" not in message
    assert str((copy / relative).resolve()) in message and variable in message, message


def test_sites_outside_the_meteorology_period_are_refused(world):
    files = json.loads((world / "manifest.json").read_text())["files"]
    last = max(parse_file_name(p).last_year for p in files["sites"])
    late = [p for p in files["sites"] if parse_file_name(p).first_year == last]
    first_year = files["meteorology"][:1]
    assert late and "era5_daily_" + str(last) not in first_year[0]  # sites of the last year only
    spec = {**read_inputs_file(world / "inputs.yaml"), "sites": late, "meteorology": first_year}
    with pytest.raises(InputError) as err:
        open_inputs(spec, base=world).check()
    message = str(err.value)  # names the meteorology's files, its years and the sites'
    assert message.startswith(str(world.resolve() / first_year[0]))
    assert f"years {last - 1}, none with measured site NEE" in message
    assert f"sites' years {last}" in message


def test_region_mask_on_another_grid_is_carried_onto_the_meteorology_grid(world, tmp_path):
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    path = copy / "regions" / "regions.nc"
    source = xr.load_dataset(path).isel(lat=slice(0, None, 2), lon=slice(0, None, 2))
    source.to_netcdf(path)
    inputs = open_inputs(copy / "inputs.yaml")
    regions = inputs.regions
    meteorology = inputs.meteorology
    np.testing.assert_allclose(regions["lat"].values, meteorology["lat"].values)
    np.testing.assert_allclose(regions["lon"].values, meteorology["lon"].values)
    assert regions.attrs["regrid_method"] == "nearest"
    shared = regions["region"].sel(lat=source["lat"], lon=source["lon"]).values
    kept = shared > 0  # cells of the source grid keep their region where they have land
    np.testing.assert_array_equal(shared[kept], source["region"].values[kept])
    assert set(np.unique(regions["region"])) == set(np.unique(source["region"]))
    inputs.check()
