"""Finding the MM/DD site files of a directory, and the meteorology the canonical reader leaves
out (long-wave radiation, pressure, wind), on small files written the way the real ones are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fluxnet_files import write_mm_file, write_site_list

from fluxbridge.errors import InputError
from fluxbridge.io.fluxnet import find_site_files_at_step, read_sites
from fluxbridge.io.fluxnet_meteo import EXTRA_METEO_COLUMNS, read_extra_meteo
from fluxbridge.io.sitemeta import read_site_metadata


@pytest.fixture
def mm_files(tmp_path) -> tuple[list[Path], Path, pd.DataFrame, pd.DataFrame]:
    """Two MM files (XX-Bbb lacks WS_F) and their site list: the files, the list and what
    each file holds."""
    data = tmp_path / "MM"
    data.mkdir()
    a = write_mm_file(data, "XX-Aaa", 1)
    b = write_mm_file(data, "XX-Bbb", 2, with_ws=False)
    write_site_list(tmp_path / "sites.csv", ["XX-Aaa", "XX-Bbb"])
    return sorted(data.glob("*.csv")), tmp_path / "sites.csv", a, b


def test_extra_meteorology_is_read_from_each_file(mm_files):
    paths, site_list, a, b = mm_files
    sites = read_extra_meteo(paths, read_sites(paths, read_site_metadata(site_list),
                                               time_step="MM"))
    assert set(EXTRA_METEO_COLUMNS) <= set(sites.data_vars)
    np.testing.assert_allclose(sites["lw_in"].sel(site="XX-Aaa"), a["LW_IN_F"], atol=1e-4)
    np.testing.assert_allclose(sites["pa"].sel(site="XX-Bbb"), b["PA_F"], atol=1e-4)
    assert sites["ws"].sel(site="XX-Bbb").isnull().all()  # the file lacks WS_F
    assert sites["lw_in"].attrs["units"] == "W m-2"


def test_files_of_sites_absent_from_the_dataset_are_ignored(mm_files):
    paths, site_list, a, _ = mm_files
    sites = read_sites(paths[:1], read_site_metadata(site_list), time_step="MM")
    out = read_extra_meteo(paths, sites)
    assert list(out["site"].values) == ["XX-Aaa"]
    np.testing.assert_allclose(out["ws"].sel(site="XX-Aaa"), a["WS_F"], atol=1e-4)


def test_find_site_files_at_step_finds_the_monthly_files(mm_files):
    paths = mm_files[0]
    found, step = find_site_files_at_step(paths[0].parent)
    assert step == "MM" and found == paths


def test_find_site_files_at_step_picks_one_resolution(tmp_path, real_data):
    paths, step = find_site_files_at_step(real_data / "fluxnet2015" / "MM")
    assert step == "MM" and len(paths) == 206
    assert len({p.name.split("_")[1] for p in paths}) == 206
    (tmp_path / "FLX_XX-Aaa_FLUXNET2015_SUBSET_MM_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    (tmp_path / "FLX_XX-Bbb_FLUXNET2015_SUBSET_DD_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    with pytest.raises(InputError, match="one of MM or DD"):
        find_site_files_at_step(tmp_path)
    assert find_site_files_at_step(tmp_path, "DD")[0][0].name.startswith("FLX_XX-Bbb")
    with pytest.raises(InputError, match="no HH site files"):
        find_site_files_at_step(tmp_path, "HH")
    with pytest.raises(InputError, match="directory"):
        find_site_files_at_step(tmp_path / "missing")
