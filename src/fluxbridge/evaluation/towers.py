"""Scores of the tower constraint: where the towers see, and everywhere.

The towers' **footprint region** is the set of regions that each carry at least
:data:`FOOTPRINT_SHARE` of the towers' total footprint weight on land (Σ over receptors and
columns of the footprint rows of H, by the region of each column's cell). Each model's regional
monthly totals are scored against a reference (the truth, in a twin world) pooled over the
region-months of the footprint region and of every region: RMSE [Tg month-1] and the mean
absolute regional annual bias [Tg yr-1].

The **footprint cells** are the fewest cells holding :data:`FOOTPRINT_CELL_SHARE` of that
weight: what the towers see, whatever region it lies in. Their summed monthly total is scored
as one more "region" (:func:`cell_set_series`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.evaluation.regional import OVERALL, regional_metrics, regional_summary
from fluxbridge.grid_features import GridFeatures
from fluxbridge.operators.operator import LinearOperator
from fluxbridge.regions import region_names

FOOTPRINT_SHARE = 0.10
"""Share of the towers' footprint weight on land that puts a region in the footprint region."""

FOOTPRINT_CELL_SHARE = 0.8
"""Share of the footprint weight held by the footprint cells."""

TOWER_SCORE_COLUMNS = ["model", "domain", "monthly_rmse_tgc", "mean_abs_annual_bias_tgc",
                       "n_regions"]


def footprint_weight_by_region(operator: LinearOperator, cell_region: np.ndarray,
                               regions: xr.Dataset) -> pd.Series:
    """Share [1] of the footprint rows' total weight on each region (region name → share).

    Parameters
    ----------
    operator
        Footprint rows of H (columns ``t * n_cell + c``).
    cell_region
        Region id of each field cell (n_cell,), 0 outside every region.
    regions
        The regions dataset (for the names).
    """
    coo = operator.matrix.tocoo()
    rid = cell_region[coo.col % operator.n_cell]
    weight = np.bincount(rid, np.abs(coo.data), minlength=int(cell_region.max()) + 1)
    names = region_names(regions)
    share = weight / max(weight.sum(), 1e-300)
    return pd.Series({names[r]: float(share[r]) for r in names if r < share.size},
                     name="footprint_share").sort_values(ascending=False)


def footprint_region(shares: pd.Series, threshold: float = FOOTPRINT_SHARE) -> list[str]:
    """Names of the regions with at least ``threshold`` of the footprint weight."""
    return [str(r) for r, s in shares.items() if s >= threshold]


def footprint_cells(operator: LinearOperator, share: float = FOOTPRINT_CELL_SHARE
                    ) -> np.ndarray:
    """The fewest field cells holding ``share`` of the footprint rows' weight (n_cell,) bool."""
    coo = operator.matrix.tocoo()
    weight = np.bincount(coo.col % operator.n_cell, np.abs(coo.data),
                         minlength=operator.n_cell)
    order = np.argsort(weight)[::-1]
    n = int(np.searchsorted(np.cumsum(weight[order]), share * weight.sum())) + 1
    mask = np.zeros(operator.n_cell, dtype=bool)
    mask[order[:n]] = True
    return mask


def cell_set_series(field: np.ndarray, times: pd.DatetimeIndex, land_area: np.ndarray,
                    mask: np.ndarray, name: str = "footprint cells") -> pd.DataFrame:
    """Monthly totals of a daily flux field over a set of cells.

    Parameters
    ----------
    field
        (n_time, n_cell) daily flux density [g m-2 d-1] (NaN counts as zero).
    times
        Its days.
    land_area
        (n_cell,) land area of each cell [m2].
    mask
        (n_cell,) bool, the cells summed.
    name
        The ``region`` label of the rows.

    Returns
    -------
    pd.DataFrame
        ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    """
    daily = np.nan_to_num(field[:, mask]) @ land_area[mask] / 1e12  # [Tg d-1]
    month = pd.DatetimeIndex(times).strftime("%Y-%m")
    totals = pd.Series(daily).groupby(month.to_numpy()).sum()
    return pd.DataFrame({"region": name, "time": totals.index, "nee_tgc": totals.to_numpy()})


