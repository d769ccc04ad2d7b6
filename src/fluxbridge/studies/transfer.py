"""How much of a correction can reach a region whose targets were withheld: the oracle.

The hierarchical correction (:func:`fluxbridge.training.hierarchy.share_offsets`) gives a region
without targets the random-effects mean of the other regions' offsets, times the share that a
leave-one-region-out test among them supports. Fitted to the *truth* of
the other regions (a twin world's), with the site-only network held fixed, that mean bounds
what this form of correction can carry to the withheld region: the oracle against which the
constrained model's leave-region-out result is judged. Fitted to the inversion targets instead,
it is the correction alone, without the network's share of the regional gradient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from fluxbridge.grid_features import GridFeatures
from fluxbridge.models.network import seasonal_basis
from fluxbridge.operators import RegionalOperator
from fluxbridge.training.hierarchy import (
    region_blocks,
    region_hemispheres,
    share_offsets,
    transfer_weight,
)
from fluxbridge.training.offsets import basis_totals, region_variances


def region_design(grid: GridFeatures, regions: xr.Dataset, harmonics: int = 1
                  ) -> tuple[RegionalOperator, np.ndarray]:
    """The operator and the exact totals of each region's offset basis at every region-month:
    (n_obs, n_regions × n_basis) [Tg month-1 per g m-2 d-1], column ``(r - 1) n_basis + k``."""
    op = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
    doy = torch.from_numpy(pd.DatetimeIndex(grid.times).day_of_year.to_numpy(np.float64))
    basis = seasonal_basis(doy, harmonics).numpy()
    n_regions = int(np.max(regions["region"].values))
    valid = grid.valid().ravel()

    def fields(col: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        t, c = np.divmod(col, grid.n_cell)
        group = np.where(valid[col], grid.region[c] - 1, -1)
        return group, [basis[t, k] for k in range(basis.shape[1])]

    return op, basis_totals(op, np.arange(op.n_obs), n_regions, fields)


def withheld_corrections(residual: np.ndarray, sigma: np.ndarray, obs_region: np.ndarray,
                         design: np.ndarray, hemisphere: np.ndarray, tested: bool = False
                         ) -> np.ndarray:
    """Each region's correction [Tg month-1] from the other regions only.

    Parameters
    ----------
    residual
        (n_obs,) what the correction should add (target minus model) [Tg month-1]; NaN where
        there is no target.
    sigma
        (n_obs,) the targets' σ [Tg month-1].
    obs_region
        (n_obs,) region id of every region-month.
    design
        (n_obs, n_regions × n_basis) from :func:`region_design`.
    hemisphere
        (n_regions + 1,) ±1 by region id.
    tested
        Give each region the share of the others' mean that a leave-one-region-out test
        among them supports (:func:`.transfer_weight`), as training does; else all of it.

    Returns
    -------
    np.ndarray
        (n_obs,): for the region-months of each region, the shared correction fitted without
        that region's targets.
    """
    n_regions = hemisphere.size - 1
    n_basis = design.shape[1] // n_regions
    usable = np.where(np.isfinite(residual), sigma, np.nan)
    variance = region_variances(design, usable, obs_region, n_regions)
    fitted = np.isfinite(variance).all(axis=1)
    coef = np.zeros((n_regions, n_basis))
    for r in np.flatnonzero(fitted) + 1:
        rows = (obs_region == r) & np.isfinite(usable)
        A = design[rows, (r - 1) * n_basis:r * n_basis] / usable[rows, None]
        coef[r - 1] = np.linalg.lstsq(A, residual[rows] / usable[rows], rcond=None)[0]
    blocks = region_blocks(design, np.isfinite(usable), obs_region, n_regions)
    out = np.zeros(residual.size)
    for r in range(1, n_regions + 1):
        others = fitted & (np.arange(1, n_regions + 1) != r)
        if not others.any():
            continue
        transfer = (transfer_weight(coef, variance, others, hemisphere[1:], blocks) if tested
                    else 1.0)
        shared, _ = share_offsets(coef, variance, others, hemisphere[1:], transfer)
        cols = slice((r - 1) * n_basis, r * n_basis)
        out[obs_region == r] = design[obs_region == r, cols] @ shared[r - 1]
    return out


def transfer_bounds(site_only: pd.DataFrame, truth: pd.DataFrame, reference: pd.DataFrame,
                    spread: pd.DataFrame, grid: GridFeatures, regions: xr.Dataset,
                    sigma_floor: float = 0.5, harmonics: int = 1, tested: bool = False
                    ) -> dict[str, pd.DataFrame]:
    """The site-only model's regional totals corrected, region by region, by the hierarchical
    correction fitted to the other regions: to their truth (``oracle``) and to their
    inversion targets (``shared_correction``), the network held fixed.

    Parameters
    ----------
    site_only, truth, reference
        ``region, time (YYYY-MM), nee_tgc`` [Tg month-1]: the site-only model's totals, the
        truth's and the inversion mean's.
    spread
        ``region, time, nee_spread`` [Tg month-1], the inversion spread (floored at
        ``sigma_floor`` × its median, as in training).
    grid, regions
        The gridded features and the regions.
    sigma_floor, harmonics
        As in training (``constraint.sigma_floor``, ``tuning.offset.harmonics``).
    tested
        As in training (``tuning.offset.transfer``): :func:`withheld_corrections`.

    Returns
    -------
    dict
        ``oracle`` and ``shared_correction``: ``region, time, nee_tgc`` tables.
    """
    op, design = region_design(grid, regions, harmonics)
    idx = op.obs_index
    key = pd.MultiIndex.from_arrays([idx["region_name"].astype(str).to_numpy(),
                                     pd.DatetimeIndex(idx["time"]).strftime("%Y-%m")])

    def values(df: pd.DataFrame, column: str) -> np.ndarray:
        frame = df.assign(time=pd.to_datetime(df["time"]).dt.strftime("%Y-%m"),
                          region=df["region"].astype(str))
        return frame.set_index(["region", "time"])[column].reindex(key).to_numpy(float)

    model = values(site_only, "nee_tgc")
    sd = values(spread, "nee_spread")
    sd = np.fmax(sd, sigma_floor * np.nanmedian(sd))
    obs_region = idx["region"].to_numpy().astype(int)
    hemisphere = region_hemispheres(regions, int(np.max(regions["region"].values)))
    out = {}
    for name, target in (("oracle", values(truth, "nee_tgc")),
                         ("shared_correction", values(reference, "nee_tgc"))):
        corrected = model + withheld_corrections(target - model, sd, obs_region, design,
                                                 hemisphere, tested)
        out[name] = pd.DataFrame({"region": key.get_level_values(0),
                                  "time": key.get_level_values(1), "nee_tgc": corrected})
    return out
