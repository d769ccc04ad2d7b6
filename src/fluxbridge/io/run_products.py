"""A run's products on disk: the cross-validation's predictions, and the gridded NEE read back
for the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.outputs.files import write_csv, write_json


def cost_path(predictions_csv: Path) -> Path:
    """The JSON beside the predictions that holds each model's seconds per fold."""
    return predictions_csv.with_name(predictions_csv.stem + "_seconds_per_fold.json")


def write_predictions(predictions: pd.DataFrame, path: Path) -> None:
    """Out-of-fold predictions as CSV, their ``attrs["seconds_per_fold"]`` [s] beside them
    (written first, so a complete CSV always has its cost)."""
    write_json(predictions.attrs.get("seconds_per_fold", {}), cost_path(path))
    write_csv(predictions, path)


def read_predictions(path: Path) -> pd.DataFrame:
    """Out-of-fold predictions written by :func:`write_predictions`, with their cost."""
    out = pd.read_csv(path, parse_dates=["time"])
    cost = cost_path(path)
    out.attrs["seconds_per_fold"] = json.loads(cost.read_text()) if cost.exists() else {}
    return out


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
