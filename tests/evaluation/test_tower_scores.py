"""Scores of the tower constraint: footprint weight by region, footprint cells, their totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr

from fluxbridge.evaluation.towers import (
    cell_scores,
    cell_set_series,
    footprint_cells,
    footprint_region,
    footprint_weight_by_region,
    tower_scores,
)
from fluxbridge.operators.operator import LinearOperator


def _operator() -> LinearOperator:
    """Two receptors, two days, four cells: weights 1, 2, 3, 4 on cells 0..3 over both rows."""
    rows = [0, 0, 1, 1, 1]
    cols = [0, 4 + 1, 2, 4 + 3, 3]  # column = day * 4 + cell
    data = [1.0, 2.0, 3.0, 1.0, 3.0]
    return LinearOperator(sp.csr_matrix((data, (rows, cols)), shape=(2, 8)), 2, 4)


def _regions() -> xr.Dataset:
    region = xr.DataArray(np.array([[1, 2]]), dims=("lat", "lon"),
                          attrs={"flag_values": [1, 2], "flag_meanings": "North South"})
    return xr.Dataset({"region": region})


def test_weight_by_region_and_the_footprint_region():
    share = footprint_weight_by_region(_operator(), np.array([1, 1, 2, 2]), _regions())
    assert share["North"] == pytest.approx(0.3) and share["South"] == pytest.approx(0.7)
    assert footprint_region(share, 0.5) == ["South"]
    assert sorted(footprint_region(share, 0.1)) == ["North", "South"]


def test_footprint_cells_are_the_fewest_holding_the_share():
    mask = footprint_cells(_operator(), 0.65)  # cells 3 (0.4) and 2 (0.3) hold 0.7
    np.testing.assert_array_equal(mask, [False, False, True, True])
    assert footprint_cells(_operator(), 1.0).all()


def test_cell_set_series_sums_area_times_days():
    times = pd.date_range("2020-01-30", periods=4, freq="D")  # two days in each month
    field = np.ones((4, 3))
    area = np.array([1e12, 2e12, 5e12])  # [m2]: 1 g m-2 d-1 over 1e12 m2 is 1 Tg d-1
    out = cell_set_series(field, times, area, np.array([True, True, False]))
    assert out["time"].tolist() == ["2020-01", "2020-02"]
    np.testing.assert_allclose(out["nee_tgc"], [6.0, 6.0])


def test_tower_scores_pool_the_seen_regions():
    times = [f"2020-{m:02d}" for m in range(1, 13)]
    truth = pd.DataFrame({"region": np.repeat(["A", "B"], 12), "time": times * 2,
                          "nee_tgc": 0.0})
    model = truth.assign(nee_tgc=np.r_[np.full(12, 3.0), np.full(12, 4.0)])
    scores = tower_scores({"m": model}, truth, ["A"]).set_index("domain")
    assert scores.loc["footprint region", "monthly_rmse_tgc"] == pytest.approx(3.0)
    assert scores.loc["everywhere", "monthly_rmse_tgc"] == pytest.approx(np.sqrt(12.5))
    assert scores.loc["everywhere", "mean_abs_annual_bias_tgc"] == pytest.approx(42.0)


def test_cell_scores_are_one_region_rows():
    times = [f"2020-{m:02d}" for m in range(1, 13)]
    truth = pd.DataFrame({"region": "footprint cells", "time": times, "nee_tgc": 1.0})
    scores = cell_scores({"m": truth.assign(nee_tgc=-1.0)}, truth)
    assert scores["domain"].tolist() == ["footprint cells"]
    assert scores["monthly_rmse_tgc"].iloc[0] == pytest.approx(2.0)
    assert scores["mean_abs_annual_bias_tgc"].iloc[0] == pytest.approx(24.0)
