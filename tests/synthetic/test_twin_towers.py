"""The twin world's towers: files in the STILT and ObsPack layouts read back by the readers,
the inputs by role, and each enhancement equal to the true NEE through its footprint (computed
here cell by cell, hour by hour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.io.footprints import read_stilt_footprint
from fluxbridge.io.inputs import open_inputs, open_world
from fluxbridge.io.obspack import daytime, read_obspack
from fluxbridge.io.towers import towers_of
from fluxbridge.synthetic import synthesize
from fluxbridge.synthetic.towers import TOWERS

TOWER_WORLD = {"resolution_deg": 5.0, "n_years": 1, "n_sites": 10, "n_members": 2,
               "site_years_min": 1, "site_years_max": 1, "n_towers": 3,
               "tower_every_days": 30, "tower_noise_ppm": 0.0}
PER_TOWER = len(range(4, 365, 30))  # from the first day with 72 hours of record before it


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("towers") / "world", config=TOWER_WORLD, seed=5,
                      progress=False)


def test_obspack_files_read_back_as_afternoon_values(manifest):
    files = sorted((manifest.parent / "towers" / "obspack").glob("co2_*.nc"))
    assert len(files) == TOWER_WORLD["n_towers"]
    for path in files:
        table = read_obspack(path)
        site = TOWERS.set_index("site").loc[table["site"].iloc[0]]
        assert np.allclose(table["lat"], site["lat"]) and np.allclose(table["lon"], site["lon"])
        assert table["co2"].between(380, 420).all()
        assert len(daytime(table, 12, 16)) == len(table)  # every receptor in the afternoon


def test_footprints_read_back_with_their_receptors(manifest):
    paths = sorted((manifest.parent / "towers" / "footprints").glob("*_foot.nc"))
    assert len(paths) == TOWER_WORLD["n_towers"] * PER_TOWER
    foot = read_stilt_footprint(paths[0])
    assert foot.sizes["time"] == 72 and float(foot.sum()) > 0
    assert float(foot.coords["receptor_time"].values - foot["time"].values.max()) \
        == pytest.approx(3600e9)


def test_inputs_name_the_tower_roles(manifest):
    world = open_inputs(manifest.parent / "inputs.yaml")
    assert {"footprints", "tower_co2", "tower_priors"} <= set(world.files)
    towers = towers_of(world.files)
    table = towers.table
    assert len(table) == len(towers.paths) == TOWER_WORLD["n_towers"] * PER_TOWER
    expected = table["co2"] - table["background_ppm"] - table["fossil_ppm"] - table["ocean_ppm"]
    np.testing.assert_allclose(table["enhancement_ppm"], expected)
    assert (table["fossil_ppm"] > 0).all()


def test_enhancement_is_the_true_nee_through_the_footprint(manifest):
    towers = towers_of(open_world(manifest).files)
    with xr.open_dataset(manifest.parent / "truth" / "nee_true.nc") as ds:
        nee = ds["nee"].load()
    with xr.open_dataset(manifest.parent / "regions" / "regions.nc") as ds:
        land = ds["land_fraction"].load()
    umol_per_g = 1e6 / 12.0107 / 86400.0  # µmol m-2 s-1 per gC m-2 d-1
    for k in (0, len(towers.paths) // 2, len(towers.paths) - 1):
        foot = read_stilt_footprint(towers.paths[k])
        days = pd.DatetimeIndex(foot["time"].values).floor("D")
        flux = nee.sel(time=days.values, lat=foot["lat"], lon=foot["lon"]).fillna(0.0)
        lf = land.sel(lat=foot["lat"], lon=foot["lon"])
        expected = float((foot.values * flux.values * lf.values[None]).sum()) * umol_per_g
        assert towers.table["enhancement_ppm"].iloc[k] == pytest.approx(expected, abs=1e-4)
