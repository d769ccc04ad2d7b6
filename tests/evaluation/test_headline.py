"""The report's first screen: the headline numbers with their meaning, and the headline figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_data import inversion_targets, regional_series

from fluxbridge.evaluation.headline import headline_numbers, regional_annual_means
from fluxbridge.evaluation.headline_figure import SIGN, headline_figure
from fluxbridge.evaluation.leave_region_out import HELDOUT
from fluxbridge.evaluation.regional import global_annual


def _headline() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["site_only", "dual", "rf"], "r2_all": [0.78, 0.77, 0.80],
        "global_nee_pgc": [-6.0, -4.0, -7.0], "truth_global_nee_pgc": -3.8,
        "inversion_global_nee_pgc": -3.5, "inversion_global_spread_pgc": 0.5,
        "global_within_spread": [False, True, False]})


def _scores() -> pd.DataFrame:
    """Regional scores: site-only 40, dual 10 TgC/month overall; annual biases ±."""
    return pd.DataFrame({
        "model": ["site_only"] * 3 + ["dual"] * 3 + ["rf"] * 3,
        "region": ["A", "B", "all"] * 3,
        "monthly_rmse": [30.0, 50.0, 40.0, 8.0, 12.0, 10.0, 20.0, 40.0, 30.0],
        "annual_bias": [-200.0, 100.0, -100.0, 20.0, -10.0, 10.0, 50.0, 50.0, 100.0]})


def _lro(withheld: float) -> pd.DataFrame:
    return pd.DataFrame({"against": "truth", "model": ["site_only", "dual", HELDOUT] * 2,
                         "region": ["A"] * 3 + ["all"] * 3,
                         "monthly_rmse": [30.0, 8.0, withheld, 30.0, 8.0, withheld]})


def test_one_row_per_number_models_as_columns_and_a_sentence_each():
    numbers = headline_numbers(_headline(), _scores(), truth_known=True,
                               leave_region_out=_lro(19.0))
    assert list(numbers.columns) == ["quantity", "site_only", "dual", "rf", HELDOUT, "meaning"]
    assert len(numbers) == 5
    rows = numbers.set_index("quantity")
    rmse = rows.loc["regional monthly error vs truth [TgC/month]"]
    assert (rmse["site_only"], rmse["dual"], rmse["rf"]) == (40.0, 10.0, 30.0)
    assert "75 % smaller" in rmse["meaning"]  # (40 - 10) / 40
    bias = rows.loc["regional annual bias vs truth [TgC/yr]"]
    assert bias["site_only"] == pytest.approx(150.0)  # mean of |-200| and |100|
    assert "90 % smaller" in bias["meaning"]  # 150 → 15
    assert "within the inversions' spread" in rows.loc["global NEE [PgC/yr]", "meaning"]
    assert all(isinstance(m, str) and m.endswith(".") for m in numbers["meaning"])
    assert np.isnan(rows.loc["global NEE [PgC/yr]", HELDOUT])


@pytest.mark.parametrize(("withheld", "phrase"), [
    (19.0, "keeps 50 % of the constraint's gain"),  # (30 - 19) / (30 - 8)
    (25.0, "keeps only 23 %"),
    (35.0, "worse there than the site-only model")])
def test_the_leave_region_out_sentence_says_how_much_gain_carries_over(withheld, phrase):
    numbers = headline_numbers(_headline(), _scores(), truth_known=True,
                               leave_region_out=_lro(withheld))
    row = numbers.iloc[-1]
    assert row["quantity"].endswith("(1 region)")
    assert row[HELDOUT] == withheld and phrase in row["meaning"]


def test_without_truth_the_numbers_are_against_the_inversions():
    numbers = headline_numbers(_headline(), _scores(), truth_known=False)
    assert numbers["quantity"].iloc[0] == "regional monthly error vs inversions [TgC/month]"
    assert HELDOUT not in numbers


def test_regional_annual_means_are_twelve_monthly_means_with_the_members_spread():
    targets = inversion_targets()
    series = {"truth": regional_series(0.0).assign(nee_tgc=2.0)}
    means = regional_annual_means(series, targets)
    assert list(means.index) == ["North", "Tropical", "South"]
    assert (means["truth"] == 24.0).all()
    member_means = targets["nee"].mean("time").values * 12.0  # member × region
    assert np.allclose(means["inversion_spread"], member_means.std(axis=0, ddof=1))
    assert np.allclose(means["inversions"], member_means.mean(axis=0))


def test_headline_figure_has_regional_global_and_withheld_panels_with_units_and_sign():
    targets = inversion_targets()
    series = {"site_only": regional_series(5), "dual": regional_series(9)}
    truth = regional_series(10)
    means = regional_annual_means({"truth": truth, **series}, targets)
    annual = global_annual({"truth": truth, **series})
    fig = headline_figure(means, annual, models=list(series), leave_region_out=_lro(19.0))
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_ylabel() == "NEE [TgC/yr]" and axes[1].get_ylabel() == "NEE [PgC/yr]"
    assert "[TgC/month]" in axes[2].get_xlabel()
    assert SIGN in fig.get_suptitle()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"truth", "site-only", "dual", "dual, region withheld"} <= set(legend)
    assert len(headline_figure(means, annual, models=list(series)).axes) == 2
