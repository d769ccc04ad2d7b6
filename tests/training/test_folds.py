"""Site folds and validation splits: dealt over sites, spatial blocks kept together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fluxbridge.errors import InputError
from fluxbridge.training import make_folds, split_validation


def test_site_folds_partition_sites(world):
    folds = make_folds(world.samples, 5, "site", seed=1)
    assert sorted(folds.index) == sorted(world.samples["site"].unique())
    assert set(folds) == set(range(5))
    counts = folds.value_counts()
    assert counts.max() - counts.min() <= 1
    assert make_folds(world.samples, 5, "site", seed=2).tolist() != folds.tolist()


def test_spatial_folds_keep_blocks_together(world):
    folds = make_folds(world.samples, 3, "spatial", seed=0, block_deg=30.0)
    meta = world.samples.drop_duplicates("site").set_index("site")
    block = (np.floor(meta["lat"] / 30).astype(int).astype(str) + "/"
             + np.floor(meta["lon"] / 30).astype(int).astype(str))
    per_block = pd.DataFrame({"block": block, "fold": folds.loc[meta.index]})
    assert per_block.groupby("block")["fold"].nunique().max() == 1
    with pytest.raises(InputError, match="blocks"):
        make_folds(world.samples, 50, "spatial", block_deg=90.0)


def test_folds_refuse_too_few_sites_or_folds(world):
    with pytest.raises(InputError, match="folds"):
        make_folds(world.samples, 31, "site")  # 30 sites
    with pytest.raises(InputError, match="at least 2"):
        make_folds(world.samples, 1, "site")


def test_validation_split_holds_out_a_share_of_the_sites():
    sites = [f"S{i:02d}" for i in range(20)]
    fit, val = split_validation(sites, 0.15, seed=0)
    assert len(val) == 3 and not set(fit) & set(val) and set(fit) | set(val) == set(sites)
    assert split_validation(sites, 0.15, seed=0) == (fit, val)
    assert split_validation(sites, 0.15, seed=1)[1] != val
    assert split_validation(sites[:4], 0.5, seed=0) == (sites[:4], [])  # fewer than 5 sites
    assert split_validation(sites, 0.0, seed=0) == (sites, [])
