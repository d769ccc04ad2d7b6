"""A fitted model over the grid's land cells, and its regional monthly totals.

What the studies score: each retrained model is applied to every (time, land cell) of the
gridded features and summed by the exact operator, as the upscaled products are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.grid_features import GridFeatures
from fluxbridge.operators import RegionalOperator


def _members(model: Any) -> list[Any]:
    return list(model) if isinstance(model, list | tuple) else [model]


def grid_field(model: Any, grid: GridFeatures, chunk_rows: int = 1 << 20, *,
               cells: np.ndarray | None = None, mask_invalid: bool = True) -> np.ndarray:
    """A model's NEE at every (time, land cell) of ``grid`` (n_time, n_cell) [g m-2 d-1],
    grid offset included (cells pass their region and day of year).

    Parameters
    ----------
    model
        A fitted model, or a list of ensemble members (their mean is returned).
    grid
        Gridded features of the land cells.
    chunk_rows
        Rows per prediction call.
    cells
        Positions of the cells to predict; the others are 0 (all cells when ``None``).
    mask_invalid
        Cell-days with a non-finite feature are 0, as in the upscaled totals
        (:meth:`GridFeatures.valid`); otherwise the model imputes them.
    """
    n_time, n_cell, n_feat = grid.values.shape
    out = np.zeros((n_time, n_cell), dtype=np.float32)
    cols = np.arange(n_cell) if cells is None else np.asarray(cells, dtype=np.int64)
    if cols.size == 0:
        return out
    members = _members(model)
    per = max(1, chunk_rows // cols.size)
    doy = pd.DatetimeIndex(grid.times).day_of_year.to_numpy()
    for t0 in range(0, n_time, per):
        t1 = min(n_time, t0 + per)
        X = grid.values[t0:t1][:, cols].reshape(-1, n_feat)
        args = (np.tile(grid.igbp_code[cols], t1 - t0),)
        kw = {"region": np.tile(grid.region[cols], t1 - t0),
              "dayofyear": np.repeat(doy[t0:t1], cols.size)}
        pred = sum(m.predict_arrays(X, *args, **kw).astype(np.float64) for m in members)
        out[t0:t1, cols] = (pred / len(members)).reshape(t1 - t0, cols.size)
    if mask_invalid:
        out[~grid.valid()] = 0.0
    return out


def regional_series(model: Any, grid: GridFeatures, regions: xr.Dataset,
                    only: Sequence[int] | None = None) -> pd.DataFrame:
    """Regional monthly totals ``region, time (YYYY-MM), nee_tgc`` [Tg month-1] of a model.

    ``only``: region ids to compute (only their cells are predicted); all regions when
    ``None``. Cell-days with a missing predictor count as zero, as in the upscaled totals.
    """
    op = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
    cells = None if only is None else np.flatnonzero(np.isin(grid.region, list(only)))
    totals = op.exact(grid_field(model, grid, cells=cells).astype(np.float64))
    idx = op.obs_index
    out = pd.DataFrame({"region_id": idx["region"].to_numpy().astype(int),
                        "region": idx["region_name"].astype(str).to_numpy(),
                        "time": pd.DatetimeIndex(idx["time"]).strftime("%Y-%m"),
                        "nee_tgc": np.asarray(totals)})
    if only is not None:
        out = out[out["region_id"].isin(list(only))]
    return out.drop(columns="region_id").reset_index(drop=True)
