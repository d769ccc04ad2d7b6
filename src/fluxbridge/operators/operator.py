"""The observation operator H: a linear map from a gridded flux field to observations.

A regional total is the one quantity everything refers to: the sum over a region's cells and a
month's time steps of cell area × land fraction × days of the step × flux density, in Tg of
carbon per month for a flux in g m-2 d-1 (positive = source). It is computed two ways, which
agree to rounding:

* :class:`RegionalOperator`, a sparse matrix with one row per (region, month) over the columns
  ``time_index * n_cell + cell_index`` of a set of land cells (those of
  :class:`fluxbridge.grid_features.GridFeatures`), for training; rows of transport footprints are
  rows of the same matrix type (:class:`LinearOperator`);
* :func:`regional_totals` (and :func:`monthly_totals` for any area weights), the same rows
  applied to an xarray field, in memory or lazily on dask, for gridded products.

:func:`region_weights` gives the spatial part of the rows (area × land fraction) and
:func:`fluxbridge.timesteps.step_days` the days of each time step.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG
from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid
from fluxbridge.regions import region_names
from fluxbridge.timesteps import step_days
from fluxbridge.vocabulary import attrs

log = logging.getLogger(__name__)


def region_weights(regions: xr.Dataset) -> xr.DataArray:
    """One-hot area weights (region, lat, lon) [m2]: cell_area × land_fraction inside a region.

    The coordinate ``region`` holds integer ids; ``region_name`` their names.
    """
    names = region_names(regions)
    ids = np.array(sorted(names), dtype=int)
    land_area = (regions["cell_area"] * regions["land_fraction"]).fillna(0.0)
    onehot = regions["region"] == xr.DataArray(ids, dims="region")
    weights = (onehot * land_area).astype("float64")
    weights = weights.assign_coords(region=ids,
                                    region_name=("region", [names[i] for i in ids]))
    weights.attrs = {"units": "m2", "long_name": "land area of each cell in each region"}
    return weights


def monthly_totals(nee: xr.DataArray, area: xr.DataArray, *, days: np.ndarray | None = None,
                   dim: str | Sequence[Hashable] = ("lat", "lon")) -> xr.DataArray:
    """Rows of H on an xarray field: Σ area × days × flux over cells and each month's steps.

    Parameters
    ----------
    nee
        Flux density [g m-2 d-1] of carbon with a ``time`` dimension and the cell dimensions
        ``dim``; numpy- or dask-backed. NaN counts as zero flux.
    area
        Weights [m2] over the cell dimensions, e.g. :func:`region_weights` (one row per region)
        or cell area × land fraction (one global row).
    days
        Days of each time step [d]; by default :func:`fluxbridge.timesteps.step_days` of the
        field's times (pass the whole record's for a piece of it).
    dim
        Cell dimensions summed over.

    Returns
    -------
    xr.DataArray
        Totals [Tg month-1] over the remaining dimensions and ``time`` (month start).
    """
    per_step = xr.dot(nee.fillna(0.0), area, dim=dim, optimize=True)  # g d-1
    days = step_days(nee["time"]) if days is None else np.asarray(days, dtype=float)
    per_step = per_step * xr.DataArray(days, dims="time", coords={"time": nee["time"]})
    return per_step.resample(time="MS").sum() / G_PER_TG


def regional_totals(nee: xr.DataArray, regions: xr.Dataset) -> xr.DataArray:
    """Monthly regional totals of a flux density field: H applied to an xarray field.

    Parameters
    ----------
    nee
        Flux density (time, lat, lon) [g m-2 d-1] of carbon, daily or monthly means (time = month
        start); numpy- or dask-backed. NaN counts as zero flux (use a filled field where that
        matters).
    regions
        Canonical regions dataset on the same grid.

    Returns
    -------
    xr.DataArray
        (region, time) [Tg month-1] of carbon, time = month start.
    """
    check_same_grid(nee, regions, what="flux field and region mask")
    out = monthly_totals(nee, region_weights(regions)).transpose("region", "time")
    out.name = "nee_tgc"
    out.attrs = attrs("nee_tgc")
    return out


def global_annual_totals(nee: xr.DataArray, cell_area: xr.DataArray,
                         land_fraction: xr.DataArray) -> xr.DataArray:
    """Global annual totals [Pg yr-1] of carbon from a daily or monthly flux density field
    [g m-2 d-1]: the months of :func:`monthly_totals` over all land, summed by year."""
    area = (cell_area * land_fraction).fillna(0.0)
    monthly = monthly_totals(nee, area)
    out = monthly.resample(time="YS").sum() * (G_PER_TG / G_PER_PG)
    out.name = "nee_global"
    out.attrs = attrs("nee_pgc")
    return out


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
    × days / 1e12, so that ``H·f`` is in [Tg month-1] for ``f`` in [g m-2 d-1] (the rows of
    :func:`regional_totals` on the field's cells).

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
        days = step_days(times)
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
        da.attrs = attrs("nee_tgc")
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


def totals_frame(totals: xr.DataArray, value_name: str = "nee_tgc") -> pd.DataFrame:
    """(region, time) totals as the long CSV table ``region, time (YYYY-MM), value_name``."""
    df = totals.to_dataframe(name=value_name).reset_index()
    name_col = "region_name" if "region_name" in df else "region"
    return pd.DataFrame({
        "region": df[name_col].astype(str),
        "time": pd.DatetimeIndex(df["time"]).strftime("%Y-%m"),
        value_name: df[value_name].astype(float),
    })
