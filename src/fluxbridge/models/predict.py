"""The one grid predictor: NEE of fitted models on gridded predictors.

Every gridded prediction from a predictors dataset goes through :func:`predict_grid` — a fitted
model's :meth:`~fluxbridge.models.artifact.FittedModel.predict_dataset` and the upscaling's
chunk function (:func:`fluxbridge.upscaling.chunks.predict_chunk`) — so that a grid cell gets
the same value whichever asks. Only cells with land (``land_cover`` > 0) are predicted; the
features of a lazy (dask-backed) chunk are read one at a time, once for all members that share
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.features import sw_in_pot
from fluxbridge.grid_features import feature_array, land_cover_codes
from fluxbridge.vocabulary import VARIABLES

NEE_ATTRS = {
    "units": VARIABLES["nee"].units,
    "long_name": "net ecosystem exchange of carbon (CO2), positive upward (to the atmosphere)",
}
"""Attributes of gridded NEE."""


class GridModel(Protocol):
    """What the grid predictor needs of a model (:class:`FittedModel` has it). A model with
    ``has_grid_offset`` true gets each cell's region and day of year."""

    feature_names: Sequence[str]

    def predict_arrays(self, X_raw: np.ndarray, igbp: np.ndarray, device: object = None, *,
                       region: np.ndarray | None = None,
                       dayofyear: np.ndarray | None = None) -> np.ndarray:
        """NEE [g m-2 d-1] (n,) from raw features (n, n_feature) and IGBP codes (n,)."""
        ...


def predict_grid(models: GridModel | Sequence[GridModel], ds: xr.Dataset) -> xr.DataArray:
    """NEE of one model or of each member of an ensemble on gridded predictors.

    Parameters
    ----------
    models
        A fitted model or a list of ensemble members.
    ds
        Canonical predictors (time, lat, lon), or a chunk of them, loaded or lazy, with the
        static ``land_cover`` (lat, lon) and, for models with a grid offset, ``region``
        (lat, lon); ``sw_in_pot`` is computed when absent.

    Returns
    -------
    xr.DataArray
        ``nee`` (member, time, lat, lon) float32 [g m-2 d-1], positive upward, one member per
        model (reduce over ``member`` for an ensemble's mean and spread); NaN where a
        predictor is NaN or the land cover is water (0).
    """
    members = list(models) if isinstance(models, list | tuple) else [models]
    n_t, n_y, n_x = ds.sizes["time"], ds.sizes["lat"], ds.sizes["lon"]
    lc = land_cover_codes(ds).ravel()
    cells = np.flatnonzero(lc > 0)  # water stays NaN: a third of the work and memory
    time = pd.DatetimeIndex(ds["time"].values)
    igbp = np.broadcast_to(lc[cells], (n_t, cells.size)).reshape(-1)
    offset = _offset_inputs(ds, cells, time) \
        if any(getattr(m, "has_grid_offset", False) for m in members) else (None, None)
    out = np.full((len(members), n_t, n_y * n_x), np.nan, dtype=np.float32)
    rows: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
    for k, m in enumerate(members):
        key = tuple(m.feature_names)
        if key not in rows:
            X = _land_rows(ds, key, cells, time)
            rows[key] = (X, np.isfinite(X).all(axis=1))
        X, valid = rows[key]
        region, doy = offset if getattr(m, "has_grid_offset", False) else (None, None)
        out[k][:, cells] = _predict_valid(m, X, valid, igbp, region, doy).reshape(
            n_t, cells.size)
    del rows
    return xr.DataArray(
        out.reshape(len(members), n_t, n_y, n_x), dims=("member", "time", "lat", "lon"),
        coords={"time": ds["time"], "lat": ds["lat"], "lon": ds["lon"]}, name="nee",
        attrs=dict(NEE_ATTRS))


def _land_rows(ds: xr.Dataset, features: Sequence[str], cells: np.ndarray,
               time: pd.DatetimeIndex) -> np.ndarray:
    """Raw features float32 (n_time * n_cells, n_feature) of the land cells ``cells`` (flat
    (lat, lon) indices), rows in (time, cell) order, read one feature at a time."""
    n_t, n_x = ds.sizes["time"], ds.sizes["lon"]
    X = np.empty((n_t, cells.size, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        if name == "sw_in_pot" and name not in ds:
            X[:, :, j] = sw_in_pot(ds["lat"].values, time)[:, cells // n_x]
        else:
            values = np.asarray(feature_array(ds, name).values, dtype=np.float32)
            X[:, :, j] = values.reshape(n_t, -1)[:, cells]
            del values
    return X.reshape(n_t * cells.size, -1)


def _offset_inputs(ds: xr.Dataset, cells: np.ndarray, time: pd.DatetimeIndex
                   ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Region id and day of year of each (time, cell) row; None without a ``region`` map."""
    if "region" not in ds:
        return None, None
    ids = np.asarray(ds["region"].transpose("lat", "lon").values, dtype=np.int64)
    region = np.broadcast_to(ids.ravel()[cells], (time.size, cells.size)).reshape(-1)
    return region, np.repeat(time.day_of_year.to_numpy(), cells.size)


def _predict_valid(model: GridModel, X: np.ndarray, valid: np.ndarray, igbp: np.ndarray,
                   region: np.ndarray | None, doy: np.ndarray | None) -> np.ndarray:
    """The model's NEE float32 (n,) at the rows with every feature finite, NaN elsewhere."""
    pred = np.full(X.shape[0], np.nan, dtype=np.float32)
    if valid.all():
        pred[:] = model.predict_arrays(X, igbp, region=region, dayofyear=doy)
    elif valid.any():
        pred[valid] = model.predict_arrays(
            X[valid], igbp[valid], region=None if region is None else region[valid],
            dayofyear=None if doy is None else doy[valid])
    return pred
