"""The towers' comparison: the fit to the towers through the full footprint rows of H, against
answers computed here by hand (a constant flux; the truth plus known noise), and the table's
rows and columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tower_files import write_stilt_foot

from fluxbridge.evaluation.tower_section import (
    DOMAINS,
    TITLE,
    comparison_table,
    enhancement_fit,
    observed_enhancement,
    tower_section,
)
from fluxbridge.grid import make_grid
from fluxbridge.io.footprints import read_stilt_footprint
from fluxbridge.io.towers import TowerObservations
from fluxbridge.operators.footprint import UMOL_M2_S_PER_GC_M2_D, FootprintOperator

GRID = make_grid(2.0)  # lat 89, 87, ... ; lon -179, -177, ...
LAT_IDX, LON_IDX = (a.ravel() for a in np.meshgrid(np.arange(20, 24), np.arange(40, 45),
                                                   indexing="ij"))  # 20 land cells
FOOT_LAT = np.sort(GRID["lat"].values[20:24])  # the land cells' centres, ascending (STILT)
FOOT_LON = GRID["lon"].values[40:45]
TIMES = pd.date_range("2020-06-25", "2020-07-05", freq="D")
RECEPTORS = ("2020-07-01 18:00", "2020-07-02 12:00", "2020-07-04 20:00", "2020-06-26 06:00")
"""The last one reaches 72 h back, before the first day: not a row of H."""
N_HOURS = 72


def _foot(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(N_HOURS) / 24.0)[:, None, None]
    return decay * rng.gamma(0.5, 1e-2, (N_HOURS, FOOT_LAT.size, FOOT_LON.size))


@pytest.fixture(scope="module")
def towers(tmp_path_factory) -> TowerObservations:
    """Four receptors' footprint files and a table whose enhancements are set by each test."""
    folder = tmp_path_factory.mktemp("foot")
    paths = []
    for k, when in enumerate(RECEPTORS):
        stamp = pd.Timestamp(when).strftime("%Y%m%d%H%M")
        paths.append(write_stilt_foot(folder / f"{stamp}_-95.0_46.0_300_foot.nc", _foot(k),
                                      FOOT_LAT, FOOT_LON, when))
    table = pd.DataFrame({"site": "TWR", "time": pd.DatetimeIndex(RECEPTORS),
                          "enhancement_ppm": np.nan})
    return TowerObservations(paths, table)


@pytest.fixture(scope="module")
def op(towers) -> FootprintOperator:
    """H built with the receptors in reverse order (the rows need not follow the table)."""
    return FootprintOperator((read_stilt_footprint(p) for p in towers.paths[::-1]), TIMES,
                             GRID["lat"].values, GRID["lon"].values, LAT_IDX, LON_IDX)


def _by_hand(path, field: np.ndarray) -> float:
    """Σ over hours and cells of foot × the flux of the hour's day [ppm]: the footprint's own
    cells are the land cells, in the order of LAT_IDX, LON_IDX."""
    foot = read_stilt_footprint(path).transpose("time", "lat", "lon")
    day = TIMES.get_indexer(pd.DatetimeIndex(foot["time"].values).normalize())
    total = 0.0
    for c, (iy, ix) in enumerate(zip(LAT_IDX, LON_IDX)):
        hourly = foot.sel(lat=GRID["lat"].values[iy], lon=GRID["lon"].values[ix]).values
        total += float(np.sum(hourly * field[day, c]))
    return total * UMOL_M2_S_PER_GC_M2_D


def _with_enhancement(towers: TowerObservations, values: dict[int, float]
                      ) -> TowerObservations:
    table = towers.table.copy()
    for k, v in values.items():
        table.loc[k, "enhancement_ppm"] = v
    return TowerObservations(towers.paths, table)


def test_observed_enhancement_follows_the_rows_of_h(towers, op):
    tw = _with_enhancement(towers, {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})
    assert len(op.obs_index) == 3  # the early receptor reaches outside the days
    np.testing.assert_array_equal(observed_enhancement(tw, op), [3.0, 2.0, 1.0])


def test_constant_flux_gives_flux_times_footprint_integral(towers, op):
    c = -1.7  # gC m-2 d-1, uptake
    integral = [float(read_stilt_footprint(p).sum()) for p in towers.paths[:3]]
    expected = {k: c * UMOL_M2_S_PER_GC_M2_D * v for k, v in enumerate(integral)}
    field = np.full((TIMES.size, LAT_IDX.size), c)
    exact = enhancement_fit(op, observed_enhancement(_with_enhancement(towers, expected), op),
                            {"const": field})
    assert exact["towers_rmse_ppm"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    none = enhancement_fit(op, np.zeros(3), {"const": field}).iloc[0]
    assert none["towers_mean_bias_ppm"] == pytest.approx(np.mean(list(expected.values())),
                                                         rel=1e-9)
    assert none["towers_mean_bias_ppm"] < 0  # uptake lowers the mole fraction
    assert none["n_receptors"] == 3


def test_the_true_flux_misses_by_the_noise_only(towers, op):
    rng = np.random.default_rng(7)
    truth = rng.normal(0.0, 2.0, (TIMES.size, LAT_IDX.size))
    noise = np.array([0.8, -1.5, 0.3])
    observed = {k: _by_hand(towers.paths[k], truth) + noise[k] for k in range(3)}
    fit = enhancement_fit(op, observed_enhancement(_with_enhancement(towers, observed), op),
                          {"truth": truth, "zero": np.zeros_like(truth)}).set_index("model")
    assert fit.loc["truth", "towers_mean_bias_ppm"] == pytest.approx(-noise.mean(), abs=1e-9)
    assert fit.loc["truth", "towers_rmse_ppm"] == pytest.approx(
        np.sqrt(np.mean(noise**2)), abs=1e-9)
    assert fit.loc["zero", "towers_rmse_ppm"] > fit.loc["truth", "towers_rmse_ppm"]


def _fit(models) -> pd.DataFrame:
    return pd.DataFrame({"model": models, "towers_rmse_ppm": 1.0, "towers_mean_bias_ppm": 0.5,
                         "n_receptors": 3})


def test_table_has_a_row_per_model_in_order_and_the_truth_columns_only_with_a_truth():
    models = ["dual", "site_only", "regional_only", "footprint_only"]
    scores = pd.DataFrame([{"model": m, "domain": d, "monthly_rmse_tgc": i + 10.0 * j,
                            "mean_abs_annual_bias_tgc": -1.0, "n_regions": 1}
                           for i, m in enumerate(models) for j, d in enumerate(DOMAINS)])
    table = comparison_table(_fit(models), scores)
    assert list(table["model"]) == ["site-only", "footprints only", "regional only",
                                    "both (dual)"]
    assert table.loc[3, "footprint cells RMSE [TgC/month]"] == 10.0  # dual: i 0, j 1
    assert table.loc[0, "everywhere RMSE [TgC/month]"] == 21.0  # site_only: i 1, j 2
    real = comparison_table(_fit(models))
    assert list(real.columns) == ["model", "towers RMSE [ppm]", "towers mean bias [ppm]"]
    section = tower_section(real, 3)
    assert section.title == TITLE and "trained once on every site" in section.text
    assert "footprint region (" not in section.text
    twin = tower_section(table, 3, ["Europe"], truth_rmse_ppm=0.98).text
    assert "Europe" in twin and "0.98 ppm" in twin and "0.98" not in section.text
