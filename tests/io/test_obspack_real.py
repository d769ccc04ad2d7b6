"""The ObsPack reader and the receptor matching on a real NOAA tower file (tests/data/README.md).

The file is CH4 from the BAO tall tower, with three intakes in one file and the flag named
``qcflag``. It must be refused as CO2; a copy whose only changes are the species attribute and
the values' scale (ppb of CH4 turned into plausible ppm, units changed to match) must be read
exactly as the raw file says, and receptors must take the value of their own intake.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
from tower_files import write_stilt_foot

from fluxbridge.errors import InputError
from fluxbridge.io.obspack import read_obspack
from fluxbridge.io.towers import open_towers

DATA = Path(__file__).resolve().parents[1] / "data" / "obspack"
REAL = DATA / "ch4_bao_tower-insitu_1_ccgg_all.nc"
SCALE = 0.2  # 1 900 ppb of CH4 → 380 "ppm"


def _raw(path: Path) -> pd.DataFrame:
    """The file's values as netCDF4 reads them, with no decoding of ours."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return pd.DataFrame({
            "time": pd.to_datetime(ds["time"][:].astype(np.int64), unit="s"),
            "value": ds["value"][:].astype(np.float64),
            "height": ds["intake_height"][:].astype(np.float64),
            "flag": netCDF4.chartostring(ds["qcflag"][:]),
            "id": netCDF4.chartostring(ds["obspack_id"][:]),
        })


@pytest.fixture
def as_co2(tmp_path) -> Path:
    path = shutil.copy(REAL, tmp_path / "co2_bao_tower-insitu_1_ccgg_all.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.setncattr("dataset_parameter", "co2")
        for name in ("value", "value_unc"):
            ds[name][:] = ds[name][:] * SCALE
            ds[name].setncattr("units", "micromol mol-1")
    return Path(path)


def test_a_real_file_of_another_species_is_refused():
    with pytest.raises(InputError, match=r"variable 'dataset_parameter': an ObsPack file of "
                                         r"'ch4'") as err:
        read_obspack(REAL)
    assert "ch4_bao_tower-insitu_1_ccgg_all.nc" in str(err.value) and "\n" not in str(err.value)


def test_the_real_layout_is_read_as_the_raw_file_says(as_co2):
    raw = _raw(REAL)
    table = read_obspack(as_co2)
    kept = raw[raw["flag"].str[0] == "."].sort_values("time", kind="stable")
    assert len(table) == len(kept) > 4000
    assert sorted(set(table["intake_height"])) == [22.0, 100.0, 300.0]
    assert table["site"].eq("BAO").all()
    np.testing.assert_allclose(table["lat"], 40.05, atol=1e-4)
    np.testing.assert_allclose(table["lon"], -105.004, atol=1e-4)
    # every value at its own time and intake, in ppm as the changed units say
    key = ["time", "intake_height"]
    ours = table.set_index(key)["co2"].sort_index()
    theirs = (kept.rename(columns={"height": "intake_height"}).set_index(key)["value"]
              .sort_index() * SCALE)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-6)
    assert set(table["obspack_id"]) == set(kept["id"])
    assert table["obspack_id"].str.contains("~ch4_bao_tower-insitu_1_ccgg_all~").all()


def test_receptors_take_the_value_of_their_own_intake(tmp_path, as_co2):
    raw = _raw(REAL)
    time = raw["time"].iloc[len(raw) // 2]
    lat, lon = np.array([39.5, 40.5]), np.array([-105.5, -104.5])
    feet = [write_stilt_foot(tmp_path / f"{time:%Y%m%d%H%M}_-105.004_40.05_{z}_foot.nc",
                             np.full((2, 2, 2), 0.01), lat, lon, str(time)) for z in (22, 300)]
    priors = pd.DataFrame({"site": "BAO", "time": time.isoformat(), "intake_height": [22, 300],
                           "background_ppm": [370.0, 371.0]})
    priors.to_csv(tmp_path / "priors.csv", index=False)
    towers = open_towers(feet, [as_co2], tmp_path / "priors.csv")
    at = raw[raw["time"] == time].set_index("height")["value"] * SCALE
    np.testing.assert_allclose(towers.table["co2"], [at[22.0], at[300.0]], rtol=1e-6)
    np.testing.assert_allclose(towers.table["enhancement_ppm"],
                               [at[22.0] - 370.0, at[300.0] - 371.0], atol=1e-4)  # float32
    # without the intake height the priors cannot tell the two receptors apart
    priors.drop(columns="intake_height").to_csv(tmp_path / "priors.csv", index=False)
    with pytest.raises(InputError, match="several intake heights at BAO"):
        open_towers(feet, [as_co2], tmp_path / "priors.csv")
    # a receptor at a height the file does not have
    odd = write_stilt_foot(tmp_path / f"{time:%Y%m%d%H%M}_-105.004_40.05_50_foot.nc",
                           np.full((2, 2, 2), 0.01), lat, lon, str(time))
    with pytest.raises(InputError, match=r"intakes at \[22.0, 100.0, 300.0\] m, none at the "
                                         r"receptor's 50 m"):
        open_towers([odd], [as_co2], tmp_path / "priors.csv")
