"""Groups of grid cell-days that share one value of the control variate's cache.

The control-variate estimator (:class:`fluxbridge.operators.ControlVariateEstimator`) is unbiased
whatever its cache ``g``; a cache that is constant over groups of cell-days (a month, a block of
cells of one region and vegetation class) costs one network evaluation per group instead of per
cell-day, and its exact regional totals come from the operator's columns merged by group. The
price is a larger spread of the sampled correction ``f − g``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fluxbridge.errors import InputError
from fluxbridge.features import GridFeatures


@dataclass(frozen=True)
class CacheGroups:
    """Time and cell groups of a grid and their mean predictors.

    Attributes
    ----------
    time_group
        Group of each time (n_time,), contiguous runs numbered 0, 1, ...
    cell_group
        Group of each land cell (n_cell,).
    values
        Mean predictors of each (time group, cell group) over its finite cell-days
        (n_time_group, n_cell_group, n_feature); NaN where none is finite.
    igbp, region
        Vegetation class and region of each cell group (n_cell_group,).
    basis
        Mean seasonal basis of the grid offset over each time group's days (n_time_group, n_basis).
    """

    time_group: np.ndarray
    cell_group: np.ndarray
    values: np.ndarray
    igbp: np.ndarray
    region: np.ndarray
    basis: np.ndarray

    @classmethod
    def build(cls, grid: GridFeatures, time: Literal["daily", "monthly"], block_deg: float,
              basis: np.ndarray) -> CacheGroups:
        """Groups of ``grid``: by month (``time="monthly"``) or day, and by blocks of
        ``block_deg`` degrees within a region and vegetation class (each cell its own group
        when ``block_deg`` is at most the grid spacing).

        Parameters
        ----------
        grid
            Gridded features of the land cells.
        time
            ``"monthly"`` or ``"daily"``.
        block_deg
            Side of the cell blocks [degrees]; 0: no blocks.
        basis
            Seasonal basis of the grid offset of each day (n_time, n_basis).
        """
        n_time, n_cell, n_feat = grid.values.shape
        if time == "monthly":
            months = pd.DatetimeIndex(grid.times).to_period("M")
            time_group = np.cumsum(np.r_[False, months[1:] != months[:-1]]).astype(np.int64)
        elif time == "daily":
            time_group = np.arange(n_time, dtype=np.int64)
        else:
            raise InputError(f"unknown cache time grouping {time!r}", variable="cache_features",
                             expected="daily or monthly")
        if block_deg < 0:
            raise InputError(f"cache_block_deg = {block_deg}", variable="cache_block_deg",
                             expected="0 (no blocks) or a block size in degrees")
        side = max(1, round(block_deg / (180.0 / grid.n_lat))) if block_deg > 0 else 1
        if side == 1:
            cell_group = np.arange(n_cell, dtype=np.int64)
            igbp, region = np.asarray(grid.igbp_code), np.asarray(grid.region)
        else:
            key = np.stack([grid.region, grid.igbp_code, grid.lat_index // side,
                            grid.lon_index // side], axis=1)
            unique, cell_group = np.unique(key, axis=0, return_inverse=True)
            cell_group = cell_group.ravel().astype(np.int64)
            region, igbp = unique[:, 0], unique[:, 1]
        n_tg, n_cg = int(time_group[-1]) + 1, int(cell_group.max()) + 1
        days = np.bincount(time_group, minlength=n_tg).astype(np.float64)
        basis = np.asarray(basis, dtype=np.float64)
        mean_basis = np.stack([np.bincount(time_group, basis[:, k], minlength=n_tg) / days
                               for k in range(basis.shape[1])], axis=1)
        if n_tg == n_time and n_cg == n_cell:
            values = grid.values
        else:
            members = sp.csr_matrix((np.ones(n_cell), (cell_group, np.arange(n_cell))),
                                    shape=(n_cg, n_cell))
            starts = np.flatnonzero(np.r_[True, np.diff(time_group) != 0])
            ends = np.r_[starts[1:], n_time]
            values = np.empty((n_tg, n_cg, n_feat), dtype=np.float32)
            for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
                block = grid.values[a:b]
                finite = np.isfinite(block)
                sums = members @ np.where(finite, block, 0.0).sum(axis=0, dtype=np.float64)
                counts = members @ finite.sum(axis=0).astype(np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    values[k] = np.where(counts > 0, sums / counts, np.nan)
        return cls(time_group=time_group, cell_group=cell_group, values=values,
                   igbp=np.asarray(igbp, dtype=np.int64),
                   region=np.asarray(region, dtype=np.int64),
                   basis=mean_basis.astype(np.float32))
