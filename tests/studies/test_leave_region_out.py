"""Leave-region-out on the tiny method world: the withheld region's constraint is really absent
from its run, each region's totals come from its own run, and results are reused from the
cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from method_world import FEATURES, World, make_world

from fluxbridge import training
from fluxbridge.config import parse_config
from fluxbridge.errors import InputError
from fluxbridge.studies.grid_totals import regional_series
from fluxbridge.studies.leave_region_out import leave_region_out, target_regions, withhold_region

FAST = parse_config({
    "features": list(FEATURES),
    "network": {"width": 8, "depth": 1, "embed_dim": 2, "epochs": 2, "batch_size": 512,
                "lr": 5e-3, "patience": 100, "device": "cpu"},
    "constraint": {"K": 8, "lambda_regional": 1.0},
    "tuning": {"regional": {"obs_per_step": 8}}})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(resolution=10.0, n_sites=12, seed=5)


@pytest.fixture(scope="module")
def sites(world) -> list[str]:
    return sorted(world.samples["site"].unique())


def test_withhold_region_removes_exactly_that_region(world):
    ids = sorted(target_regions(world.targets))
    reduced = withhold_region(world.targets, ids[0])
    assert sorted(reduced["region"].values.tolist()) == ids[1:]
    xr_left = world.targets.sel(region=ids[1:])
    np.testing.assert_array_equal(reduced["nee_mean"].values, xr_left["nee_mean"].values)
    with pytest.raises(InputError, match="no targets"):
        withhold_region(world.targets, 999)


def test_each_run_lacks_only_its_withheld_region(world, sites, monkeypatch, tmp_path):
    seen: list[tuple[set[int], list]] = []
    real = training.train_ensemble

    def spy(samples, cfg, *, targets, **kw):
        members = real(samples, cfg, targets=targets, **kw)
        seen.append((set(targets["region"].values.astype(int).tolist()), members))
        return members

    monkeypatch.setattr(training, "train_ensemble", spy)
    all_ids = set(target_regions(world.targets))
    withhold = sorted(all_ids)[:3]
    out = leave_region_out(world.samples, FAST, grid=world.grid, targets=world.targets,
                           regions=world.regions, train_sites=sites, withhold=withhold,
                           cache_dir=tmp_path)
    assert len(seen) == 3
    names = target_regions(world.targets)
    for rid, (trained_on, members) in zip(withhold, seen):
        # the withheld region's target is absent from its training run, every other present
        assert trained_on == all_ids - {rid}
        # the rows of that region come from that run, and only that region's rows
        rows = out[out["heldout"] == names[rid]]
        assert set(rows["region"]) == {names[rid]}
        again = regional_series(members, world.grid, world.regions, only=[rid])
        np.testing.assert_allclose(rows["nee_tgc"].to_numpy(), again["nee_tgc"].to_numpy(),
                                   rtol=1e-5)
    # a rerun reads the cache and trains nothing
    seen.clear()
    cached = leave_region_out(world.samples, FAST, grid=world.grid, targets=world.targets,
                              regions=world.regions, train_sites=sites, withhold=withhold,
                              cache_dir=tmp_path)
    assert seen == []
    pd.testing.assert_frame_equal(cached, out, check_dtype=False)


def test_regional_series_only_equals_the_full_computation(world, sites):
    model = training.train_network(world.samples, FAST, train_sites=sites, grid=world.grid,
                                   targets=world.targets, regions=world.regions,
                                   progress=False)
    full = regional_series(model, world.grid, world.regions)
    rid = sorted(target_regions(world.targets))[1]
    name = target_regions(world.targets)[rid]
    one = regional_series(model, world.grid, world.regions, only=[rid])
    expected = full[full["region"] == name]["nee_tgc"].to_numpy()
    # float32 sums: compare against the series' scale, months near zero included
    np.testing.assert_allclose(one["nee_tgc"].to_numpy(), expected, rtol=0,
                               atol=1e-6 * float(np.abs(expected).max()))


def test_site_only_settings_are_refused(world, sites):

    with pytest.raises(InputError, match="dual"):
        leave_region_out(world.samples, FAST.with_lambda(0.0),
                         grid=world.grid, targets=world.targets, regions=world.regions,
                         train_sites=sites)
