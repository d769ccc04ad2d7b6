"""Footprint rows of the observation operator H: tower mole-fraction enhancements.

A receptor's enhancement over its background is

    Δc = Σ over cells c and footprint hours h of foot[h, c] × φ[h, c]    [ppm]

with ``foot`` in ppm per (µmol m-2 s-1) and φ the cell-mean flux in µmol m-2 s-1. The package's
flux is a land flux density f in gC m-2 d-1 per time step (a day, or a month of daily means), so

* **unit conversion** (stated once, :data:`UMOL_M2_S_PER_GC_M2_D`): 1 gC m-2 d-1 =
  1e6 / 12.0107 / 86 400 µmol m-2 s-1 = 0.963657 µmol m-2 s-1 (the molar mass of carbon of
  :mod:`fluxbridge.constants`, as ONEFlux uses);
* **hourly rule**: uniform within the step, every hour of a day (or month) carries the step's
  mean flux. The diurnal cycle of NEE is not represented; afternoon footprints therefore see
  the daily mean, a first rule to be replaced by an hourly model where the step is hourly;
* **land fraction**: the cell-mean flux is f × land fraction (ocean and fossil fuel
  contributions are given by the user as prior enhancements, not by this operator).

Hence row ``i`` of H has, in column ``t * n_cell + c``, the weight
``Σ_{hours h of step t} foot_i[h, c] × land_fraction[c] × 0.963657`` [ppm per (gC m-2 d-1)],
and ``H·f`` is Δc [ppm]. Footprint cells finer than the model's are summed into the model cell
that holds them (a footprint is a sensitivity to a flux density, so nested cells add).

Sparse estimates of these rows use the regional rows' interface unchanged:
``ResampledEstimator(op, K, sampling="area")`` (``make_estimator("resampled", ...)``) draws
columns with probability ∝ |H_ij|, i.e. in proportion to footprint weight × land fraction,
with Horvitz–Thompson weights: importance sampling, unbiased.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from fluxbridge.constants import UMOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.grid import _cell_index
from fluxbridge.operators.operator import LinearOperator
from fluxbridge.timesteps import step_days

log = logging.getLogger(__name__)

UMOL_M2_S_PER_GC_M2_D = 1.0 / UMOL_M2_S_TO_GC_M2_D
"""1 gC m-2 d-1 in µmolCO2 m-2 s-1: 1e6 / 12.0107 / 86 400 = 0.963657."""

HOUR = np.timedelta64(3600, "s")


class FootprintOperator(LinearOperator):
    """H for tower mole fractions: one row per receptor, ``H·f`` = Δc [ppm] for a land flux
    density ``f`` (n_time, n_cell) [gC m-2 d-1] (see the module docstring for the rule).

    Parameters
    ----------
    footprints
        One footprint per receptor (any iterable, read once: a generator keeps one in memory),
        as :func:`fluxbridge.io.footprints.read_stilt_footprint`
        returns: ``foot`` (time, lat, lon) [ppm (umol-1 m2 s)], hourly (time = beginning of
        the hour, UTC), scalar ``receptor_*`` coordinates.
    times
        Daily (or monthly, month start) times of the flux field.
    grid_lat, grid_lon
        Cell centres [degree] of the model grid (canonical: lat descending, lon in
        [-180, 180)); footprint cells must nest in its cells.
    lat_index, lon_index
        Grid indices of the field's cells (e.g. ``GridFeatures.lat_index``).
    land_fraction
        Land fraction of each field cell (n_cell,) [1]; by default 1.

    Attributes
    ----------
    obs_index
        One row per operator row: ``receptor_time``, ``receptor_lat``, ``receptor_lon``
        [degree], ``receptor_height`` [m], ``source`` (the footprint's file),
        ``foot_total`` (Σ foot over the file's cells and hours) [ppm (umol-1 m2 s)] and
        ``land_share`` [1], the part of it on the field's cells weighted by land fraction
        (the rest is ocean or outside the field).

    Notes
    -----
    A receptor whose footprint reaches hours outside the field's time steps is skipped (its
    enhancement would be incomplete) and logged; none left raises.
    """

    def __init__(self, footprints: Iterable[xr.DataArray], times: pd.DatetimeIndex | np.ndarray,
                 grid_lat: np.ndarray, grid_lon: np.ndarray, lat_index: np.ndarray,
                 lon_index: np.ndarray, land_fraction: np.ndarray | None = None) -> None:
        times = pd.DatetimeIndex(times)
        lat_index = np.asarray(lat_index, dtype=np.int64)
        lon_index = np.asarray(lon_index, dtype=np.int64)
        n_cell = lat_index.size
        grid_lat = np.asarray(grid_lat, dtype=float)
        grid_lon = np.asarray(grid_lon, dtype=float)
        lookup = np.full((grid_lat.size, grid_lon.size), -1, dtype=np.int64)
        lookup[lat_index, lon_index] = np.arange(n_cell)
        lf = np.ones(n_cell) if land_fraction is None else np.asarray(land_fraction, float)
        if lf.shape != (n_cell,):
            raise InputError(f"land fraction has shape {lf.shape}", variable="land_fraction",
                             expected=f"one value per cell, ({n_cell},)")
        ends = times.values + (step_days(times) * 86_400).astype("timedelta64[s]")
        rows, cols, data, index = [], [], [], []
        for foot in footprints:
            part = _footprint_row(foot, times.values, ends, grid_lat, grid_lon, lookup, lf)
            if part is None:
                continue
            rows.append(np.full(part[0].size, len(index)))
            cols.append(part[0])
            data.append(part[1])
            index.append(part[2])
        if not index:
            raise InputError("no footprint lies within the field's time steps",
                             variable="footprints",
                             expected=f"footprint hours between {times[0]} and {ends[-1]}")
        matrix = sp.coo_matrix((np.concatenate(data), (np.concatenate(rows),
                                                       np.concatenate(cols))),
                               shape=(len(index), times.size * n_cell)).tocsr()
        super().__init__(matrix, times.size, n_cell)
        self.obs_index = pd.DataFrame(index)
        self.lat_index = lat_index
        self.lon_index = lon_index
        self.times = times


def _footprint_row(foot: xr.DataArray, starts: np.ndarray, ends: np.ndarray,
                   grid_lat: np.ndarray, grid_lon: np.ndarray, lookup: np.ndarray,
                   lf: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Columns and weights [ppm per (gC m-2 d-1)] of one receptor's row (duplicates summed
    later), and its ``obs_index`` record; None when its hours leave the field's steps."""
    record = {name: foot.coords[name].values[()] if name in foot.coords else np.nan
              for name in ("receptor_time", "receptor_lat", "receptor_lon", "receptor_height")}
    values = np.nan_to_num(np.asarray(foot.transpose("time", "lat", "lon").values, float))
    h, y, x = np.nonzero(values > 0)
    weight = values[h, y, x]
    hours = foot["time"].values.astype("datetime64[s]")
    step = np.searchsorted(starts, hours, side="right") - 1
    inside = (step >= 0) & (hours + HOUR <= ends[np.clip(step, 0, None)])
    if not np.all(inside[h]):
        log.info("footprint of receptor %s reaches outside the field's time steps: skipped",
                 record["receptor_time"])
        return None
    iy = _nested_index(foot["lat"].values, grid_lat, "lat", None)
    ix = _nested_index(foot["lon"].values, grid_lon, "lon", 360.0)
    cell = np.where((iy[y] >= 0) & (ix[x] >= 0), lookup[iy[y], ix[x]], -1)
    keep = cell >= 0
    w = weight[keep] * lf[cell[keep]]
    record["source"] = str(foot.attrs.get("source", ""))
    record["foot_total"] = float(values.sum())
    record["land_share"] = float(w.sum() / values.sum()) if values.sum() > 0 else 0.0
    cols = step[h[keep]] * lf.size + cell[keep]
    return cols, w * UMOL_M2_S_PER_GC_M2_D, record


def _nested_index(centres: np.ndarray, grid: np.ndarray, name: str, period: float | None
                  ) -> np.ndarray:
    """Grid cell of each footprint cell (-1 outside the grid); raises where a footprint cell
    straddles two grid cells (footprint resolution coarser or not aligned)."""
    centres = np.asarray(centres, dtype=float)
    steps = np.diff(np.unique(centres))
    half = (steps.min() if steps.size else 0.0) / 2 * (1 - 1e-6)
    index = _cell_index(centres, grid, name, period)
    for edge in (centres - half, centres + half):
        if np.any(_cell_index(edge, grid, name, period) != index):
            raise InputError("footprint cells straddle the model grid's cells", variable=name,
                             expected="a footprint grid nested in the model grid (the same "
                                      "or an integer finer resolution, aligned edges)")
    return index
