"""The land carbon budget table: every model against every inversion member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from band_members import band_member

from fluxbridge.evaluation.budget import (
    GLOBAL,
    MEAN,
    SPREAD,
    budget_section,
    budget_sentence,
    budget_table,
    budget_z,
)
from fluxbridge.io.targets import ensemble_targets

NAMES = {1: "North", 2: "Tropical", 3: "South"}


def _series(tg_month: dict[str, float]) -> pd.DataFrame:
    months = pd.date_range("2001-01-01", periods=12, freq="MS").strftime("%Y-%m")
    return pd.DataFrame([{"region": r, "time": t, "nee_tgc": v}
                         for r, v in tg_month.items() for t in months])


@pytest.fixture
def targets():
    # members a, b, c: NBE = month + year + offset (0, 60, 120) over 2001
    return ensemble_targets([band_member(n, "2001-01-01", 12, o)
                             for n, o in (("a", 0.0), ("b", 60.0), ("c", 120.0))], NAMES)


def test_budget_table_known_answers(targets):
    series = {"site_only": _series({"North": -500.0, "Tropical": -1000.0, "South": -100.0})}
    table = budget_table(series, targets)
    # a model at a constant monthly total: 12 x that [Tg] = PgC/yr / 1000
    np.testing.assert_allclose(table.loc["site_only", ["North", "Tropical", "South"]],
                               [-6.0, -12.0, -1.2])
    assert table.loc["site_only", GLOBAL] == pytest.approx(-19.2)
    # member a: mean monthly NBE = 6.5 + 2001 Tg; annual = 12 x that; global = 3 regions
    a = 12 * (6.5 + 2001) / 1000
    assert table.loc["a", "North"] == pytest.approx(a)
    assert table.loc["a", GLOBAL] == pytest.approx(3 * a)
    # mean and spread across the members' annual totals: offsets 0, 60, 120 Tg/month
    assert table.loc[MEAN, "South"] == pytest.approx(a + 0.72)
    assert table.loc[SPREAD, "South"] == pytest.approx(0.72)
    assert table.loc[SPREAD, GLOBAL] == pytest.approx(3 * 0.72)
    z = budget_z(table)
    assert z.loc["site_only", "South"] == pytest.approx((-1.2 - a - 0.72) / 0.72, abs=0.01)


def test_budget_in_words_and_section(targets):
    series = {"site_only": _series({"North": -500.0, "Tropical": -1000.0, "South": -100.0}),
              "dual": _series({"North": 200.0, "Tropical": 200.0, "South": 200.0})}
    table = budget_table(series, targets)
    words = budget_sentence(table)
    assert f"± {table.loc[SPREAD, GLOBAL]:.2f} PgC/yr (mean ± spread of 3 members" in words
    assert "site-only -19.20" in words and "dual +7.20" in words
    section, same = budget_section(series, targets)
    assert same.equals(table) and "none" in section.text
