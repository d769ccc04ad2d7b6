"""The hierarchical correction: regions' grid offsets as draws around a shared mean.

Towers avoid disturbed stands everywhere, so much of what the regions' offsets
(:mod:`fluxbridge.training.offsets`) correct is shared. :func:`share_offsets` treats them as
draws around a random-effects mean: each constrained region's offset is shrunk toward it by its
own uncertainty, and a region without targets gets the mean (``tuning.offset.transfer: mean``,
the default) or only the share of it that a leave-one-region-out test over the constrained
regions supports (``tested``, :func:`transfer_weight`): where the regions' errors differ in sign
and size, the others' mean predicts a region's offset no better than zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr


def region_hemispheres(regions: xr.Dataset, n_regions: int) -> np.ndarray:
    """+1 or −1 for each region id 0..n_regions (n_regions + 1,): the sign of its cells'
    area-weighted mean latitude (+1 for ids without cells), so that a shared seasonal offset
    keeps its phase relative to each hemisphere's seasons."""
    ids = np.asarray(regions["region"].transpose("lat", "lon").values, dtype=np.int64)
    lat = np.asarray(regions["lat"].values, dtype=np.float64)
    weight = np.broadcast_to(np.cos(np.deg2rad(lat))[:, None], ids.shape)
    lat2d = np.broadcast_to(lat[:, None], ids.shape)
    inside = (ids > 0) & (ids <= n_regions)
    num = np.bincount(ids[inside], (weight * lat2d)[inside], minlength=n_regions + 1)
    return np.where(num < 0, -1.0, 1.0)


def random_effects_mean(values: np.ndarray, variances: np.ndarray) -> tuple[float, float]:
    """Random-effects mean and between-group variance τ² of estimates with known variances
    (DerSimonian and Laird, 1986): the weights 1 / (v + τ²) go from precision weights (τ² = 0,
    homogeneous groups) to equal weights (τ² ≫ v, groups that differ more than their
    estimates' noise).

    Parameters
    ----------
    values, variances
        (n,) the groups' estimates and their variances (same units, squared).

    Returns
    -------
    mean, tau2
    """
    w = 1.0 / np.maximum(variances, 1e-300)
    fixed = float(np.sum(w * values) / np.sum(w))
    q = float(np.sum(w * (values - fixed) ** 2))
    denom = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (values.size - 1)) / denom) if denom > 0 else 0.0
    w = 1.0 / (variances + tau2)
    return float(np.sum(w * values) / np.sum(w)), tau2


def share_offsets(coef: np.ndarray, variance: np.ndarray, constrained: np.ndarray,
                  hemisphere: np.ndarray, transfer: float = 1.0
                  ) -> tuple[np.ndarray, dict[str, list[float]]]:
    """The hierarchical correction: regions' offsets shrunk toward their shared mean.

    Each basis coefficient is treated on its own; the seasonal ones (all but the first) are
    compared in each region's own hemisphere (sign-flipped in the south).

    Parameters
    ----------
    coef
        (n_regions, n_basis) the regions' fitted offsets [g m-2 d-1].
    variance
        (n_regions, n_basis) their variances given the targets [(g m-2 d-1)²].
    constrained
        (n_regions,) bool, regions with targets (the others' ``coef`` and ``variance`` are
        ignored).
    hemisphere
        (n_regions,) +1 or −1.
    transfer
        Share [0, 1] of the mean given to regions without targets (:func:`transfer_weight`).

    Returns
    -------
    shared, info
        (n_regions, n_basis): constrained regions shrunk toward the mean by τ² / (τ² + v),
        the others at ``transfer`` × the mean; ``info`` the mean and τ² of each coefficient.
    """
    flip = np.ones_like(coef)
    flip[:, 1:] = hemisphere[:, None]
    local = coef * flip
    out = np.empty_like(coef)
    info: dict[str, list[float]] = {"mean": [], "tau2": []}
    for k in range(coef.shape[1]):
        on = constrained & np.isfinite(variance[:, k])
        if not on.any():
            out[:, k], mean, tau2 = local[:, k], 0.0, 0.0
        else:
            mean, tau2 = random_effects_mean(local[on, k], variance[on, k])
            keep = tau2 / (tau2 + variance[:, k]) if tau2 > 0 else np.zeros(coef.shape[0])
            out[:, k] = np.where(on, mean + keep * (local[:, k] - mean), transfer * mean)
        info["mean"].append(mean)
        info["tau2"].append(tau2)
    return out * flip, info


def transfer_weight(coef: np.ndarray, variance: np.ndarray, constrained: np.ndarray,
                    hemisphere: np.ndarray, blocks: Sequence[np.ndarray | None]) -> float:
    """The share α of the shared mean that a region without targets is given, by
    leave-one-region-out over the constrained regions.

    Each constrained region s in turn is predicted by the mean of the others (m₋ₛ, as
    :func:`share_offsets` gives it); α minimises Σₛ ‖Bₛ (cₛ − α m₋ₛ)‖² over its totals, clipped
    to [0, 1]: 1 when the others' mean predicts each region's own offset, 0 when it predicts
    it no better than no correction (regions' errors of different sign).

    Parameters
    ----------
    coef, variance, constrained, hemisphere
        As for :func:`share_offsets`.
    blocks
        (n_regions,) each region's exact totals per unit coefficient at its targets
        (n_targets_r, n_basis) [Tg month-1 per g m-2 d-1]; None for regions without targets.

    Returns
    -------
    float
        α in [0, 1]; 1 with fewer than three constrained regions (too few to test).
    """
    ids = np.flatnonzero(constrained)
    if ids.size < 3:
        return 1.0
    num = den = 0.0
    for s in ids:
        others = constrained.copy()
        others[s] = False
        shared, _ = share_offsets(coef, variance, others, hemisphere)
        block = blocks[s]
        assert block is not None
        predicted, own = block @ shared[s], block @ coef[s]
        num += float(predicted @ own)
        den += float(predicted @ predicted)
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def region_blocks(design: np.ndarray, rows: np.ndarray, obs_region: np.ndarray,
                  n_regions: int) -> list[np.ndarray | None]:
    """Each region's columns of ``design`` at its own ``rows`` (:func:`transfer_weight`'s
    ``blocks``); None for a region without rows."""
    n_basis = design.shape[1] // n_regions
    out: list[np.ndarray | None] = []
    for r in range(1, n_regions + 1):
        mine = rows & (obs_region == r)
        out.append(design[mine, (r - 1) * n_basis:r * n_basis] if mine.any() else None)
    return out
