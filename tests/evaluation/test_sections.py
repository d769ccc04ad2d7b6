"""Report sections built from tables in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from evaluation_data import inversion_targets, regional_series, site_predictions

from fluxbridge.evaluation.leave_region_out import HELDOUT
from fluxbridge.evaluation.sections import (
    inversion_section,
    leave_region_out_section,
    maps_section,
    regional_section,
    site_skill_section,
    sparsity_section,
)


def test_site_section_shows_the_cost_beside_the_skill():
    predictions = site_predictions()
    assert not any("Cost" in cap for cap, _ in site_skill_section(predictions, ["nn"])[0].tables)
    predictions.attrs["seconds_per_fold"] = {"nn": 12.34, "rf": 2.0, "other": 9.0}
    section, tables = site_skill_section(predictions, ["nn", "rf"])
    cost = dict(section.tables)[next(c for c, _ in section.tables if c.startswith("Cost"))]
    assert cost.to_dict("records") == [{"cost": "seconds per fold", "nn": 12.3, "rf": 2.0}]
    assert tables["cost"] is cost


def test_section_builders_return_their_tables_and_figures():
    site, site_tables = site_skill_section(site_predictions(), ["nn", "rf"])
    assert set(site_tables["by_scale"].model) == {"nn", "rf"}
    assert any("FLUXCOM" in cap for cap, _ in site.tables)
    assert len(site.figures) == 1
    ref = regional_series(10)
    spread = ref.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=2.0)
    reg, reg_tables = regional_section({"dual": ref, "site_only": regional_series(5)},
                                       reference=ref, spread=spread, truth=ref)
    vs = reg_tables["vs_truth"]
    assert np.allclose(vs[vs.model == "dual"].monthly_rmse, 0.0)
    assert not reg_tables["global_annual"].empty
    assert len(reg.figures) == 1
    overall = reg.tables[0][1]
    assert list(overall.columns) == ["score", "dual", "site_only"]  # models as columns
    assert {cap for cap, _ in reg.details} >= {
        "Monthly error of each region vs truth [TgC/month]",
        "Annual bias of each region vs inversions [TgC/yr]"}
    inv = inversion_section(inversion_targets())
    assert "4 inversion members" in inv.text
    assert len(inv.figures) == 1


def test_leave_region_out_section_scores_the_withheld_regions():
    truth = regional_series(10)
    spread = truth.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=1.0)
    heldout = truth[truth.region.isin(["North", "South"])].assign(
        heldout=lambda d: d.region, nee_tgc=lambda d: d.nee_tgc + 3.0)
    section, table = leave_region_out_section(
        heldout, {"dual": truth, "site_only": regional_series(5)}, reference=truth,
        spread=spread, truth=truth)
    rmse = table.set_index(["against", "model", "region"])["monthly_rmse"]
    assert rmse[("truth", HELDOUT, "all")] == pytest.approx(3.0)
    assert rmse[("truth", "dual", "North")] == pytest.approx(0.0)
    assert set(table.region) == {"North", "South", "all"}
    assert "2 runs" in section.text
    assert len(section.tables) == 1 and len(section.details) == 1
    assert len(section.figures) == 1
    wide = section.tables[0][1]
    assert list(wide.iloc[:, 0]) == ["North", "South", "all"]
    assert wide[("vs truth", HELDOUT)].iloc[-1] == pytest.approx(3.0)


def test_sparsity_section_says_how_the_study_was_run():
    table = pd.DataFrame({"estimator": ["site_only", "fixed", "exact"], "K": [None, 4, None],
                          "regional_rmse_tgc": [30.0, 12.0, 10.0],
                          "train_seconds": [1.0, 2.0, 9.0]})
    section = sparsity_section(table, {"epochs": 3, "reference": "truth"})
    assert "3 epochs, scored against the truth" in section.text
    assert "benchmark" not in section.text


def test_maps_section_averages_over_time_and_leaves_out_a_missing_truth():
    lat, lon = np.arange(60.0, -61, -30), np.arange(-150.0, 180, 60)
    coords = {"time": pd.date_range("2001-01-01", periods=2, freq="MS"), "lat": lat, "lon": lon}
    field = xr.DataArray(np.ones((2, lat.size, lon.size)), dims=("time", "lat", "lon"),
                         coords=coords)
    with_truth = maps_section(field, field * 0.5, truth=field * 2)
    means, changes = (fig for _, fig in with_truth.figures)
    assert [ax.get_title() for ax in means.axes if ax.get_label() != "<colorbar>"] == [
        "truth", "site-only", "dual"]
    assert len(changes.axes) == 3  # two maps and their colour bar
    without = maps_section(field.mean("time"), field * 0.5)
    assert len([ax for ax in without.figures[0][1].axes if ax.get_visible()]) == 3
