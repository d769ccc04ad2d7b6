"""Regional and global product tables and files from known totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.operators import totals_frame
from fluxbridge.outputs.products import write_global, write_regional
from fluxbridge.regions import builtin_regions, region_names


@pytest.fixture(scope="module")
def regions() -> xr.Dataset:
    return builtin_regions("transcom_like", 20.0)


def test_totals_frame_layout():
    totals = xr.DataArray(np.arange(4.0).reshape(2, 2), dims=("region", "time"),
                          coords={"region": [1, 2], "region_name": ("region", ["A", "B"]),
                                  "time": pd.date_range("2003-01-01", periods=2, freq="MS")})
    df = totals_frame(totals)
    assert list(df.columns) == ["region", "time", "nee_tgc"]
    assert list(df["time"]) == ["2003-01", "2003-02", "2003-01", "2003-02"]
    assert list(df["region"]) == ["A", "A", "B", "B"]
    np.testing.assert_array_equal(df["nee_tgc"], [0.0, 1.0, 2.0, 3.0])


def test_regional_members_mean_and_spread(regions, tmp_path):
    months = pd.date_range("2010-01-01", periods=3, freq="MS")
    n_region = len(region_names(regions))
    base = np.arange(n_region * 3, dtype=float).reshape(n_region, 3)
    tgc = np.stack([base - 1.0, base + 1.0])  # two members 2 Tg apart
    write_regional(tgc, months, regions, {}, tmp_path / "r.csv", tmp_path / "r.nc")
    with xr.open_dataset(tmp_path / "r.nc") as ds:
        np.testing.assert_allclose(ds["nee_tgc"].values, base)
        np.testing.assert_allclose(ds["nee_tgc_spread"].values, np.sqrt(2.0))
        assert ds["nee_tgc"].attrs["units"] == "Tg month-1"
    table = pd.read_csv(tmp_path / "r.csv")
    assert list(table.columns) == ["region", "time", "nee_tgc", "nee_tgc_spread"]
    assert len(table) == n_region * 3


def test_global_sums_months_by_year_in_pg(tmp_path):
    months = pd.date_range("2010-11-01", periods=4, freq="MS")  # two months of 2010, two of 2011
    tgc = np.full((1, 4), 250.0)  # 250 Tg a month
    write_global(tgc, months, {}, tmp_path / "g.csv", tmp_path / "g.nc")
    table = pd.read_csv(tmp_path / "g.csv")
    assert list(table["year"]) == [2010, 2011]
    np.testing.assert_allclose(table["nee_pgc"], [0.5, 0.5])
    assert "nee_pgc_spread" not in table
