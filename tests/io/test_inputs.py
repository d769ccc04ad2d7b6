"""Inputs named by role: paths and globs resolved against the naming file, errors by role."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import ConfigError, InputError
from fluxbridge.io.inputs import ROLES, open_inputs, read_inputs_file, resolve_inputs
from fluxbridge.regions import TRANSCOM_NAMES, region_names
from fluxbridge.vocabulary import IGBP_CODE

REQUIRED = {"sites": "sites/FLX_*_DD_*.csv", "site_table": "sites/BIF.csv",
            "meteorology": "era5/*.nc", "land_cover": "lc.nc", "inversions": "inv/*.nc",
            "regions": "regions.nc"}
FILES = ("sites/FLX_AA-Bbb_FLUXNET2015_FULLSET_DD_2001-2002_1-4.csv",
         "sites/FLX_AA-Aaa_FLUXNET2015_FULLSET_DD_2001-2002_1-4.csv",
         "sites/FLX_AA-Ccc_FLUXNET2015_FULLSET_MM_2001-2002_1-4.csv", "sites/BIF.csv",
         "era5/era5_2002.nc", "era5/era5_2001.nc", "lc.nc", "inv/b.nc", "inv/a.nc", "regions.nc",
         "inv/corrections.csv")


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder of empty files named like inputs (resolution reads no content)."""
    root = tmp_path / "data"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


def test_roles_required_and_lists():
    assert {r for r, role in ROLES.items() if role.required} == set(REQUIRED) - {"meteorology"}
    assert {r for r, role in ROLES.items() if role.many} == {
        "sites", "site_table", "meteorology", "climatology", "remote_sensing",
        "vegetation_layers", "inversions", "footprints", "tower_co2"}


@pytest.mark.parametrize("change", [{"meteorology": None},
                                    {"climatology": "era5/era5_2001.nc"}])
def test_exactly_one_of_meteorology_and_climatology(folder, change):
    with pytest.raises(InputError, match="exactly one"):
        resolve_inputs({**REQUIRED, **change}, folder)


def test_builtin_regions_name_no_file(folder):
    files = resolve_inputs({**REQUIRED, "regions": "builtin:latitude_bands"}, folder)
    assert "regions" not in files
    assert files["land_cover"] == (folder / "lc.nc").resolve()


def test_globs_expand_sorted_relative_to_base(folder):
    files = resolve_inputs({**REQUIRED, "corrections": "inv/corrections.csv"}, folder)
    assert [p.name for p in files["sites"]] == [
        "FLX_AA-Aaa_FLUXNET2015_FULLSET_DD_2001-2002_1-4.csv",
        "FLX_AA-Bbb_FLUXNET2015_FULLSET_DD_2001-2002_1-4.csv"]
    assert [p.name for p in files["meteorology"]] == ["era5_2001.nc", "era5_2002.nc"]
    assert [p.name for p in files["inversions"]] == ["a.nc", "b.nc"]
    assert files["regions"] == (folder / "regions.nc").resolve()
    assert files["site_table"] == [(folder / "sites" / "BIF.csv").resolve()]
    assert all(p.is_absolute() for v in files.values()
               for p in (v if isinstance(v, list) else [v]))
    assert "remote_sensing" not in files and "truth_grid" not in files


def test_lists_keep_their_order_and_absolute_paths_pass(folder):
    spec = {**REQUIRED, "meteorology": ["era5/era5_2002.nc", str(folder / "era5" / "*.nc")],
            "land_cover": str(folder / "lc.nc"),
            "remote_sensing": [], "corrections": None}
    files = resolve_inputs(spec, folder)
    assert [p.name for p in files["meteorology"]] == ["era5_2002.nc", "era5_2001.nc"]
    assert files["land_cover"] == (folder / "lc.nc").resolve()
    assert files["remote_sensing"] == [] and "corrections" not in files


def test_inputs_file_resolves_against_its_own_folder(folder, tmp_path, monkeypatch):
    (folder / "inputs.yaml").write_text(
        "".join(f"{role}: {pattern}\n" for role, pattern in REQUIRED.items()))
    monkeypatch.chdir(tmp_path)
    spec = read_inputs_file(folder / "inputs.yaml")
    assert spec == REQUIRED
    world = open_inputs(folder / "inputs.yaml")
    assert world.base == folder
    assert world.files["regions"] == (folder / "regions.nc").resolve()
    with pytest.raises(InputError, match=r"inputs\.sites"):
        open_inputs(spec)  # relative to the current directory: nothing there


@pytest.mark.parametrize(("change", "role", "words"), [
    ({"regions": "missing.nc"}, "regions", ["data/missing.nc", "not found"]),
    ({"sites": "sites/FLX_*_HH_*.csv"}, "sites", ["FLX_*_HH_*.csv", "matches no file",
                                                  "sites"]),
    ({"meteorology": ["era5/era5_2001.nc", "era5/era5_1999.nc"]}, "meteorology",
     ["era5_1999.nc"]),
    ({"land_cover": "inv/*.nc"}, "land_cover", ["takes one file", "2"]),
    ({"regions": None}, "regions", ["no input"]),
])
def test_bad_input_names_the_role(folder, change, role, words):
    with pytest.raises(InputError) as err:
        resolve_inputs({**REQUIRED, **change}, folder)
    message = str(err.value)
    assert f"inputs.{role}" in message, message
    for word in words:
        assert word in message, message


