"""The control-variate estimator of H·f: an exact cached part plus a sampled correction.

``H·g`` of a cached full-field prediction ``g`` (exact, through the operator's columns merged by
cache entry) plus a sampled Horvitz–Thompson estimate of ``f − g``: unbiased whatever ``g``, and
of far lower variance than sampling ``f`` when the cache is close to the model. The cache's
groups of cell-days are :class:`fluxbridge.operators.cache.CacheGroups`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from fluxbridge.errors import InputError
from fluxbridge.operators.operator import LinearOperator
from fluxbridge.operators.resampled import ResampledEstimator, Sampling
from fluxbridge.operators.sample import Sample


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
