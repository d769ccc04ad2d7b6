"""Site folds: leave-site-out and spatially blocked cross-validation, and validation splits.

Folds are dealt over sites (never over samples), so a site's samples are all in one fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from fluxbridge.errors import InputError


def make_folds(samples: pd.DataFrame, k: int, kind: Literal["site", "spatial"] = "site",
               seed: int = 0, block_deg: float = 10.0) -> pd.Series:
    """Assign every site to one of ``k`` folds.

    Parameters
    ----------
    samples
        Table with ``site`` (and ``lat``, ``lon`` [degree] for spatial folds).
    k
        Number of folds.
    kind
        ``"site"``: sites shuffled and dealt round-robin (leave-site-out);
        ``"spatial"``: ``block_deg`` × ``block_deg`` latitude-longitude blocks shuffled and dealt
        round-robin, every site in its block's fold (neighbours never straddle train and test).
    seed
        Seed of the shuffle.
    block_deg
        Block size [degree] of spatial folds.

    Returns
    -------
    pd.Series
        Fold (0..k-1) indexed by site, named ``fold``.
    """
    sites = samples.drop_duplicates("site").set_index("site")
    n = len(sites)
    if k < 2:
        raise InputError(f"k = {k} folds", variable="folds", expected="at least 2")
    rng = np.random.default_rng(seed)
    if kind == "site":
        if n < k:
            raise InputError(f"{n} sites for {k} folds", variable="folds",
                             expected=f"at most {n} folds")
        fold = np.empty(n, dtype=np.int64)
        fold[rng.permutation(n)] = np.arange(n) % k
    elif kind == "spatial":
        for col in ("lat", "lon"):
            if col not in sites.columns:
                raise InputError("samples lack site coordinates", variable=col,
                                 expected="lat and lon columns for spatial folds")
        block = (np.floor(sites["lat"].to_numpy() / block_deg).astype(np.int64) * 10_000
                 + np.floor(sites["lon"].to_numpy() / block_deg).astype(np.int64))
        blocks, inverse = np.unique(block, return_inverse=True)
        if blocks.size < k:
            raise InputError(f"{blocks.size} spatial blocks of {block_deg} degrees for {k} "
                             "folds", variable="folds",
                             expected="fewer folds or smaller blocks")
        block_fold = np.empty(blocks.size, dtype=np.int64)
        block_fold[rng.permutation(blocks.size)] = np.arange(blocks.size) % k
        fold = block_fold[inverse]
    else:
        raise InputError(f"unknown fold kind {kind!r}", variable="split",
                         expected="'site' or 'spatial'")
    return pd.Series(fold, index=pd.Index(sites.index.astype(str), name="site"), name="fold")


def split_validation(train_sites: Sequence[str] | np.ndarray, fraction: float, seed: int
                     ) -> tuple[list[str], list[str]]:
    """Random ``fraction`` of sites held out for early stopping (none when fewer than 5 sites).

    Returns
    -------
    fit_sites, val_sites
    """
    sites = np.unique(np.asarray(train_sites).astype(str))
    n_val = round(fraction * sites.size) if sites.size >= 5 else 0
    if n_val == 0:
        return list(sites), []
    val = np.random.default_rng([seed, 7]).choice(sites, size=max(1, n_val), replace=False)
    return [x for x in sites if x not in set(val)], sorted(val)
