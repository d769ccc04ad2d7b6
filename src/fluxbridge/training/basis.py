"""Exact regional totals of basis fields: the grid offset's and the cache drift's designs.

Both corrections are linear in their coefficients, so their totals at the targets are a small
matrix (targets × coefficients) built once from the operator's rows; a step's totals are then
one matrix product, exact, and only the network's share of a total is sampled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fluxbridge.operators import LinearOperator

Fields = Callable[[np.ndarray], tuple[np.ndarray, Sequence[np.ndarray]]]


def basis_totals(operator: LinearOperator, obs_ids: np.ndarray, n_groups: int, fields: Fields,
                 chunk: int = 1 << 22) -> np.ndarray:
    """Exact totals at the targets ``obs_ids`` of basis fields that are zero outside their
    group of cells.

    Parameters
    ----------
    operator
        The observation operator.
    obs_ids
        Its rows, in target order.
    n_groups
        Number of groups.
    fields
        ``fields(col)`` gives the group of each grid column (-1: none) and the basis values
        there (n_basis arrays of shape (n,)).
    chunk
        Operator entries read at a time.

    Returns
    -------
    np.ndarray
        (n_targets, n_groups * n_basis) float64, column ``group * n_basis + k``, in the
        operator's units per unit of basis value.
    """
    rows = operator.matrix[obs_ids].tocoo()
    size = obs_ids.size * n_groups
    D: np.ndarray | None = None
    for a in range(0, rows.nnz, chunk):
        group, values = fields(rows.col[a:a + chunk])
        on = group >= 0
        key = rows.row[a:a + chunk][on] * n_groups + group[on]
        data = rows.data[a:a + chunk][on]
        part = np.stack([np.bincount(key, data * v[on], minlength=size) for v in values],
                        axis=1)
        D = part if D is None else D + part
    if D is None:  # no entries: the basis's width from an empty call
        D = np.zeros((size, len(fields(np.zeros(0, dtype=np.int64))[1])))
    return D.reshape(obs_ids.size, -1)
