"""Site metrics by time scale against known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fluxbridge.errors import InputError
from fluxbridge.evaluation.metrics import SCALES, scale_tables, scores, site_metrics


def _table(step: str = "MS", n_sites: int = 6, years: int = 3, seed: int = 1) -> pd.DataFrame:
    """Observations = site offset + seasonal cycle + noise; predictions built from them."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2001-01-01", periods=years * 12, freq="MS") if step == "MS" else \
        pd.date_range("2001-01-01", f"{2000 + years}-12-31", freq="D")
    rows = []
    for i in range(n_sites):
        offset = rng.normal(0, 1.5)
        amp = rng.uniform(0.5, 3)
        msc = amp * np.sin(2 * np.pi * (times.month - 1) / 12)
        noise = rng.normal(0, 0.7, times.size)
        obs = offset + msc + noise
        rows.append(pd.DataFrame({
            "site": f"S{i}", "time": times, "fold": i % 3,
            "igbp": "ENF" if i % 2 else "GRA", "region": "A" if i < 3 else "B",
            "observed": obs, "weight": 1.0,
            "perfect": obs, "offset": obs + 0.8,
            "msc_only": offset + msc,  # the cycle without the noise
        }))
    df = pd.concat(rows, ignore_index=True)
    if step == "MS":
        df["time"] = df["time"].dt.strftime("%Y-%m")
    return df


def _score(table: pd.DataFrame, model: str, scale: str) -> pd.Series:
    m = site_metrics(table, [model])
    return m[(m.model == model) & (m.scale == scale)].iloc[0]


def test_scores_perfect_and_offset():
    obs = np.array([1.0, 2.0, 4.0, 7.0])
    s = scores(obs, obs)
    assert s["r2"] == 1.0 and s["rmse"] == 0.0 and s["bias"] == 0.0 and s["n"] == 4
    s = scores(obs, obs + 2.0)
    assert s["bias"] == pytest.approx(2.0)
    assert s["rmse"] == pytest.approx(2.0)
    assert s["r2_pearson"] == pytest.approx(1.0)
    sst = np.sum((obs - obs.mean()) ** 2)
    assert s["r2"] == pytest.approx(1 - 4 * 4 / sst)


def test_scores_constant_prediction_of_mean_has_zero_r2_and_nan_pairs_ignored():
    obs = np.array([1.0, 3.0, np.nan, 5.0])
    s = scores(obs, np.full(4, 3.0))
    assert s["r2"] == pytest.approx(0.0)
    assert s["n"] == 3
    assert np.isnan(s["r2_pearson"])


def test_weights_change_the_scores():
    obs = np.array([0.0, 0.0, 0.0])
    pred = np.array([1.0, 1.0, 4.0])
    assert scores(obs, pred, np.array([1.0, 1.0, 0.0]))["rmse"] == pytest.approx(1.0)
    assert scores(obs, pred)["rmse"] == pytest.approx(np.sqrt(6.0))


@pytest.mark.parametrize("step", ["MS", "D"])
def test_perfect_model_is_perfect_at_every_scale(step):
    m = site_metrics(_table(step, years=2 if step == "D" else 3), ["perfect"])
    assert set(m.scale) == set(SCALES)
    assert np.allclose(m.r2, 1.0)
    assert np.allclose(m.rmse, 0.0)
    assert (m.n > 0).all()


def test_offset_shows_as_bias_but_leaves_anomalies_untouched():
    table = _table()
    m = site_metrics(table, ["offset"]).set_index("scale")
    for scale in ("all", "across_site", "seasonal"):
        assert m.loc[scale, "bias"] == pytest.approx(0.8)
        assert m.loc[scale, "r2"] < 1.0
    for scale in ("anomaly", "interannual"):
        assert m.loc[scale, "bias"] == pytest.approx(0.0, abs=1e-12)
        assert m.loc[scale, "r2"] == pytest.approx(1.0)


def test_msc_only_model_gets_the_cycle_but_no_anomalies():
    table = _table(years=6)
    # make the model's cycle exactly the observed mean seasonal cycle of each site
    obs_t = pd.to_datetime(table["time"])
    table["msc_only"] = table.groupby(["site", obs_t.dt.month])["observed"].transform("mean")
    m = site_metrics(table, ["msc_only"]).set_index("scale")
    assert m.loc["seasonal", "r2"] == pytest.approx(1.0)
    assert m.loc["across_site", "r2"] == pytest.approx(1.0)
    assert m.loc["anomaly", "r2"] <= 0.0
    assert m.loc["all", "r2"] < 1.0


def test_by_group_covers_each_class_and_sample_counts_add_up():
    table = _table()
    overall = site_metrics(table, ["perfect", "offset"])
    by = site_metrics(table, ["perfect", "offset"], by="igbp")
    assert set(by["igbp"]) == {"ENF", "GRA"}
    for (model, scale), part in by.groupby(["model", "scale"]):
        total = overall[(overall.model == model) & (overall.scale == scale)].n.iloc[0]
        assert part.n.sum() == total
    by_region = site_metrics(table, ["perfect"], by="region")
    assert set(by_region["region"]) == {"A", "B"}


def test_models_scored_on_identical_samples():
    table = _table()
    table.loc[:9, "offset"] = np.nan
    m = site_metrics(table, ["perfect", "offset"])
    n = m.pivot(index="scale", columns="model", values="n")
    assert (n["perfect"] == n["offset"]).all()
    assert n.loc["all", "perfect"] == len(table) - 10


def test_daily_data_aggregated_to_months_for_seasonal_scales():
    daily = _table("D", n_sites=2, years=2)
    tables = scale_tables(daily, ["perfect"])
    assert len(tables["all"]) == len(daily)
    assert len(tables["seasonal"]) == 2 * 12
    assert len(tables["anomaly"]) == 2 * 24


def test_interannual_needs_two_complete_years():
    table = _table(years=3)
    t = pd.to_datetime(table["time"])
    # site S0 keeps only one complete year
    table = table[~((table.site == "S0") & (t.dt.year > 2001))]
    tables = scale_tables(table, ["perfect"])
    assert "S0" not in set(tables["interannual"]["site"])
    assert set(tables["interannual"]["site"]) == {f"S{i}" for i in range(1, 6)}
    # anomalies of S0 are undefined (each month of year seen once)
    assert "S0" not in set(tables["anomaly"]["site"])


def test_bad_input_raises_input_error():
    table = _table()
    with pytest.raises(InputError, match="nope"):
        site_metrics(table, ["nope"])
    with pytest.raises(InputError, match="group"):
        site_metrics(table, ["perfect"], by="continent")
    bad = table.assign(time="not a time")
    with pytest.raises(InputError, match="time"):
        site_metrics(bad, ["perfect"])
