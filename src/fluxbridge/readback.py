"""What the evaluation step reads back from a run's upscaled products and inputs: the true
totals where there are any, time-mean maps, the observation operator's estimator error on the
products' fields, and the oracle of the shared correction for leave-region-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.inputs import World
from fluxbridge.io.run_products import read_land_cells, read_mean_map


def optional_truth(inputs: World) -> pd.DataFrame | None:
    """True regional totals ``region, time, nee_tgc`` [Tg month-1] of a twin world, or None
    (real data have no truth)."""
    try:
        return inputs.truth_regional
    except InputError:
        return None


def mean_maps(products: dict[str, Any], site_only: str, dual: str,
              truth: xr.DataArray | None = None) -> dict[str, xr.DataArray]:
    """Time-mean NEE [gC m-2 d-1] of the site-only and dual products, and of the truth where
    there is one.

    Parameters
    ----------
    products
        Model name → its upscaled products (``grid_monthly``: monthly NEE NetCDF).
    site_only, dual
        Names of the site-only and dual-constraint models.
    truth
        True daily NEE (time, lat, lon) [gC m-2 d-1], or None (real data have no truth).
    """
    maps = {name: read_mean_map(products[name].grid_monthly) for name in (site_only, dual)}
    if truth is not None:
        maps["truth"] = truth.mean("time").load()
    return maps


def estimator_error(dual_grid: Path, cache_grid: Path, grid: GridFeatures, inputs: World,
                    cfg: ExperimentConfig) -> pd.DataFrame:
    """Estimator error against K on the dual model's daily field (the cache's field: the
    site-only model's), in units of the targets' σ.

    Parameters
    ----------
    dual_grid, cache_grid
        Daily NEE NetCDF [gC m-2 d-1] of the dual and the site-only model.
    grid
        The land cells' predictors (their indices, times and IGBP strata).
    inputs
        The experiment's inputs (regions, targets).
    cfg
        The experiment's configuration (σ floor, seed).
    """
    from fluxbridge.evaluation.estimators import estimator_error_table
    from fluxbridge.operators import RegionalOperator
    from fluxbridge.training.regional import floored_sigma

    def field(path: Path) -> np.ndarray:
        return read_land_cells(path, grid.lat_index, grid.lon_index)

    op = RegionalOperator(inputs.regions, grid.times, grid.lat_index, grid.lon_index)
    matched = op.match_targets(inputs.targets)
    spread = np.full(op.n_obs, np.nan)
    spread[matched["obs"]] = matched["spread"]
    sigma = floored_sigma(np.nan_to_num(spread, nan=np.nanmedian(spread)), cfg)
    return estimator_error_table(op, field(dual_grid), field(cache_grid), sigma,
                                 seed=cfg.seed, strata=grid.igbp_code)


def transfer_oracle(site_only: pd.DataFrame, truth: pd.DataFrame | None, inputs: World,
                    grid: GridFeatures, cfg: ExperimentConfig) -> pd.DataFrame | None:
    """Each region's totals from the site-only model corrected by the shared correction
    fitted to the *truth* of the other regions (:func:`fluxbridge.studies.transfer.
    transfer_bounds`): what that form of correction could carry to a withheld region at best.
    ``region, time, nee_tgc`` [Tg month-1]; None without a truth (real data).

    Parameters
    ----------
    site_only
        The site-only model's regional totals ``region, time, nee_tgc`` [Tg month-1].
    truth
        True regional totals [Tg month-1], or None.
    inputs, grid, cfg
        The experiment's inputs, gridded features and configuration (σ floor, harmonics).
    """
    if truth is None:
        return None
    from fluxbridge.evaluation.regional import targets_frames
    from fluxbridge.studies.transfer import transfer_bounds

    reference, spread = targets_frames(inputs.targets)
    return transfer_bounds(site_only, truth, reference, spread, grid,
                           inputs.regions, sigma_floor=cfg.constraint.sigma_floor,
                           harmonics=cfg.tuning.offset.harmonics,
                           tested=cfg.tuning.offset.tested)["oracle"]
