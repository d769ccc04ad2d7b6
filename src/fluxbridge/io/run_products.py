"""Reading a run's gridded NEE products back (for the evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr


def read_mean_map(path: str | Path) -> xr.DataArray:
    """Time-mean NEE (lat, lon) [g m-2 d-1] of a gridded product (``nee``), positive to the
    atmosphere."""
    with xr.open_dataset(path) as ds:
        return ds["nee"].mean("time").load()


def read_land_cells(path: str | Path, lat_index: np.ndarray, lon_index: np.ndarray
                    ) -> np.ndarray:
    """NEE (time, cell) [g m-2 d-1] of a gridded product at the given land cells, float64,
    missing values as 0."""
    with xr.open_dataset(path) as ds:
        values = ds["nee"].values[:, lat_index, lon_index]
    return np.nan_to_num(values.astype(np.float64))
