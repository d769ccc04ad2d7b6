"""Global annual NEE against the truth, judged by the spread of the inversion members' global
totals: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.evaluation.regional import global_spread_check, member_global_annual


def _annual(values: dict[str, list[float]], years=(2001, 2002)) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "year": y, "nee_pgc": v}
                         for m, vs in values.items() for y, v in zip(years, vs)])


def test_hand_computed_spread_z_and_verdict():
    # members' means over two years: -2, -3, -4 -> mean -3, sample sd 1
    members = _annual({"A": [-2.5, -1.5], "B": [-3.0, -3.0], "C": [-4.5, -3.5]})
    annual = _annual({"truth": [-3.0, -2.0],        # mean -2.5
                      "close": [-3.5, -2.5],        # error -0.5 -> z -0.5, within
                      "far": [-5.0, -4.0]})         # error -2.0 -> z -2, outside
    summary, per_year = global_spread_check(annual, members)
    s = summary.set_index("model")
    assert list(s.index) == ["close", "far"]          # the truth is not a row
    assert s.loc["close", "inversion_mean_pgc"] == pytest.approx(-3.0)
    assert s.loc["close", "inversion_spread_pgc"] == pytest.approx(1.0)
    assert s.loc["close", "truth_pgc"] == pytest.approx(-2.5)
    assert s.loc["close", "error_pgc"] == pytest.approx(-0.5)
    assert s.loc["close", "z"] == pytest.approx(-0.5)
    assert bool(s.loc["close", "within_spread"]) is True
    assert s.loc["far", "z"] == pytest.approx(-2.0)
    assert bool(s.loc["far", "within_spread"]) is False
    # single years: 2001 members -2.5, -3, -4.5 (sd = sqrt(13/12)); 2002: -1.5, -3, -3.5
    sd01 = np.std([-2.5, -3.0, -4.5], ddof=1)
    y = per_year.set_index(["model", "year"])
    assert y.loc[("close", 2001), "inversion_spread_pgc"] == pytest.approx(sd01)
    assert y.loc[("close", 2001), "z"] == pytest.approx(-0.5 / sd01)
    assert s.loc["close", "frac_years_within"] == pytest.approx(1.0)
    assert s.loc["far", "frac_years_within"] == pytest.approx(0.0)


def test_only_common_years_are_compared():
    members = _annual({"A": [-1.0, -2.0, 0.0], "B": [-3.0, -4.0, 0.0]}, years=(1, 2, 3))
    annual = pd.concat([_annual({"truth": [-2.0, -3.0]}, years=(1, 2)),
                        _annual({"m": [-2.0, -3.0, 50.0]}, years=(1, 2, 3))])
    s = global_spread_check(annual, members)[0].set_index("model").loc["m"]
    assert s["n_years"] == 2 and s["error_pgc"] == pytest.approx(0.0)


def test_no_members_gives_no_verdict_and_missing_truth_is_refused():
    annual = _annual({"truth": [1.0, 1.0], "m": [1.0, 1.0]})
    s = global_spread_check(annual, member_global_annual(xr.Dataset()))[0].iloc[0]
    assert np.isnan(s["inversion_spread_pgc"]) and s["within_spread"] is None
    with pytest.raises(InputError, match="truth"):
        global_spread_check(_annual({"m": [1.0, 1.0]}), _annual({"A": [1.0, 1.0]}))


def test_member_totals_sum_regions_over_complete_years():
    times = pd.date_range("2001-01-01", periods=24, freq="MS")
    nee = np.zeros((2, 2, 24))
    nee[0] += 10.0    # member a: 2 regions x 12 months x 10 Tg = 0.24 Pg per year
    nee[1, 0] = 5.0   # member b: one region at 5 Tg, the other 0 -> 0.06 Pg
    nee[1, 1, 20] = np.nan  # member b lacks a month of 2002 -> no total that year
    ds = xr.Dataset({"nee": (("member", "region", "time"), nee)},
                    coords={"member": ["a", "b"], "region": [1, 2], "time": times,
                            "region_name": ("region", ["R1", "R2"])})
    got = member_global_annual(ds).set_index(["model", "year"])["nee_pgc"]
    assert got[("a", 2001)] == pytest.approx(0.24) and got[("a", 2002)] == pytest.approx(0.24)
    assert got[("b", 2001)] == pytest.approx(0.06)
    assert ("b", 2002) not in got.index
