"""Regional metrics against analytic answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.evaluation.regional import (
    OVERALL,
    global_annual,
    regional_metrics,
    regional_summary,
    targets_frames,
)

TIMES = pd.date_range("2001-01-01", periods=48, freq="MS")


def _reference(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, region in enumerate(["North", "Tropical", "South"]):
        cycle = (k + 1) * 50 * np.cos(2 * np.pi * (TIMES.month - 7) / 12)
        iav = np.repeat(rng.normal(0, 20, 4), 12)
        rows.append(pd.DataFrame({"region": region, "time": TIMES.strftime("%Y-%m"),
                                  "nee_tgc": -30.0 * (k + 1) + cycle + iav}))
    return pd.concat(rows, ignore_index=True)


def _get(table: pd.DataFrame, model: str, region: str) -> pd.Series:
    return table[(table.model == model) & (table.region == region)].iloc[0]


def test_identical_series_scores_perfectly():
    ref = _reference()
    spread = ref.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=1.0)
    m = regional_metrics({"same": ref}, ref, spread)
    assert set(m.region) == {"North", "Tropical", "South", OVERALL}
    assert np.allclose(m.monthly_rmse, 0.0)
    assert np.allclose(m.annual_bias, 0.0)
    assert np.allclose(m.msc_corr, 1.0)
    assert np.allclose(m.msc_amplitude_ratio, 1.0)
    assert np.allclose(m.iav_corr, 1.0)
    assert np.allclose(m.frac_in_spread, 1.0)


def test_constant_offset_and_scaling():
    ref = _reference()
    shifted = ref.assign(nee_tgc=ref.nee_tgc + 5.0)
    doubled = ref.assign(nee_tgc=2 * ref.nee_tgc)
    spread = ref.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=4.0)
    m = regional_metrics({"shifted": shifted, "doubled": doubled}, ref, spread)
    north = _get(m, "shifted", "North")
    assert north.monthly_rmse == pytest.approx(5.0)
    assert north.annual_bias == pytest.approx(60.0)  # 12 months × 5 Tg
    assert north.msc_corr == pytest.approx(1.0)
    assert north.msc_amplitude_ratio == pytest.approx(1.0)
    assert north.frac_in_spread == 0.0
    assert _get(m, "shifted", OVERALL).annual_bias == pytest.approx(3 * 60.0)
    assert _get(m, "doubled", "Tropical").msc_amplitude_ratio == pytest.approx(2.0)
    assert _get(m, "doubled", "Tropical").iav_corr == pytest.approx(1.0)


def test_reversed_cycle_has_negative_correlation_and_partial_spread():
    ref = _reference()
    t = pd.to_datetime(ref.time)
    flipped = ref.assign(nee_tgc=ref.nee_tgc - 2 * 50 * np.cos(2 * np.pi * (t.dt.month - 7) / 12)
                         * (ref.region == "North"))
    spread = ref.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=50.0)
    m = regional_metrics({"f": flipped}, ref, spread)
    north = _get(m, "f", "North")
    assert north.msc_corr == pytest.approx(-1.0)
    assert 0.0 < north.frac_in_spread < 1.0
    assert _get(m, "f", "South").frac_in_spread == 1.0


def test_only_common_months_compared_and_incomplete_years_skip_annual():
    ref = _reference()
    short = ref[pd.to_datetime(ref.time) < "2002-07-01"]
    m = regional_metrics({"short": short}, ref)
    row = _get(m, "short", "North")
    assert row.n_months == 18
    assert np.isnan(row.iav_corr)  # a single complete year
    assert np.isnan(row.frac_in_spread)


def test_global_annual_sums_regions_of_complete_years():
    ref = _reference()
    g = global_annual({"ref": ref, "part": ref[pd.to_datetime(ref.time) < "2003-03-01"]})
    expected = ref.assign(year=pd.to_datetime(ref.time).dt.year).groupby("year").nee_tgc.sum()
    got = g[g.model == "ref"].set_index("year").nee_pgc
    assert np.allclose(got.values, expected.values / 1000.0)
    assert list(g[g.model == "part"].year) == [2001, 2002]


def test_regional_summary_pools_months_and_averages_absolute_annual_biases():
    ref = _reference()
    # +5 every month in North, -2 in South, exact in the tropics: annual biases +60, 0, -24
    off = ref.assign(nee_tgc=ref.nee_tgc + np.select(
        [ref.region == "North", ref.region == "South"], [5.0, -2.0], 0.0))
    summary = regional_summary(regional_metrics({"off": off, "same": ref}, ref))
    assert summary.loc["off", "regional_mean_abs_annual_bias_tgc"] == pytest.approx(
        (60.0 + 0.0 + 24.0) / 3)
    assert summary.loc["off", "regional_monthly_rmse_tgc"] == pytest.approx(
        np.sqrt((25.0 + 0.0 + 4.0) / 3))
    assert summary.loc["same"].to_list() == pytest.approx([0.0, 0.0])


def test_targets_frames_from_dataset():
    ids = [1, 2]
    ds = xr.Dataset(
        {"nee_mean": (("region", "time"), np.arange(2 * 24, dtype=float).reshape(2, 24)),
         "nee_spread": (("region", "time"), np.ones((2, 24)))},
        coords={"region": ids, "region_name": ("region", ["North", "South"]),
                "time": TIMES[:24]},
    )
    ref, spread = targets_frames(ds)
    assert set(ref.region) == {"North", "South"}
    assert ref.time.iloc[0] == "2001-01"
    m = regional_metrics({"ref": ref}, ref, spread)
    assert np.allclose(m.frac_in_spread, 1.0)
    with pytest.raises(InputError, match="nee_spread"):
        targets_frames(ds.drop_vars("nee_spread"))


def test_bad_tables_raise_input_error():
    ref = _reference()
    with pytest.raises(InputError, match="nee_tgc"):
        regional_metrics({"x": ref.drop(columns="nee_tgc")}, ref)
    other = ref.assign(region=ref.region + "-on-Mars")
    with pytest.raises(InputError, match="shares no"):
        regional_metrics({"x": other}, ref)
    with pytest.raises(InputError, match="duplicate"):
        regional_metrics({"x": pd.concat([ref, ref])}, ref)
