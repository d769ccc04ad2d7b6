"""The real monthly example's inputs: PSL climatologies, GeoTIFF layers, MCD12C1, the 206
monthly tower files and 14 band inversions, named by role and checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fluxbridge.config import load_config
from fluxbridge.errors import InputError
from fluxbridge.io.inputs import open_inputs
from fluxbridge.io.layer_predictors import layer_variable
from fluxbridge.vocabulary import IGBP_CODE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "real-monthly" / "experiment.yaml"


@pytest.fixture(scope="module")
def world():
    cfg = load_config(EXAMPLE)
    return open_inputs(*cfg.input_spec(), **cfg.input_options()).check()


def test_example_config_names_the_real_data(real_data, tmp_path):
    cfg = load_config(EXAMPLE)
    assert cfg.data_dir == real_data.resolve()
    assert cfg.inputs["regions"] == "builtin:latitude_bands"
    assert cfg.inputs["land_cover"].startswith(str(real_data.resolve()))
    assert cfg.time_step == "MM" and cfg.meteo_from == "grid"
    elsewhere = load_config(EXAMPLE, data_dir=tmp_path)  # a copy of the data elsewhere
    assert elsewhere.inputs["site_table"][0].startswith(str(tmp_path.resolve()) + "/sites/")
    assert elsewhere.inputs["corrections"] == str(EXAMPLE.parent / "river_export.csv")


def test_cli_data_dir_replaces_the_experiment_s(real_data, tmp_path, capsys):
    from fluxbridge.cli import main

    assert main(["validate", str(EXAMPLE), "--data-dir", str(tmp_path)]) == 2
    assert f"{tmp_path}/fluxnet2015/MM" in capsys.readouterr().err


def test_predictors_are_a_climatological_year(real_data, world):
    p = world.predictors
    assert dict(p.sizes) == {"time": 12, "lat": 72, "lon": 144}
    assert p.attrs["climatology"] == "true" and p.attrs["climatology_period"] == "1981-2010"
    assert (p["time"].dt.year == 2001).all()
    assert p["ta"].attrs["units"] == "degC" and p["precip"].attrs["units"] == "mm d-1"
    sahara, antarctica = dict(lat=23.75, lon=11.25), dict(lat=-81.25, lon=41.25)
    assert float(p["ta"].sel(sahara).mean()) > 20 and float(p["ta"].sel(antarctica).max()) < -15
    assert float(p["precip"].min()) >= 0
    # top-of-atmosphere radiation: about 418 W m-2 over the year at the equator; June above
    # December in the north
    pot = p["sw_in_pot"].sel(lon=1.25)
    assert float(pot.sel(lat=1.25).mean()) == pytest.approx(418, abs=12)
    assert float(pot.sel(lat=51.25)[5]) > 3 * float(pot.sel(lat=51.25)[11])
    c4 = p["c4_fraction"].isel(time=0)
    assert 0 <= float(c4.min()) and float(c4.max()) <= 1  # percent read as a fraction
    assert float(p["ndvi_max"].isel(time=0).sel(lat=-1.25, lon=-61.25)) > 0.8  # Amazon
    assert int(p["land_cover"].sel(lat=-1.25, lon=-61.25)) == IGBP_CODE["EBF"]
    land = p["land_fraction"].values > 0
    assert (p["land_cover"].values[land] == 0).mean() < 0.01  # coastal cells keep their land


def test_sites_and_targets_on_the_same_year(real_data, world):
    sites, targets = world.sites, world.targets
    assert sites.sizes == {"site": 206, "time": 12}
    assert sites.attrs["climatology"] == "true"
    assert list(sites["time"].values) == list(world.predictors["time"].values)
    assert targets.sizes["member"] == 14 and targets.attrs["climatology_period"] == "2000-2014"
    river = json.loads(targets.attrs["corrections"])[0]
    assert river["term"] == "river" and river["global_pgc_yr"] == pytest.approx(-0.61, abs=1e-3)
    gain = (targets["nee"] - targets["nbe"]).sum(("region", "time")) / 1000
    np.testing.assert_allclose(gain.values, 0.61, atol=1e-3)  # each member's sink weakened


def test_layer_names_and_time_step_are_checked(real_data, tmp_path):
    assert layer_variable("x/C4_fraction.tif") == ("c4_fraction", 0.01)
    with pytest.raises(InputError, match="NDVI_maximum"):
        layer_variable(tmp_path / "LAI_max.tif")
    cfg = load_config(EXAMPLE)
    with pytest.raises(InputError, match="time_step: MM"):
        open_inputs(*cfg.input_spec(), **{**cfg.input_options(), "time_step": "DD"})
    spec = {**cfg.inputs, "remote_sensing": cfg.inputs["vegetation_layers"]}
    with pytest.raises(InputError, match="remote_sensing given without meteorology"):
        open_inputs(spec, **cfg.input_options())
