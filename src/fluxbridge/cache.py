"""Groups of grid cell-days that share one entry of the control variate's cache.

The control-variate estimator (:class:`fluxbridge.operators.ControlVariateEstimator`) is unbiased
whatever its cache ``g``; a cache with one entry per group of cell-days costs one network
evaluation (and one input gradient) per entry instead of per cell-day, and its exact regional
totals come from the operator's columns merged by entry. The price is a larger spread of the
sampled correction ``f − g``.

Days are grouped by month; the (month, cell) pairs of one vegetation class can then be grouped
by their mean predictors: a k-d partition of the network's input space into cells of about
``group_size`` pairs, so that an entry's members lie close to its centre and a first-order cache
around the centre stays close to the network (much closer than blocks of neighbouring cells of
the same count, whose predictors differ more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.features import GridFeatures


@dataclass(frozen=True)
class CacheGroups:
    """The cache entry of each (time group, cell) of a grid and the entries' mean predictors.

    Attributes
    ----------
    time_group
        Group of each time (n_time,), contiguous runs numbered 0, 1, ...
    entry
        Entry of each (time group, cell) (n_time_group, n_cell); None when every cell-day is
        its own entry (daily groups, no partition): the cache is then the model itself.
    values
        Mean predictors of each entry over its finite cell-days (n_entry, n_feature), raw
        units; NaN where none is finite. None with ``entry`` None.
    igbp
        Vegetation class of each entry (n_entry,). None with ``entry`` None.
    """

    time_group: np.ndarray
    entry: np.ndarray | None
    values: np.ndarray | None
    igbp: np.ndarray | None

    @classmethod
    def build(cls, grid: GridFeatures, time: Literal["daily", "monthly"], group_size: int = 1,
              transform: Callable[[np.ndarray], np.ndarray] | None = None) -> CacheGroups:
        """Groups of ``grid``: days by month (``time="monthly"``) or each day its own, then the
        (time group, cell) pairs of each vegetation class partitioned into entries of about
        ``group_size`` pairs (1: each pair its own entry).

        Parameters
        ----------
        grid
            Gridded features of the land cells.
        time
            ``"monthly"`` or ``"daily"``.
        group_size
            Largest number of (time group, cell) pairs per entry; the k-d partition halves a
            group along its widest input until it has at most this many.
        transform
            Raw predictors (n, n_feature) → the network's inputs, in which the partition
            measures distance (the normaliser; NaN taken as 0); None: the raw predictors.
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
        if group_size < 1:
            raise InputError(f"cache_group_size = {group_size}", variable="cache_group_size",
                             expected="1 (each cell its own entry) or more")
        if time == "daily" and group_size == 1:
            return cls(time_group=time_group, entry=None, values=None, igbp=None)
        means = _time_means(grid, time_group)  # (n_tg, n_cell, n_feat)
        n_tg = means.shape[0]
        flat = means.reshape(-1, n_feat)
        classes = np.tile(np.asarray(grid.igbp_code, dtype=np.int64), n_tg)
        if group_size == 1:
            return cls(time_group=time_group, entry=np.arange(flat.shape[0]).reshape(n_tg, n_cell),
                       values=flat, igbp=classes)
        points = np.asarray(flat if transform is None else transform(flat), dtype=np.float64)
        points = np.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0)
        label = np.empty(flat.shape[0], dtype=np.int64)
        n_entry = 0
        for code in np.unique(classes):
            members = np.flatnonzero(classes == code)
            part, n = _kd_partition(points[members], group_size)
            label[members] = part + n_entry
            n_entry += n
        finite = np.isfinite(flat)
        counts = np.stack([np.bincount(label, finite[:, j], minlength=n_entry)
                           for j in range(n_feat)], axis=1)
        sums = np.stack([np.bincount(label, np.where(finite[:, j], flat[:, j], 0.0),
                                     minlength=n_entry) for j in range(n_feat)], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
        igbp = np.zeros(n_entry, dtype=np.int64)
        igbp[label] = classes
        return cls(time_group=time_group, entry=label.reshape(n_tg, n_cell), values=values,
                   igbp=igbp)


def _time_means(grid: GridFeatures, time_group: np.ndarray) -> np.ndarray:
    """Mean predictors of each (time group, cell) over its finite days (n_tg, n_cell, f)."""
    if time_group.size == int(time_group[-1]) + 1:
        return grid.values
    starts = np.flatnonzero(np.r_[True, np.diff(time_group) != 0])
    ends = np.r_[starts[1:], time_group.size]
    out = np.empty((starts.size, *grid.values.shape[1:]), dtype=np.float32)
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        block = grid.values[a:b]
        finite = np.isfinite(block)
        sums = np.where(finite, block, 0.0).sum(axis=0, dtype=np.float64)
        counts = finite.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(counts > 0, sums / counts, np.nan)
    return out


def _kd_partition(points: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Labels (n,) and count of the leaves of a k-d partition of ``points`` (n, d): each
    group is split at the median of its widest coordinate until it has at most ``size``
    points."""
    label = np.empty(points.shape[0], dtype=np.int64)
    pending = [np.arange(points.shape[0])]
    n = 0
    while pending:
        idx = pending.pop()
        if idx.size <= size:
            label[idx] = n
            n += 1
            continue
        sub = points[idx]
        axis = int(np.argmax(sub.max(axis=0) - sub.min(axis=0)))
        half = idx.size // 2
        order = np.argpartition(sub[:, axis], half)
        pending += [idx[order[:half]], idx[order[half:]]]
    return label, n
