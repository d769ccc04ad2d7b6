"""Predictors on the model grid: feature arrays of a gridded chunk, and the land cells held in
memory for the observation operator.

* :func:`feature_array` — one feature of a predictors dataset (``sw_in_pot`` computed when
  absent), :func:`land_cover_codes` — its static IGBP codes;
* :func:`feature_matrix` — a flattened gridded chunk as model input rows;
* :class:`GridFeatures` — the land cells of a predictors dataset, indexed by (time, cell), the
  column space of :mod:`fluxbridge.operators`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.features import FEATURES, feature_units, sw_in_pot
from fluxbridge.grid import check_same_grid, sw_in_pot_field
from fluxbridge.location import at_times, with_location_layers

logger = logging.getLogger(__name__)


def _spacing(coord: np.ndarray) -> float | None:
    """Mean spacing of a coordinate [its units]; None with fewer than two points."""
    coord = np.asarray(coord, dtype=np.float64)
    return float(np.abs(np.diff(coord)).mean()) if coord.size > 1 else None


def feature_array(ds: xr.Dataset, name: str) -> xr.DataArray:
    """One feature (time, lat, lon) of a predictors dataset; ``sw_in_pot`` computed if absent,
    a location layer (:mod:`fluxbridge.location`) taken at each time."""
    if name in ds:
        return at_times(ds[name], ds["time"])
    if name == "sw_in_pot":
        return sw_in_pot_field(ds)
    raise InputError("predictors lack a feature", variable=name,
                     expected="every feature the model was trained on")


def land_cover_codes(ds: xr.Dataset) -> np.ndarray:
    """The static IGBP code of each cell, int64 (lat, lon); a missing code is 0 (water)."""
    if "land_cover" not in ds:
        raise InputError("predictors lack the static land cover", variable="land_cover",
                         expected="land_cover (lat, lon) IGBP codes 0..16")
    lc = ds["land_cover"]
    if "time" in lc.dims:
        lc = lc.isel(time=0)
    values = np.asarray(lc.transpose("lat", "lon").values).astype(np.float64)
    return np.nan_to_num(values, nan=0.0).astype(np.int64)


def feature_matrix(ds: xr.Dataset, features: Sequence[str] = FEATURES
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten a gridded predictors chunk into model inputs.

    Parameters
    ----------
    ds
        Predictors (time, lat, lon) with static ``land_cover`` (lat, lon); numpy-backed or lazy.
    features
        Feature names, in model order.

    Returns
    -------
    X
        float32 (n_time * n_lat * n_lon, n_feature), raw units, C order over (time, lat, lon).
    igbp
        int64 (n,) IGBP code per row.
    valid
        bool (n,): every feature finite and ``land_cover`` not water (0).
    """
    n_t, n_y, n_x = ds.sizes["time"], ds.sizes["lat"], ds.sizes["lon"]
    n = n_t * n_y * n_x
    X = np.empty((n, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        X[:, j] = np.asarray(feature_array(ds, name).values, dtype=np.float32).reshape(n)
    lc = land_cover_codes(ds)
    igbp = np.broadcast_to(lc[None], (n_t, n_y, n_x)).reshape(n).copy()
    valid = np.isfinite(X).all(axis=1) & (igbp > 0)
    return X, igbp, valid


@dataclass
class GridFeatures:
    """The land cells of a predictors dataset held in memory for the observation operator.

    Memory: ``n_time * n_cell * n_feature * 4`` bytes. A 2-degree grid has about 6 800 cells
    with land (4 800 inside the TransCom-like regions): 10 features over one year take about
    100 MB (70 MB with ``only_regions``).

    Attributes
    ----------
    values
        float32 (n_time, n_cell, n_feature), raw (un-normalised) units.
    igbp_code
        int64 (n_cell,) IGBP code of each cell.
    lat_index, lon_index
        int64 (n_cell,) indices into the grid's ``lat`` and ``lon``.
    cell_ids
        int64 (n_cell,) flat index ``lat_index * n_lon + lon_index``.
    times
        Time of each step.
    feature_names
        Feature order of the last axis of ``values``.
    region
        int64 (n_cell,) region id of each cell (0 = none).
    cell_area
        float64 (n_cell,) [m2].
    land_fraction
        float64 (n_cell,) [1].
    n_lat, n_lon
        Grid shape.
    units
        Units of each feature.
    resolution_deg
        Latitude spacing of the grid [degree] (None: unknown).
    """

    values: np.ndarray
    igbp_code: np.ndarray
    lat_index: np.ndarray
    lon_index: np.ndarray
    cell_ids: np.ndarray
    times: pd.DatetimeIndex
    feature_names: list[str]
    region: np.ndarray
    cell_area: np.ndarray
    land_fraction: np.ndarray
    n_lat: int
    n_lon: int
    units: dict[str, str] = field(default_factory=dict)
    resolution_deg: float | None = None

    @classmethod
    def from_dataset(cls, predictors: xr.Dataset, regions: xr.Dataset,
                     features: Sequence[str] = FEATURES, only_regions: bool = False
                     ) -> GridFeatures:
        """Load the land cells of ``predictors`` into memory.

        Land cells are those with ``land_fraction > 0`` (from ``regions``) and a land cover
        class other than water; the latter are NaN in :meth:`FittedModel.predict_dataset`
        too, so the operator and the upscaled grid integrate the same cells. Cells outside
        every region are kept (``region == 0``) unless ``only_regions``.

        Parameters
        ----------
        predictors
            Canonical predictors (time, lat, lon) with static ``land_cover``; may be lazy.
            Location features it lacks are computed from its whole record.
        regions
            Canonical regions dataset on the same grid.
        features
            Feature names, in model order.
        only_regions
            Keep only cells inside a region (``region != 0``), to save memory.
        """
        check_same_grid(predictors, regions, "predictors and regions")
        predictors = with_location_layers(predictors, features)
        lc = land_cover_codes(predictors)
        frac = np.asarray(regions["land_fraction"].transpose("lat", "lon").values, dtype=float)
        land = frac > 0
        water_class = int((land & (lc == 0)).sum())
        if water_class:
            logger.warning("%d cells with land_fraction > 0 have land cover 'water' and are "
                           "left out", water_class)
        keep = land & (lc > 0)
        if only_regions:
            keep &= np.asarray(regions["region"].transpose("lat", "lon").values) != 0
        ilat, ilon = np.nonzero(keep)
        if ilat.size == 0:
            raise InputError("no land cell in the predictors", variable="land_cover",
                             expected="cells with land_fraction > 0 and land_cover > 0")
        n_lat, n_lon = lc.shape
        times = pd.DatetimeIndex(predictors["time"].values)
        values = np.empty((times.size, ilat.size, len(features)), dtype=np.float32)
        sel = {"lat": xr.DataArray(ilat, dims="cell"), "lon": xr.DataArray(ilon, dims="cell")}
        for j, name in enumerate(features):
            if name not in predictors and name == "sw_in_pot":
                values[:, :, j] = sw_in_pot(predictors["lat"].values[ilat], times)
                continue
            da = feature_array(predictors, name).isel(sel).transpose("time", "cell")
            values[:, :, j] = np.asarray(da.values, dtype=np.float32)
        n_nan = int((~np.isfinite(values)).any(axis=2).sum())
        logger.debug("grid features: %d times x %d land cells x %d features (%.1f MB); "
                     "%d (time, cell) with a NaN feature", times.size, ilat.size, len(features),
                     values.nbytes / 1e6, n_nan)
        region = np.asarray(regions["region"].transpose("lat", "lon").values)[ilat, ilon]
        area = np.asarray(regions["cell_area"].transpose("lat", "lon").values)[ilat, ilon]
        return cls(
            values=values,
            igbp_code=lc[ilat, ilon],
            lat_index=ilat.astype(np.int64),
            lon_index=ilon.astype(np.int64),
            cell_ids=(ilat * n_lon + ilon).astype(np.int64),
            times=times,
            feature_names=list(features),
            region=region.astype(np.int64),
            cell_area=area.astype(np.float64),
            land_fraction=frac[ilat, ilon],
            n_lat=n_lat,
            n_lon=n_lon,
            units={name: feature_units(name) for name in features},
            resolution_deg=_spacing(predictors["lat"].values),
        )

    @property
    def n_cell(self) -> int:
        """Number of land cells."""
        return int(self.lat_index.size)

    def valid(self) -> np.ndarray:
        """bool (n_time, n_cell): every feature finite.

        :meth:`FittedModel.predict_dataset` gives NaN where this is False (and the upscaled
        totals count those cell-days as zero), while predicting from :meth:`take` imputes the
        training mean; mask with this to integrate exactly the same cell-days.
        """
        return np.isfinite(self.values).all(axis=2)

    def take(self, time_idx: np.ndarray, cell_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features and classes of (time, cell) pairs.

        Parameters
        ----------
        time_idx, cell_idx
            Integer arrays of equal length: positions in :attr:`times` and in the cell axis.

        Returns
        -------
        X
            float32 (n, n_feature), raw units.
        igbp
            int64 (n,).
        """
        time_idx = np.asarray(time_idx, dtype=np.int64)
        cell_idx = np.asarray(cell_idx, dtype=np.int64)
        return self.values[time_idx, cell_idx], self.igbp_code[cell_idx]

    def rows(self) -> np.ndarray:
        """``values`` as (n_time * n_cell, n_feature): row ``t * n_cell + c`` is (time t,
        cell c), the column numbering of :mod:`fluxbridge.operators`. A view, no copy (unless
        ``values`` is not C-contiguous)."""
        values = np.ascontiguousarray(self.values)
        return values.reshape(-1, values.shape[-1])
