"""Groups of grid cell-days that share one entry of the control variate's cache.

The control-variate estimator
(:class:`fluxbridge.operators.control_variate.ControlVariateEstimator`) is unbiased whatever its
cache ``g``; a cache with one entry per group of cell-days costs one network
evaluation (and one input gradient) per entry instead of per cell-day, and its exact regional
totals come from the operator's columns merged by entry. The price is a larger spread of the
sampled correction ``f − g``.

Days are grouped by month (``monthly``) or kept apart (``daily``); the (time group, cell) pairs
of one vegetation class (and, daily, of one month) can then be grouped by their predictors: a k-d
partition of the standardised predictors into groups of at most ``group_size`` pairs, so that an
entry's members lie close to its centre and a first-order cache around the centre stays close to
the network. In the twin world, whose fluxes respond nonlinearly to the day's weather, entries of
similar cell-days (daily, 64) leave a fresh cache 0.067 σ of spread at K = 64 where the days of
one month of one cell (monthly, 1) leave 0.14 σ (benchmarks/operator.py, the standard world). Blocks
of neighbouring cells did worse than either.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.grid_features import GridFeatures


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
    def of(cls, grid: GridFeatures, time: Literal["daily", "monthly"], group_size: int = 1
           ) -> CacheGroups:
        """:meth:`build`, once per grid, grouping and size (trainers of one grid share it)."""
        if id(grid) not in _BUILT:  # dropped with the grid
            _BUILT[id(grid)] = {}
            weakref.finalize(grid, _BUILT.pop, id(grid), None)
        built = _BUILT[id(grid)]
        key = (time, int(group_size))
        if key not in built:
            built[key] = cls.build(grid, time, group_size)
        return built[key]

    @classmethod
    def build(cls, grid: GridFeatures, time: Literal["daily", "monthly"], group_size: int = 1
              ) -> CacheGroups:
        """Groups of ``grid``: days by month (``time="monthly"``) or each day its own, then the
        (time group, cell) pairs of each vegetation class (and, daily, each month) partitioned
        into entries of at most ``group_size`` pairs (1: each pair its own entry).

        Parameters
        ----------
        grid
            Gridded features of the land cells.
        time
            ``"monthly"`` or ``"daily"``.
        group_size
            Largest number of (time group, cell) pairs per entry; the k-d partition halves a
            group along its widest standardised predictor until it has at most this many.
        """
        n_time, n_cell, n_feat = grid.values.shape
        months = pd.DatetimeIndex(grid.times).to_period("M")
        month = np.cumsum(np.r_[False, months[1:] != months[:-1]]).astype(np.int64)
        if time == "monthly":
            time_group = month
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
        # daily pairs are partitioned within their month (an entry then lies in one month, as
        # the operator's rows do), monthly ones across months
        block = np.repeat(month if time == "daily" else np.zeros(n_tg, dtype=np.int64), n_cell)
        key = block * (int(classes.max()) + 1) + classes
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0, True])
        sample = flat[:: max(1, flat.shape[0] // 100_000)]
        with np.errstate(invalid="ignore"):
            center, scale = np.nanmean(sample, axis=0), np.nanstd(sample, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        label = np.empty(flat.shape[0], dtype=np.int64)
        n_entry = 0
        for a, b in itertools.pairwise(bounds):
            members = order[a:b]
            points = np.nan_to_num((flat[members] - center) / scale, nan=0.0, posinf=0.0,
                                   neginf=0.0)
            part, n = _kd_partition(points, group_size)
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


GROUP_SIZE_AT_2DEG = 64
"""Default ``cache_group_size`` at 2 degrees; it grows with the grid's linear resolution."""


def default_group_size(grid: GridFeatures) -> int:
    """The default cell-days per cache entry of ``grid``: 64 at 2 degrees, times 2° over the
    grid's spacing (256 at 0.5°; 64 when the spacing is unknown).

    A refresh evaluates the network once per entry, so with a fixed group size its cost grows
    with the number of cells (16-fold from 2° to 0.5°) while a step's does not. Neighbouring
    fine cells are alike, so larger groups of them cost little spread: in the twin worlds of
    benchmarks/operator.py a fresh cache at K = 64 leaves 0.067 σ at 2° with 64 and 0.057 σ at
    0.5° with 256 (0.034 σ with 64, at five times the refresh cost; about 0.10 σ with 1024).
    """
    if grid.resolution_deg is None or grid.resolution_deg <= 0:
        return GROUP_SIZE_AT_2DEG
    return max(1, round(GROUP_SIZE_AT_2DEG * 2.0 / grid.resolution_deg))


_BUILT: dict[int, dict[tuple[str, int], CacheGroups]] = {}  # by id of a live grid


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
    points. A child's extent is taken as its parent's with the split coordinate halved (one
    reduction per partition instead of two per group: the partition of millions of cell-days
    stays a matter of seconds)."""
    label = np.empty(points.shape[0], dtype=np.int64)
    if points.shape[0] == 0:
        return label, 0
    pending = [(np.arange(points.shape[0]), np.ptp(points, axis=0).astype(np.float64))]
    n = 0
    while pending:
        idx, extent = pending.pop()
        if idx.size <= size:
            label[idx] = n
            n += 1
            continue
        axis = int(np.argmax(extent))
        half = idx.size // 2
        order = np.argpartition(points[idx, axis], half)
        extent = extent.copy()
        extent[axis] /= 2
        pending += [(idx[order[:half]], extent), (idx[order[half:]], extent)]
    return label, n
