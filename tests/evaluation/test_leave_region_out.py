"""Leave-region-out scores: each region judged only from the run that withheld it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_data import REGIONS, regional_series

from fluxbridge.errors import InputError
from fluxbridge.evaluation.leave_region_out import (
    HELDOUT,
    leave_region_out_scores,
    leave_region_out_table,
)
from fluxbridge.evaluation.regional import OVERALL


def test_scores_use_only_the_held_out_runs():
    ref = regional_series(10)
    runs = []
    for held in REGIONS:
        # a run that is perfect where it is constrained and off by 7 where held out
        run = ref.assign(heldout=held)
        run.loc[run.region == held, "nee_tgc"] += 7.0
        runs.append(run)
    scores = leave_region_out_scores(pd.concat(runs), ref)
    per_region = scores[scores.region != OVERALL]
    assert np.allclose(per_region.monthly_rmse, 7.0)
    assert set(per_region.region) == set(REGIONS)
    with pytest.raises(InputError, match="held-out region"):
        leave_region_out_scores(ref.assign(heldout="nowhere"), ref)


def test_table_scores_only_withheld_regions_against_both_references():
    reference = regional_series(10)
    spread = reference.rename(columns={"nee_tgc": "nee_spread"}).assign(nee_spread=1.0)
    names = sorted(REGIONS)
    held = reference[reference["region"].isin(names[:2])].assign(
        heldout=lambda d: d["region"], nee_tgc=lambda d: d["nee_tgc"] + 3.0)
    other = reference.assign(nee_tgc=reference["nee_tgc"] - 1.0)
    table = leave_region_out_table(held, {"dual": other}, reference=reference, spread=spread,
                                   truth=reference)
    assert set(table["against"]) == {"inversions", "truth"}
    assert set(table["model"]) == {"dual", HELDOUT}
    assert set(table["region"]) == {*names[:2], "all"}
    rmse = table.set_index(["against", "model", "region"])["monthly_rmse"]
    assert rmse[("truth", HELDOUT, "all")] == pytest.approx(3.0)
    assert rmse[("inversions", "dual", names[0])] == pytest.approx(1.0)
