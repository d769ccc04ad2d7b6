"""FLUXNET site files of the site cross-validation: finding them, their extra meteorology."""

from __future__ import annotations

import numpy as np
import pytest

from fluxbridge.errors import InputError
from fluxbridge.studies.site_files import EXTRA_METEO_COLUMNS, find_site_files


def test_extra_meteorology_is_read_from_each_file(two_sites_read):
    sites, a, b = two_sites_read
    assert set(EXTRA_METEO_COLUMNS) <= set(sites.data_vars)
    np.testing.assert_allclose(sites["lw_in"].sel(site="XX-Aaa"), a["LW_IN_F"], atol=1e-4)
    np.testing.assert_allclose(sites["pa"].sel(site="XX-Bbb"), b["PA_F"], atol=1e-4)
    assert sites["ws"].sel(site="XX-Bbb").isnull().all()  # the file lacks WS_F
    assert sites["lw_in"].attrs["units"] == "W m-2"


def test_find_site_files_finds_the_monthly_files(two_sites):
    paths, _, _, _ = two_sites
    found, step = find_site_files(paths[0].parent)
    assert step == "MM" and found == paths


def test_find_site_files_picks_one_resolution(tmp_path, real_data):
    paths, step = find_site_files(real_data / "fluxnet2015" / "MM")
    assert step == "MM" and len(paths) == 206
    assert len({p.name.split("_")[1] for p in paths}) == 206
    (tmp_path / "FLX_XX-Aaa_FLUXNET2015_SUBSET_MM_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    (tmp_path / "FLX_XX-Bbb_FLUXNET2015_SUBSET_DD_2001-2002_1-4.csv").write_text("TIMESTAMP\n")
    with pytest.raises(InputError, match="one of MM or DD"):
        find_site_files(tmp_path)
    assert find_site_files(tmp_path, "DD")[0][0].name.startswith("FLX_XX-Bbb")
    with pytest.raises(InputError, match="directory"):
        find_site_files(tmp_path / "missing")