def tower_scores(series: Mapping[str, pd.DataFrame], reference: pd.DataFrame,
                 seen: Sequence[str]) -> pd.DataFrame:
    """RMSE and mean absolute annual bias of each model in the footprint region and everywhere.

    Parameters
    ----------
    series
        Model name → ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    reference
        ``region, time, nee_tgc`` [Tg month-1] (the truth in a twin world).
    seen
        Names of the regions of the footprint region.

    Returns
    -------
    pd.DataFrame
        Columns :data:`TOWER_SCORE_COLUMNS`; ``domain`` is ``footprint region`` or
        ``everywhere``; RMSE pooled over region-months, bias the mean over regions of
        |annual bias|.
    """
    everywhere = sorted(set(reference["region"]))
    return pd.concat([_domain_scores(series, reference, regions, domain)
                      for domain, regions in (("footprint region", list(seen)),
                                              ("everywhere", everywhere))], ignore_index=True)


def _domain_scores(series: Mapping[str, pd.DataFrame], reference: pd.DataFrame,
                   regions: Sequence[str], domain: str) -> pd.DataFrame:
    """:func:`~fluxbridge.evaluation.regional.regional_summary` of the models over
    ``regions``, as rows of :func:`tower_scores`."""
    def within(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["region"].isin(regions)]

    scores = regional_metrics({m: within(s) for m, s in series.items()}, within(reference))
    summary = regional_summary(scores)
    n_regions = int((scores["region"] != OVERALL).groupby(scores["model"]).sum().max())
    return pd.DataFrame({
        "model": summary.index, "domain": domain,
        "monthly_rmse_tgc": summary["regional_monthly_rmse_tgc"].to_numpy(),
        "mean_abs_annual_bias_tgc": summary["regional_mean_abs_annual_bias_tgc"].to_numpy(),
        "n_regions": n_regions}, columns=TOWER_SCORE_COLUMNS)


def cell_scores(series: Mapping[str, pd.DataFrame], reference: pd.DataFrame,
                domain: str = "footprint cells") -> pd.DataFrame:
    """RMSE and |annual bias| of each model's total over a set of cells
    (:func:`cell_set_series`) against the reference's, as rows of :func:`tower_scores`."""
    return _domain_scores(series, reference, sorted(set(reference["region"])), domain)


def footprint_scores(operator: LinearOperator, grid: GridFeatures, regions: xr.Dataset,
                     series: Mapping[str, pd.DataFrame], fields: Mapping[str, np.ndarray],
                     truth: pd.DataFrame, true_field: np.ndarray
                     ) -> tuple[pd.DataFrame, list[str]]:
    """Every model scored against the truth in the footprint region, on the footprint cells
    and everywhere, and the footprint region's names.

    Parameters
    ----------
    operator
        Footprint rows of H on ``grid``'s days and land cells.
    grid
        The land cells (region, area, land fraction, days).
    regions
        The regions dataset (for the names).
    series
        Model name → regional totals ``region, time (YYYY-MM), nee_tgc`` [Tg month-1].
    fields
        Model name → daily NEE (n_time, n_cell) [g m-2 d-1] on ``grid``'s cells.
    truth, true_field
        The true regional totals [Tg month-1] and daily NEE (n_time, n_cell) [g m-2 d-1].

    Returns
    -------
    scores, seen
        Rows of :func:`tower_scores` followed by those of :func:`cell_scores`, and the names
        of the footprint region.
    """
    seen = footprint_region(footprint_weight_by_region(operator, grid.region, regions))
    cells, area = footprint_cells(operator), grid.cell_area * grid.land_fraction
    on_cells = {n: cell_set_series(f, grid.times, area, cells) for n, f in fields.items()}
    true_cells = cell_set_series(true_field, grid.times, area, cells)
    return pd.concat([tower_scores(series, truth, seen), cell_scores(on_cells, true_cells)],
                     ignore_index=True), seen
