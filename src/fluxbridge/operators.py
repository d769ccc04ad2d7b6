"""Observation operators H (gridded flux field → observations) and sparse estimators of H·f.

The flux field is flattened over columns ``time_index * n_cell + cell_index`` of a set of land
cells (those of :class:`fluxbridge.features.GridFeatures`). An operator is a sparse matrix with one
row per observation; regional monthly totals (:class:`RegionalOperator`) are its first use, and
rows of transport footprints are rows of the same matrix type (:class:`LinearOperator`).

Estimators of ``H·f`` share one interface: :meth:`Estimator.draw` picks columns for some
observation rows and :meth:`Estimator.estimate` turns model predictions at those columns into
estimates of the rows (differentiably, with ``index_add``):

* :class:`ExactEstimator` — every column of the row: the reference;
* :class:`FixedEstimator` — K columns per row drawn once and kept (the published method);
* :class:`ResampledEstimator` — new draws every call, Horvitz–Thompson weights, uniform,
  area-weighted or stratified (e.g. by vegetation class);
* :class:`ControlVariateEstimator` — ``H·g`` of a cached full-field prediction ``g`` plus a
  sampled Horvitz–Thompson estimate of ``f − g``.

Draws can come in two independent replicates, so that ``(F̂1 − μ)(F̂2 − μ)`` is an unbiased
estimate of ``(F − μ)²`` (the plain square of a noisy estimate is biased by its variance).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import xarray as xr

from fluxbridge.aggregation import region_weights, time_step_days
from fluxbridge.constants import G_PER_TG
from fluxbridge.errors import InputError

log = logging.getLogger(__name__)

Sampling = Literal["uniform", "area", "stratified"]
ESTIMATORS = ("exact", "fixed", "resampled", "control_variate")
SAMPLINGS = ("uniform", "area", "stratified")
ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


class LinearOperator:
    """A linear map from a flattened (time, cell) flux field to observations.

    Parameters
    ----------
    matrix
        Sparse matrix (n_obs, n_time * n_cell); row ``i`` holds the weights of observation ``i``
        (e.g. [Tg per (g m-2 d-1)] for regional totals, footprints for mole fractions).
    n_time, n_cell
        Shape of the flux field; column ``j`` is time ``j // n_cell``, cell ``j % n_cell``.
    """

    def __init__(self, matrix: sp.csr_matrix | sp.csr_array, n_time: int, n_cell: int) -> None:
        matrix = sp.csr_matrix(matrix)
        if matrix.shape[1] != n_time * n_cell:
            raise InputError(f"operator has {matrix.shape[1]} columns", variable="matrix",
                             expected=f"n_time * n_cell = {n_time * n_cell}")
        matrix.eliminate_zeros()
        self.matrix = matrix
        self.n_time = int(n_time)
        self.n_cell = int(n_cell)

    @property
    def n_obs(self) -> int:
        """Number of observation rows."""
        return int(self.matrix.shape[0])

    def exact(self, field: np.ndarray) -> np.ndarray:
        """``H·f`` of a full field.

        Parameters
        ----------
        field
            Flux density (n_time, n_cell) [g m-2 d-1]; NaN counts as zero.

        Returns
        -------
        np.ndarray
            (n_obs,) observations in the operator's units (Tg for regional totals).
        """
        field = np.asarray(field, dtype=np.float64)
        if field.shape != (self.n_time, self.n_cell):
            raise InputError(f"field has shape {field.shape}", variable="field",
                             expected=f"(n_time, n_cell) = {(self.n_time, self.n_cell)}")
        return self.matrix @ np.nan_to_num(field).ravel()

    def row_sizes(self, obs_ids: np.ndarray | None = None) -> np.ndarray:
        """Number of columns (cell-days) of each observation row."""
        sizes = np.diff(self.matrix.indptr)
        return sizes if obs_ids is None else sizes[np.asarray(obs_ids)]


class RegionalOperator(LinearOperator):
    """H for regional totals per month: rows (region, month), weights cell area × land fraction
    × days / 1e12, so that ``H·f`` is in [Tg month-1] for ``f`` in [g m-2 d-1].

    Parameters
    ----------
    regions
        Canonical regions dataset (``region``, ``cell_area``, ``land_fraction``).
    times
        Daily (or monthly, month start) times of the flux field.
    lat_index, lon_index
        Grid indices of the field's cells (e.g. ``GridFeatures.lat_index``); by default every
        cell with land inside a region, in row-major order.

    Notes
    -----
    Only months fully covered by ``times`` become observations (a partial month's total is not
    comparable with an inversion's monthly total).
    """

    def __init__(self, regions: xr.Dataset, times: pd.DatetimeIndex | np.ndarray,
                 lat_index: np.ndarray | None = None,
                 lon_index: np.ndarray | None = None) -> None:
        weights = region_weights(regions).transpose("region", "lat", "lon")  # [m2]
        w = weights.values
        if lat_index is None or lon_index is None:
            lat_index, lon_index = np.nonzero(w.sum(axis=0) > 0)
        lat_index = np.asarray(lat_index, dtype=np.int64)
        lon_index = np.asarray(lon_index, dtype=np.int64)
        times = pd.DatetimeIndex(times)
        step = time_step_days(times) if times.size > 1 else 1.0
        if step < 1.5:
            days = np.ones(times.size)
        elif 27 <= step <= 32:
            days = np.asarray(times.days_in_month, dtype=float)
        else:
            raise InputError(f"time step of {step:.1f} days", variable="time",
                             expected="daily or monthly times")
        months = times.to_period("M")
        cell_w = w[:, lat_index, lon_index]  # (region, cell) [m2]
        rows_cols, rows_data, index = [], [], []
        for m in months.unique():
            t_idx = np.flatnonzero(months == m)
            if days[t_idx].sum() != m.days_in_month:
                log.info("month %s only partly covered by the field's times: skipped", m)
                continue
            for k, rid in enumerate(weights["region"].values):
                cells = np.flatnonzero(cell_w[k] > 0)
                if cells.size == 0:
                    continue
                cols = (cells[:, None] + t_idx[None, :] * len(lat_index)).ravel()
                data = (cell_w[k, cells][:, None] * days[t_idx][None, :]).ravel() / G_PER_TG
                rows_cols.append(cols)
                rows_data.append(data)
                index.append((int(rid), str(weights["region_name"].values[k]), m.start_time))
        if not index:
            raise InputError("no region has land cells over a whole month of the field",
                             variable="region", expected="regions overlapping the grid cells")
        indptr = np.concatenate([[0], np.cumsum([c.size for c in rows_cols])])
        matrix = sp.csr_matrix((np.concatenate(rows_data), np.concatenate(rows_cols), indptr),
                               shape=(len(index), times.size * len(lat_index)))
        super().__init__(matrix, times.size, len(lat_index))
        self.obs_index = pd.DataFrame(index, columns=["region", "region_name", "time"])
        self.lat_index = lat_index
        self.lon_index = lon_index
        self.times = times

    def to_dataarray(self, values: np.ndarray, name: str = "nee_tgc") -> xr.DataArray:
        """Observation values (n_obs,) [Tg month-1] as a (region, time) DataArray."""
        df = self.obs_index.assign(value=np.asarray(values, dtype=float))
        da = df.set_index(["region", "time"])["value"].to_xarray()
        names = df.drop_duplicates("region").set_index("region")["region_name"]
        da = da.assign_coords(region_name=("region", names.loc[da["region"].values].to_numpy()))
        da.name = name
        da.attrs = {"units": "Tg month-1", "long_name": "regional total of net ecosystem "
                    "exchange of carbon per month, positive to the atmosphere"}
        return da

    def match_targets(self, targets: xr.Dataset) -> pd.DataFrame:
        """The inversion targets of the operator's rows.

        Parameters
        ----------
        targets
            Canonical targets dataset with ``nee_mean`` and ``nee_spread`` (region, time)
            [Tg month-1].

        Returns
        -------
        pd.DataFrame
            Columns ``obs`` (row of the operator), ``mu`` and ``spread`` [Tg month-1]; rows
            without a finite target are left out.
        """
        for name in ("nee_mean", "nee_spread"):
            if name not in targets:
                raise InputError("targets dataset lacks it", variable=name,
                                 expected="the canonical targets dataset (fluxbridge.schema)")
        frame = pd.DataFrame({
            "region": np.repeat(targets["region"].values.astype(int), targets.sizes["time"]),
            "time": np.tile(pd.DatetimeIndex(targets["time"].values).to_period("M")
                            .to_timestamp(), targets.sizes["region"]),
            "mu": targets["nee_mean"].transpose("region", "time").values.ravel(),
            "spread": targets["nee_spread"].transpose("region", "time").values.ravel(),
        })
        obs = self.obs_index.reset_index(names="obs")[["obs", "region", "time"]]
        obs["time"] = pd.DatetimeIndex(obs["time"]).to_period("M").to_timestamp()
        out = obs.merge(frame, on=["region", "time"], how="inner")
        out = out[np.isfinite(out["mu"]) & np.isfinite(out["spread"])]
        if out.empty:
            raise InputError("no target matches a region-month of the grid", variable="nee_mean",
                             expected="targets whose regions and months overlap the grid's")
        return out[["obs", "mu", "spread"]].reset_index(drop=True)


@dataclass(frozen=True)
class Sample:
    """Columns drawn for some observation rows.

    Attributes
    ----------
    obs_ids
        Operator rows of this sample (n_obs_local,).
    obs
        Position in ``obs_ids`` of each draw (n,).
    rep
        Replicate of each draw (0 or 1; two replicates are independent).
    col
        Column of each draw (n,): time ``col // n_cell``, cell ``col % n_cell``.
    weight
        Horvitz–Thompson weight of each draw (n,), so that the sum of weight × f over a
        replicate's draws of a row estimates that row of H·f without bias.
    n_rep
        Number of replicates.
    stratum
        Stratum of each draw (n,): draws of one replicate and stratum are independent and
        identically distributed (with replacement), which :meth:`Estimator.estimate_with_variance`
        needs; None where draws are not random (exact, fixed).
    """

    obs_ids: np.ndarray
    obs: np.ndarray
    rep: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    n_rep: int
    n_cell: int
    stratum: np.ndarray | None = None

    @property
    def time_idx(self) -> np.ndarray:
        """Time index of each draw."""
        return self.col // self.n_cell

    @property
    def cell_idx(self) -> np.ndarray:
        """Cell index of each draw."""
        return self.col % self.n_cell

    def __len__(self) -> int:
        return int(self.col.size)

    def subset(self, obs_ids: np.ndarray) -> Sample:
        """The draws of some of this sample's rows (renumbered to the order of ``obs_ids``)."""
        obs_ids = np.asarray(obs_ids)
        pos = pd.Index(self.obs_ids).get_indexer(obs_ids)
        if np.any(pos < 0):
            raise InputError("rows not in the sample", variable="obs_ids")
        local = np.full(self.obs_ids.size, -1)
        local[pos] = np.arange(obs_ids.size)
        new = local[self.obs]
        keep = new >= 0
        return Sample(obs_ids, new[keep], self.rep[keep], self.col[keep], self.weight[keep],
                      self.n_rep, self.n_cell,
                      None if self.stratum is None else self.stratum[keep])


def _weighted_sum(values: torch.Tensor, sample: Sample) -> torch.Tensor:
    """(n_rep, n_obs_local) sums of weight × values per replicate and row."""
    n_obs = sample.obs_ids.size
    index = torch.as_tensor(sample.rep * n_obs + sample.obs, device=values.device)
    weight = torch.as_tensor(sample.weight, dtype=values.dtype, device=values.device)
    out = torch.zeros(sample.n_rep * n_obs, dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values * weight).reshape(sample.n_rep, n_obs)


def _sum_variance(terms: np.ndarray, sample: Sample) -> np.ndarray:
    """(n_rep, n_obs_local) unbiased estimates of the variance of each replicate's sum of
    ``terms`` (weight × value of each draw).

    Within a stratum of m independent draws with replacement, each ``m × term`` is an unbiased
    estimate of the stratum's total, so their sample variance / m estimates the variance of the
    stratum's sum without bias (Hansen–Hurwitz); strata add. A stratum of one draw contributes
    nothing (its variance cannot be estimated from one draw). The draws of one replicate, row
    and stratum come in one run, as the estimators here draw them (no sorting needed).
    """
    n_obs = sample.obs_ids.size
    out = np.zeros(sample.n_rep * n_obs)
    if sample.stratum is None or terms.size == 0:
        return out.reshape(sample.n_rep, n_obs)
    cell = sample.rep * n_obs + sample.obs
    change = np.ones(terms.size, dtype=bool)
    change[1:] = (cell[1:] != cell[:-1]) | (sample.stratum[1:] != sample.stratum[:-1])
    group = np.cumsum(change) - 1
    m = np.bincount(group)[group]
    total = np.bincount(group, terms)[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.where(m > 1, (m * terms - total) ** 2 / (m * np.maximum(m - 1, 1)), 0.0)
    return np.bincount(cell, part, minlength=out.size).reshape(sample.n_rep, n_obs)


class Estimator:
    """Common interface of the estimators of H·f (see the module docstring)."""

    name: str = "estimator"

    def __init__(self, operator: LinearOperator) -> None:
        self.operator = operator

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator) -> Sample:
        """Columns and weights for the rows ``obs_ids``."""
        raise NotImplementedError

    def estimate(self, pred: torch.Tensor, sample: Sample,
                 inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Estimates (n_rep, len(sample.obs_ids)) of the rows from predictions at the draws.

        Parameters
        ----------
        pred
            Model predictions (n,) [g m-2 d-1] at ``sample.col``; gradients flow through.
        inputs
            The model's inputs at the draws (n, n_input); only a first-order control-variate
            cache uses them.
        """
        base, cached = self._baseline(sample, inputs)
        values = pred if cached is None else pred - torch.as_tensor(
            cached, dtype=pred.dtype, device=pred.device)
        out = _weighted_sum(values, sample)
        return out if base is None else torch.as_tensor(
            base, dtype=out.dtype, device=out.device).unsqueeze(0) + out

    def estimate_with_variance(self, pred: np.ndarray, sample: Sample,
                               inputs: torch.Tensor | np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`estimate` without a gradient, in numpy float64 (a training step's regional
        term, whose gradient is in closed form: a few dozen operations on a few hundred draws,
        where numpy's cost per operation is a fraction of torch's), and an unbiased estimate of
        each estimate's variance from the same draws (n_rep, n_obs_local) [(Tg month-1)²]:
        zero for exact estimates, the variance of the sampled correction ``f − g`` for the
        control variate.
        """
        base, cached = self._baseline(sample, inputs)
        values = np.asarray(pred, dtype=np.float64)
        terms = (values if cached is None else values - cached) * sample.weight
        n_obs = sample.obs_ids.size
        out = np.bincount(sample.rep * n_obs + sample.obs, terms,
                          minlength=sample.n_rep * n_obs).reshape(sample.n_rep, n_obs)
        return (out if base is None else base + out), _sum_variance(terms, sample)

    def _baseline(self, sample: Sample, inputs: torch.Tensor | np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-row base (n_obs_local,) and per-draw values (n,) subtracted from the
        predictions before their weighted sums complete the estimate (None: none)."""
        return None, None

    def cells_touched(self, sample: Sample) -> int:
        """Distinct (cell, time) columns a sample needs predictions at."""
        return int(np.unique(sample.col).size)

    def needs_cache(self) -> bool:
        """Whether :meth:`set_cache` must be called before estimating."""
        return False


class ExactEstimator(Estimator):
    """Every column of each row (weight = the operator's weight): the reference."""

    name = "exact"

    def draw(self, obs_ids: np.ndarray, rng: np.random.Generator | None = None) -> Sample:
        obs_ids = np.asarray(obs_ids, dtype=np.int64)
        m = self.operator.matrix
        starts, ends = m.indptr[obs_ids], m.indptr[obs_ids + 1]
        sizes = ends - starts
        pos = _ranges(starts, sizes)
        obs = np.repeat(np.arange(obs_ids.size), sizes)
        return Sample(obs_ids, obs, np.zeros(obs.size, dtype=np.int64),
                      m.indices[pos].astype(np.int64), m.data[pos], 1, self.operator.n_cell)


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


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start s and size n."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - offsets)


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


class ControlVariateEstimator(ResampledEstimator):
    """``H·g`` of a cached full-field prediction ``g`` plus a resampled estimate of ``f − g``.

    Unbiased for any ``g``; its variance is that of the resampled estimate of ``f − g``, small
    when the cache is close to the model. Call :meth:`set_cache` before estimating (and again
    whenever the cache is refreshed).
    """

    name = "control_variate"

    def __init__(self, operator: LinearOperator, K: int, sampling: Sampling = "area",
                 strata: np.ndarray | None = None, n_rep: int = 1) -> None:
        super().__init__(operator, K, sampling, strata, n_rep)
        self._g: np.ndarray | None = None
        self._hg: np.ndarray | None = None
        self._groups: tuple[np.ndarray, np.ndarray] | None = None
        self._n_entry = 0
        self._merged: sp.csr_matrix | None = None
        self._deviation: tuple[np.ndarray, sp.csr_matrix] | None = None
        self._slope: np.ndarray | None = None
        self._center: np.ndarray | None = None

    def needs_cache(self) -> bool:
        return True

    def set_cache(self, g: np.ndarray, time_group: np.ndarray | None = None,
                  entry: np.ndarray | None = None, *, slope: np.ndarray | None = None,
                  center: np.ndarray | None = None,
                  inputs: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Cache a full-field prediction ``g`` [g m-2 d-1] and its exact H·g.

        Parameters
        ----------
        g
            Without groups, the field (n_time, n_cell); with groups, one value per entry
            (n_entry,): the field whose value at (t, c) is ``g[entry[time_group[t], c]]``
            (e.g. one value per month and cell, or per group of similar cell-months).
        time_group, entry
            Group (0, 1, ...) of each time (n_time,) and the entry of each (time group, cell)
            (n_time_group, n_cell); ``entry`` None: each (time group, cell) its own entry, in
            that order. H·g is then exact through the operator's columns merged by entry
            (built once per grouping), without expanding ``g`` to the full grid.
        slope, center
            (n_entry, n_input): a first-order cache ``g + slope · (x − center)`` of each
            entry, at the model inputs ``x`` of each column (the network's normalised
            predictors): it follows the day-to-day weather that an entry's mean misses, so the
            sampled correction is smaller. Estimates then need the draws' ``inputs``
            (:meth:`estimate`).
        inputs
            With ``slope``: the model inputs of operator columns, ``inputs(col) -> (n,
            n_input)``, read once per grouping and ``center`` to make H of the linear part
            exact (the operator's columns weighted by ``x − center``, merged by entry).
        """
        op = self.operator
        g = np.asarray(g, dtype=np.float32)
        if time_group is None and entry is None:
            groups = None
            n_entry = op.n_time * op.n_cell
            expected = f"(n_time, n_cell) = ({op.n_time}, {op.n_cell})"
        else:
            tg = np.arange(op.n_time) if time_group is None else np.asarray(time_group, np.int64)
            n_tg = int(tg.max()) + 1 if tg.size else 0
            table = np.arange(n_tg * op.n_cell).reshape(n_tg, op.n_cell) if entry is None \
                else np.asarray(entry, dtype=np.int64)
            if self._groups is not None and tg is self._groups[0] and table is self._groups[1]:
                groups = self._groups  # a refresh of the last call's grouping: checked then
            elif tg.shape != (op.n_time,) or tg.min() < 0 or table.shape != (n_tg, op.n_cell) \
                    or table.min() < 0:
                raise InputError("groups do not match the operator", variable="groups",
                                 expected=f"non-negative groups of {op.n_time} times and an "
                                          f"entry per (time group, cell) of {op.n_cell} cells")
            else:
                groups = (tg, table)
            n_entry = self._n_entry if groups is self._groups else int(table.max()) + 1
            expected = f"{n_entry} entries"
        if g.size != n_entry:
            raise InputError(f"field has shape {g.shape}", variable="field", expected=expected)
        if not np.isfinite(g).all():  # one pass when finite (the usual case), no copies
            g = np.nan_to_num(g)
        self._g = g.ravel()
        same = groups is self._groups or (groups is not None and self._groups is not None and all(
            np.array_equal(a, b) for a, b in zip(self._groups, groups, strict=True)))
        self._groups, self._n_entry = groups, n_entry
        if not same:
            self._merged = None if groups is None else self._merge(n_entry)
            self._deviation = None
        matrix = op.matrix if groups is None else self._merged
        self._hg = matrix @ self._g.astype(np.float64)
        self._slope = self._center = None
        if slope is not None:
            if center is None or inputs is None or slope.size % n_entry \
                    or center.shape != slope.shape:
                raise InputError("a first-order cache needs slope and center of the entries' "
                                 "shape and the columns' inputs", variable="slope",
                                 expected=f"slope and center of shape ({n_entry}, n_input)")
            n_in = slope.size // n_entry
            flat = center.reshape(n_entry, n_in)
            if self._deviation is None or center is not self._deviation[0]:  # once per centre
                self._deviation = (center, self._deviation_matrix(flat, inputs))
            self._slope = np.ascontiguousarray(slope, dtype=np.float32).reshape(n_entry, n_in)
            self._center = np.ascontiguousarray(flat, dtype=np.float32)
            self._hg = self._hg + self._deviation[1] @ self._slope.astype(np.float64).ravel()

    def _group_of(self, col: np.ndarray) -> np.ndarray:
        """Cache entry of grid columns ``col`` (``t * n_cell + c``)."""
        if self._groups is None:
            return np.asarray(col, dtype=np.int64)
        tg, table = self._groups
        t, c = np.divmod(np.asarray(col, dtype=np.int64), self.operator.n_cell)
        return table[tg[t], c]

    def _merge(self, n_entries: int) -> sp.csr_matrix:
        """The operator with its columns summed by cache entry (:meth:`_group_of`), in
        canonical form (sorted, summed)."""
        m = self.operator.matrix.tocoo()
        merged = sp.csr_matrix((m.data, (m.row, self._group_of(m.col))),
                               shape=(m.shape[0], n_entries))
        merged.sum_duplicates()
        return merged

    def _deviation_matrix(self, center: np.ndarray, inputs: Callable[[np.ndarray], np.ndarray],
                          chunk: int = 1 << 20) -> sp.csr_matrix:
        """(n_obs, n_entries * n_input): the operator's columns weighted by each input's
        departure from its group's center, merged by (group, input).

        Built as ``Σ h x − (Σ h) · center`` per (row, entry) of the merged operator: the input
        moments are summed by bincount into the merged matrix's pattern, whose entries sort as
        (row, entry) do, so nothing is sorted beyond the merge itself.
        """
        m = self.operator.matrix.tocoo()
        if self._groups is None:
            merged = self.operator.matrix.copy()
            merged.sum_duplicates()
        else:
            assert self._merged is not None
            merged = self._merged
        n_obs, n_entries = merged.shape
        n_in = center.shape[-1]
        flat = center.reshape(-1, n_in)
        keys = (np.repeat(np.arange(n_obs, dtype=np.int64), np.diff(merged.indptr)) * n_entries
                + merged.indices)
        moments = np.zeros((merged.nnz, n_in))
        for a in range(0, m.nnz, chunk):  # bounded memory: the inputs of a chunk of columns
            col = m.col[a:a + chunk]
            at = np.searchsorted(keys, m.row[a:a + chunk].astype(np.int64) * n_entries
                                 + self._group_of(col))
            x = np.asarray(inputs(col), dtype=np.float64) * m.data[a:a + chunk, None]
            for k in range(n_in):
                moments[:, k] += np.bincount(at, x[:, k], minlength=merged.nnz)
        moments -= merged.data[:, None] * flat[merged.indices]
        indices = (merged.indices[:, None].astype(np.int64) * n_in + np.arange(n_in)).ravel()
        return sp.csr_matrix((moments.ravel(), indices, merged.indptr.astype(np.int64) * n_in),
                             shape=(n_obs, flat.shape[0] * n_in))

    def cached(self, col: np.ndarray, inputs: torch.Tensor | np.ndarray | None = None
               ) -> np.ndarray:
        """The cache at grid columns ``col`` (``t * n_cell + c``); a first-order cache needs
        the columns' model ``inputs``."""
        if self._g is None:
            raise RuntimeError("control variate estimator used before set_cache")
        entry = self._group_of(col)
        value = self._g[entry]
        if self._slope is None:
            return value
        if inputs is None:
            raise RuntimeError("a first-order control-variate cache needs the draws' inputs")
        x = (inputs.detach().cpu().float().numpy() if isinstance(inputs, torch.Tensor)
             else np.asarray(inputs, dtype=np.float32))
        return value + np.einsum("ij,ij->i", x - self._center[entry], self._slope[entry])

    def _baseline(self, sample: Sample, inputs: torch.Tensor | np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self._g is None or self._hg is None:
            raise RuntimeError("control variate estimator used before set_cache")
        return self._hg[sample.obs_ids], self.cached(sample.col, inputs)


def make_estimator(kind: str, operator: LinearOperator, *, K: int = 64,
                   sampling: Sampling = "area", strata: np.ndarray | None = None,
                   n_rep: int = 1, seed: int = 0) -> Estimator:
    """An estimator by name: ``exact``, ``fixed``, ``resampled`` or ``control_variate``."""
    if kind == "exact":
        return ExactEstimator(operator)
    if kind == "fixed":
        return FixedEstimator(operator, K, sampling, strata, n_rep, seed)
    if kind == "resampled":
        return ResampledEstimator(operator, K, sampling, strata, n_rep)
    if kind == "control_variate":
        return ControlVariateEstimator(operator, K, sampling, strata, n_rep)
    raise InputError(f"unknown estimator {kind!r}", variable="estimator",
                     expected=" or ".join(ESTIMATORS))


def squared_error(estimates: ArrayT, mu: ArrayT) -> ArrayT:
    """Per-row squared error ``(F̂ − μ)²``; with two replicates the unbiased product
    ``(F̂1 − μ)(F̂2 − μ)``. Torch tensors or numpy arrays.

    Parameters
    ----------
    estimates
        (n_rep, n_obs) estimates [Tg month-1] from :meth:`Estimator.estimate`.
    mu
        (n_obs,) targets [Tg month-1].
    """
    if estimates.shape[0] == 1:
        return (estimates[0] - mu) ** 2
    if estimates.shape[0] == 2:
        return (estimates[0] - mu) * (estimates[1] - mu)
    raise ValueError(f"expected 1 or 2 replicates, got {estimates.shape[0]}")


def squared_error_grad(estimates: ArrayT, mu: ArrayT) -> ArrayT:
    """Gradient of :func:`squared_error`, row by row, with respect to each replicate's
    estimates (n_rep, n_obs): ``2 (F̂ − μ)``, or ``(F̂2 − μ, F̂1 − μ)`` for the product."""
    if estimates.shape[0] == 1:
        return 2 * (estimates - mu)
    if estimates.shape[0] == 2:
        return (estimates - mu)[[1, 0]]
    raise ValueError(f"expected 1 or 2 replicates, got {estimates.shape[0]}")