def test_unknown_role_lists_the_known_ones(folder):
    with pytest.raises(InputError) as err:
        resolve_inputs({**REQUIRED, "meteo": "era5/*.nc"}, folder)
    message = str(err.value)
    assert "meteo" in message and all(role in message for role in ROLES)


@pytest.mark.parametrize("text", ["- sites.csv\n", "sites: {a: 1}\n", "sites: [1, 2]\n"])
def test_inputs_file_must_map_roles_to_paths(tmp_path, text):
    (path := tmp_path / "inputs.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        read_inputs_file(path)
    assert str(path) in str(err.value)


def _era5_daily(path: Path, times: pd.DatetimeIndex, resolution: float) -> Path:
    """Daily ERA5 in the new CDS layout (latitude descending, longitude 0..360)."""
    lat = np.arange(90 - resolution / 2, -90, -resolution)
    lon = np.arange(resolution / 2, 360, resolution)
    shape = (times.size, lat.size, lon.size)
    t2m = 283.15 + 15 * np.cos(np.deg2rad(lat))[None, :, None] * np.ones(shape)
    ds = xr.Dataset(
        {"t2m": (("valid_time", "latitude", "longitude"), t2m.astype("float32"), {"units": "K"}),
         "d2m": (("valid_time", "latitude", "longitude"), (t2m - 4).astype("float32"),
                 {"units": "K"}),
         "ssrd": (("valid_time", "latitude", "longitude"), np.full(shape, 1.5e7, "float32"),
                  {"units": "J m**-2"}),
         "tp": (("valid_time", "latitude", "longitude"), np.full(shape, 2e-3, "float32"),
                {"units": "m"})},
        coords={"valid_time": times.values, "latitude": lat, "longitude": lon})
    ds.to_netcdf(path)
    return path


def _gcb_member(path: Path, months: pd.DatetimeIndex, resolution: float, value: float) -> Path:
    """A Global Carbon Budget style gridded member: constant land flux [PgC m-2 yr-1]."""
    lat = np.arange(90 - resolution / 2, -90, -resolution)
    lon = np.arange(-180 + resolution / 2, 180, resolution)
    flux = np.full((months.size, lat.size, lon.size), value)
    xr.Dataset({"land_flux_only_fossil_cement_adjusted": (
        ("time", "latitude", "longitude"), flux, {"units": "PgC m-2 yr-1"})},
        coords={"time": months.values, "latitude": lat, "longitude": lon}).to_netcdf(path)
    return path


def test_real_files_by_role_open_and_check(real_data, tmp_path):
    """The real site files, BIF, TransCom-3 mask and MCD12C1 GeoTIFF, with meteorology and
    inversion members in their real layouts, named by role beside a YAML file."""
    (tmp_path / "era5").mkdir()
    (tmp_path / "inversions").mkdir()
    _era5_daily(tmp_path / "era5" / "era5_daily_2005.nc",
                pd.date_range("2005-01-01", "2005-12-31"), 5.0)
    months = pd.date_range("2005-01-01", periods=12, freq="MS")
    for k, name in enumerate(("GCB_A", "GCB_B")):
        _gcb_member(tmp_path / "inversions" / f"{name}.nc", months, 5.0, (k - 2) * 1e-15)
    (tmp_path / "corrections.csv").write_text("region,time,fire_tgc\nEurope,2005-07,2.0\n")
    real = real_data.as_posix()
    (tmp_path / "inputs.yaml").write_text(f"""\
sites: {real}/fluxnet2015/DD/FLX_*_FLUXNET2015_SUBSET_DD_*.csv
site_table:
  - {real}/sites/FLX_AA-Flx_BIF_LATEST.csv
  - {real}/sites/fluxnet2015_site_list.csv
meteorology: era5/era5_daily_*.nc
land_cover: {real}/grids/land_cover/MCD12C1.A2019001.006.2020220162300.tif
inversions: inversions/GCB_*.nc
corrections: corrections.csv
regions: {real}/regions/TRANSCOM_Map_MZT.nc
""")
    world = open_inputs(tmp_path / "inputs.yaml").check()
    assert world.sites.sizes["site"] == 24 and "GL-ZaF" in world.sites["site"].values
    assert world.regions.sizes == {"lat": 36, "lon": 72}
    assert set(region_names(world.regions).values()) == set(TRANSCOM_NAMES.values())
    lc = world.predictors["land_cover"]
    assert int(lc.sel(lat=-2.5, lon=-62.5)) == IGBP_CODE["EBF"]
    assert world.targets.sizes["member"] == 2
    europe = next(i for i, n in TRANSCOM_NAMES.items() if n == "Europe")
    assert float(world.targets["correction"].sel(region=europe, time="2005-07-01")) == 2.0
