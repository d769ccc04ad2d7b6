"""Matching footprints, ObsPack values and the priors table; what is refused before training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tower_files import write_obspack, write_stilt_foot

from fluxbridge.errors import InputError
from fluxbridge.io.towers import open_towers, towers_of

LAT = np.array([45.5, 46.5])
LON = np.array([-90.5, -89.5])
TIMES = pd.DatetimeIndex(["2020-07-01 18:00", "2020-07-02 18:00"])


def _files(tmp_path, priors: pd.DataFrame | None = None, times=TIMES, qc_flag=None):
    feet = [write_stilt_foot(tmp_path / f"{t:%Y%m%d%H%M}_-90.27_45.95_396_foot.nc",
                             np.full((3, 2, 2), 0.01), LAT, LON, str(t)) for t in times]
    obs = write_obspack(tmp_path / "co2_tst.nc", TIMES, np.array([410e-6, 412e-6]),
                        qc_flag=qc_flag)
    if priors is None:
        priors = pd.DataFrame({"site": "TST", "time": TIMES.strftime("%Y-%m-%dT%H:%M:%S"),
                               "background_ppm": [400.0, 401.0], "fossil_ppm": [2.0, 3.0]})
    path = tmp_path / "priors.csv"
    priors.to_csv(path, index=False)
    return feet, [obs], path


def test_enhancement_is_co2_less_background_and_priors(tmp_path):
    towers = open_towers(*_files(tmp_path))
    table = towers.table
    np.testing.assert_allclose(table["co2"], [410.0, 412.0])
    np.testing.assert_allclose(table["ocean_ppm"], 0.0)  # absent column: no enhancement
    np.testing.assert_allclose(table["enhancement_ppm"], [410 - 400 - 2, 412 - 401 - 3])
    assert [p.name[:12] for p in towers.paths] == ["202007011800", "202007021800"]
    assert len(list(towers.footprints())) == 2


def test_footprint_without_observation_is_refused(tmp_path):
    late = TIMES + pd.Timedelta(hours=1)
    with pytest.raises(InputError, match="no ObsPack value at the receptor"):
        open_towers(*_files(tmp_path, times=late))


def test_receptor_without_background_is_refused(tmp_path):
    priors = pd.DataFrame({"site": "TST", "time": ["2020-07-01T18:00:00"],
                           "background_ppm": [400.0]})
    with pytest.raises(InputError, match="without a background"):
        open_towers(*_files(tmp_path, priors))


def test_priors_need_a_background_column(tmp_path):
    priors = pd.DataFrame({"site": "TST", "time": ["2020-07-01T18:00:00"],
                           "fossil_ppm": [1.0]})
    with pytest.raises(InputError, match="background_ppm"):
        open_towers(*_files(tmp_path, priors))


def test_tower_roles_come_together(tmp_path):
    feet, obs, priors = _files(tmp_path)
    assert towers_of({"sites": [tmp_path]}) is None
    with pytest.raises(InputError, match="tower_priors"):
        towers_of({"footprints": feet, "tower_co2": obs})
    assert len(towers_of({"footprints": feet, "tower_co2": obs,
                          "tower_priors": priors}).table) == 2


def test_receptor_with_a_rejected_value_is_skipped(tmp_path):
    towers = open_towers(*_files(tmp_path, qc_flag=["...", "A.."]))
    assert len(towers.table) == len(towers.paths) == 1
    assert towers.table["co2"].iloc[0] == pytest.approx(410.0)
