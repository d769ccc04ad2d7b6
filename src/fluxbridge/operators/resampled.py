"""Sampled estimators of H·f: Horvitz–Thompson draws, new at every call or drawn once.

* :class:`ResampledEstimator` — new draws every call, Horvitz–Thompson weights, uniform,
  area-weighted or stratified (e.g. by vegetation class): unbiased;
* :class:`FixedEstimator` — K columns per row drawn once and kept (the published method).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.operators.operator import LinearOperator
from fluxbridge.operators.sample import Estimator, Sample, _ranges

Sampling = Literal["uniform", "area", "stratified"]
SAMPLINGS = ("uniform", "area", "stratified")


def _search_between(cum: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray
                    ) -> np.ndarray:
    """The first position p in [lo, hi] with ``cum[p] > target`` (hi if none), for sorted
    ``cum``: ``clip(searchsorted(cum, target, "right"), lo, hi)``, bisecting only within the
    bounds (a few steps for a bucket or a segment, where a search of all of ``cum`` costs
    its full depth for every draw)."""
    lo, hi = lo.copy(), hi.copy()
    while True:
        open_ = np.flatnonzero(lo < hi)
        if not open_.size:
            return lo
        mid = (lo[open_] + hi[open_]) // 2
        right = cum[mid] <= target[open_]
        lo[open_[right]] = mid[right] + 1
        hi[open_[~right]] = mid[~right]


class ResampledEstimator(Estimator):
    """Horvitz–Thompson estimates from K draws (with replacement) per row, new at every call.

    Parameters
    ----------
    operator
        The operator H.
    K
        Draws per row (split evenly between replicates).
    sampling
        ``"uniform"``: every column of a row equally likely; ``"area"``: probability ∝ |weight|
        (area × days for regional totals); ``"stratified"``: the row's columns split into strata
        (``strata`` per cell), K allocated to strata in proportion to their |weight| (at least one
        draw each, so the total can exceed K), area-weighted draws inside a stratum.
    strata
        Stratum (e.g. IGBP code) of each cell (n_cell,), needed for ``"stratified"``.
    n_rep
        Independent replicates (2 for the unbiased square).

    Notes
    -----
    A draw j of row i in a stratum h with ``K_h`` draws and probability ``p_j`` gets the weight
    ``H_ij / (K_h p_j)``; each replicate's sum of weight × f is unbiased for ``(H f)_i``.
    """

    name = "resampled"

    def __init__(self, operator: LinearOperator, K: int, sampling: Sampling = "area",
                 strata: np.ndarray | None = None, n_rep: int = 1) -> None:
        super().__init__(operator)
        if K < n_rep:
            raise InputError(f"K = {K} is less than the {n_rep} replicates", variable="K",
                             expected=f"K >= {n_rep}")
        if sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {sampling!r}", variable="sampling",
                             expected=" or ".join(SAMPLINGS))
        self.K = int(K)
        self.sampling = sampling
        self.n_rep = int(n_rep)
        m = operator.matrix
        n_rows = m.shape[0]
        row_of = np.repeat(np.arange(n_rows), np.diff(m.indptr))
        if sampling == "stratified":
            if strata is None or np.asarray(strata).shape != (operator.n_cell,):
                raise InputError("stratified sampling needs one stratum per cell",
                                 variable="strata", expected=f"an array of {operator.n_cell}")
            codes = pd.factorize(np.asarray(strata))[0].astype(np.int64)
            key = row_of * (codes.max() + 1) + codes[m.indices % operator.n_cell]
            self._order = np.argsort(key, kind="stable")
            seg_key = key[self._order]
        else:
            self._order = None
            seg_key = row_of
        # segments: runs of equal key (one per row, or per row and stratum)
        boundary = np.flatnonzero(np.diff(seg_key)) + 1
        self._seg_start = np.concatenate([[0], boundary]).astype(np.int64)
        self._seg_size = np.diff(np.concatenate([self._seg_start, [seg_key.size]]))
        self._seg_row = row_of[self._seg_start] if self._order is None else \
            row_of[self._order][self._seg_start]
        # the operator's data in segment order (a copy only for stratified sampling)
        self._sdata = m.data if self._order is None else m.data[self._order]
        absw = np.abs(self._sdata)
        self._cum = np.cumsum(absw)
        self._seg_total = np.add.reduceat(absw, self._seg_start) if absw.size else absw
        self._row_total = np.bincount(self._seg_row, self._seg_total, minlength=n_rows)
        self._row_segs = np.searchsorted(self._seg_row, np.arange(n_rows + 1))
        self._seg_base = np.where(self._seg_start > 0,
                                  self._cum[np.maximum(self._seg_start - 1, 0)], 0.0)
        if sampling != "uniform":
            self._build_guide()

    def _build_guide(self) -> None:
        """Guide table of the inverse-CDF search (Chen and Asau): segment s is cut into
        ``size_s`` buckets of equal weight; ``_guide[_guide_start[s] + b]`` is the position
        that :func:`numpy.searchsorted` (side right) gives for the bucket's lower edge.

        A draw falling in bucket b then lies between the guides of b and b + 1 (a position
        or two for area weights), so a draw costs a few gathers instead of a binary search
        over every column of the operator.
        """
        n_seg = self._seg_start.size
        self._guide_start = np.concatenate([[0], np.cumsum(self._seg_size + 1)[:-1]]
                                           ).astype(np.int64)
        total = int(np.sum(self._seg_size + 1))
        dtype = np.int32 if self._cum.size < np.iinfo(np.int32).max else np.int64
        self._guide = np.empty(total, dtype=dtype)
        for s in range(n_seg):
            start, size = int(self._seg_start[s]), int(self._seg_size[s])
            edges = self._seg_base[s] + (np.arange(size + 1) / size) * self._seg_total[s]
            g0 = int(self._guide_start[s])
            self._guide[g0:g0 + size + 1] = start + np.searchsorted(
                self._cum[start:start + size], edges, side="right")

    def _search(self, d_seg: np.ndarray, u: np.ndarray, target: np.ndarray,
                start: np.ndarray, last: np.ndarray) -> np.ndarray:
        """``clip(searchsorted(_cum, target, "right"), start, last)`` through the guide table
        (the same positions, faster: see :meth:`_build_guide`)."""
        cum = self._cum
        size = self._seg_size[d_seg]
        b = np.minimum((u * size).astype(np.int64), size - 1)
        g = self._guide_start[d_seg] + b
        lo = np.clip(self._guide[g].astype(np.int64), start, last)
        hi = np.clip(self._guide[g + 1].astype(np.int64), start, last)
        width = hi - lo
        # the first position in [lo, hi] with cum > target (hi if none): one comparison for
        # buckets of one or two positions (most draws), a binary search for the few wider ones
        lo = lo + ((width == 1) & (cum[lo] <= target))
        wide = np.flatnonzero(width > 1)
        if wide.size:
            lo[wide] = _search_between(cum, target[wide], lo[wide], hi[wide])
        # rounding at a bucket edge can put a target outside its bucket: check, fall back
        bad = np.flatnonzero(((lo > start) & (cum[np.maximum(lo - 1, 0)] > target))
                             | ((lo < last) & (cum[lo] <= target)))
        if bad.size:
            lo[bad] = _search_between(cum, target[bad], start[bad], last[bad])
        return lo

    def _indices(self, pos: np.ndarray) -> np.ndarray:
        pos = pos if self._order is None else self._order[pos]
        return self.operator.matrix.indices[pos].astype(np.int64)

    def _allocation(self, segs: np.ndarray, k: int) -> np.ndarray:
        if self.sampling != "stratified":
            return np.full(segs.size, k, dtype=np.int64)
        share = self._seg_total[segs] / self._row_total[self._seg_row[segs]]
        return np.maximum(1, np.rint(share * k)).astype(np.int64)

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator) -> Sample:
        obs_ids = np.asarray(obs_ids, dtype=np.int64)
        k = max(1, self.K // self.n_rep)
        first, last = self._row_segs[obs_ids], self._row_segs[obs_ids + 1]
        segs = _ranges(first, last - first)
        seg_local = np.repeat(np.arange(obs_ids.size), last - first)
        alloc = self._allocation(segs, k)
        # every replicate at once: the same random numbers, in the same order, as one
        # replicate after the other
        one = np.repeat(segs, alloc)
        d_seg = np.tile(one, self.n_rep)
        per_draw = np.tile(np.repeat(alloc, alloc), self.n_rep)
        u = rng.random(d_seg.size)
        start, size = self._seg_start[d_seg], self._seg_size[d_seg]
        if self.sampling == "uniform":
            pos = start + np.minimum((u * size).astype(np.int64), size - 1)
            weight = self._sdata[pos] * size / per_draw
        else:
            target = self._seg_base[d_seg] + u * self._seg_total[d_seg]
            pos = self._search(d_seg, u, target, start, start + size - 1)
            weight = np.sign(self._sdata[pos]) * self._seg_total[d_seg] / per_draw
        obs = np.tile(np.repeat(seg_local, alloc), self.n_rep)
        rep = np.repeat(np.arange(self.n_rep), one.size)
        col = self._indices(pos)
        return Sample(obs_ids, obs, rep, col, weight, self.n_rep, self.operator.n_cell, d_seg)


class FixedEstimator(ResampledEstimator):
    """K columns per row drawn once (seeded) and kept: biased for one draw, unbiased over draws.

    Parameters are those of :class:`ResampledEstimator`, plus ``seed`` of the one draw.
    """

    name = "fixed"

    def __init__(self, operator: LinearOperator, K: int, sampling: Sampling = "area",
                 strata: np.ndarray | None = None, n_rep: int = 1, seed: int = 0) -> None:
        super().__init__(operator, K, sampling, strata, n_rep)
        fixed = super().draw(np.arange(operator.n_obs), np.random.default_rng(seed))
        self._fixed = fixed
        # the kept draws come replicate by replicate, rows in order: (rep, row) runs
        key = fixed.rep * operator.n_obs + fixed.obs
        if np.any(np.diff(key) < 0):  # pragma: no cover - draw() keeps this order
            order = np.argsort(key, kind="stable")
            self._fixed = fixed = Sample(fixed.obs_ids, fixed.obs[order], fixed.rep[order],
                                         fixed.col[order], fixed.weight[order], fixed.n_rep,
                                         fixed.n_cell, fixed.stratum[order])
            key = key[order]
        self._run = np.searchsorted(key, np.arange(self.n_rep * operator.n_obs + 1))

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator | None = None) -> Sample:
        """The kept draws of rows ``obs_ids``, replicate by replicate in the order of
        ``obs_ids`` (each row's draws in their kept order)."""
        obs_ids = np.asarray(obs_ids, dtype=np.int64)
        n_obs, n = self.operator.n_obs, obs_ids.size
        if n and (obs_ids.min() < 0 or obs_ids.max() >= n_obs):
            raise InputError("rows not in the sample", variable="obs_ids",
                             expected=f"rows of the operator, 0 to {n_obs - 1}")
        keys = (np.arange(self.n_rep)[:, None] * n_obs + obs_ids[None, :]).ravel()
        starts, sizes = self._run[keys], self._run[keys + 1] - self._run[keys]
        pos = _ranges(starts, sizes)
        f = self._fixed
        return Sample(obs_ids, np.repeat(np.tile(np.arange(n), self.n_rep), sizes), f.rep[pos],
                      f.col[pos], f.weight[pos], self.n_rep, self.operator.n_cell)
