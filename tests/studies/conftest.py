"""FLUXNET2015 monthly files and site lists for the site cross-validation tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
from fluxnet_files import write_mm_file, write_site_list


@pytest.fixture
def two_sites(tmp_path) -> tuple[list[Path], Path, pd.DataFrame, pd.DataFrame]:
    """Two MM files (XX-Aaa lacks NEE in four months, XX-Bbb lacks WS_F) and their site list:
    the files, the list and what each file holds."""
    data = tmp_path / "MM"
    data.mkdir()
    a = write_mm_file(data, "XX-Aaa", 1, nee_missing=(0, 1, 2, 13))
    b = write_mm_file(data, "XX-Bbb", 2, with_ws=False)
    write_site_list(tmp_path / "sites.csv", ["XX-Aaa", "XX-Bbb"])
    return sorted(data.glob("*.csv")), tmp_path / "sites.csv", a, b


@pytest.fixture
def two_sites_read(two_sites) -> tuple[xr.Dataset, pd.DataFrame, pd.DataFrame]:
    """The two sites read with their extra meteorology, and what each file holds."""
    from fluxbridge.io.fluxnet import read_sites
    from fluxbridge.io.fluxnet_meteo import read_extra_meteo
    from fluxbridge.io.sitemeta import read_site_metadata

    paths, site_list, a, b = two_sites
    sites = read_sites(paths, read_site_metadata(site_list), time_step="MM")
    return read_extra_meteo(paths, sites), a, b
