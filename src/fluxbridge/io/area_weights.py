"""Exact overlap areas between two regular latitude-longitude grids.

On the sphere the area shared by a source cell and a target cell is ``R² Δλ Δ(sin φ)``, a
product of a longitude overlap and an overlap in the sine of latitude. The weights therefore
separate into two sparse matrices, ``W_lat`` (target rows × source rows) and ``W_lon`` (target
columns × source columns), and the area shared by every pair of cells is ``W_lat ⊗ W_lon``.
Aggregation by area is then ``W_lat @ X @ W_lon.T`` for any field ``X`` on the source grid,
whatever the two resolutions (nested or not, finer or coarser); the GeoTIFF reader applies it
a strip of rows at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import xarray as xr

from fluxbridge.grid import normalise_longitude, resolution_of

_ROUNDING = 1e-9
"""Relative overlap below which two cells are taken to touch only (rounded edges)."""


def centre_edges(centres: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges [degree] of the cells of a regular 1-D coordinate.

    Latitude edges are clipped to ±90 (grids such as NCEP's centre a half cell on each pole);
    longitudes are mapped into [-180, 180) first.
    """
    centres = np.asarray(centres, dtype=float)
    half = resolution_of(centres, name) / 2
    if name == "lon":
        centres = normalise_longitude(centres)
        return centres - half, centres + half
    return np.clip(centres - half, -90.0, 90.0), np.clip(centres + half, -90.0, 90.0)


def overlap_matrix(src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray],
                   period: float | None = None) -> sp.csr_matrix:
    """Lengths of overlap of every target interval with every source interval.

    Parameters
    ----------
    src, dst
        (lower, upper) edges of the source and target intervals, in one measure (degrees of
        longitude, or the sine of latitude); each set must not overlap itself.
    period
        360 for longitude: intervals are compared modulo it (a cell across the date line).

    Returns
    -------
    scipy.sparse.csr_matrix
        (n_dst, n_src) overlap lengths, in the measure of the edges.
    """
    order = np.argsort(src[0])
    lo, hi = np.asarray(src[0], float)[order], np.asarray(src[1], float)[order]
    d_lo, d_hi = np.asarray(dst[0], float), np.asarray(dst[1], float)
    rows, cols, vals = [], [], []
    for shift in (-period, 0.0, period) if period else (0.0,):
        first = np.searchsorted(hi + shift, d_lo, side="right")
        stop = np.searchsorted(lo + shift, d_hi, side="left")
        counts = np.maximum(stop - first, 0)
        r = np.repeat(np.arange(d_lo.size), counts)
        c = first[r] + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        v = np.minimum(hi[c] + shift, d_hi[r]) - np.maximum(lo[c] + shift, d_lo[r])
        keep = v > _ROUNDING * (hi[c] - lo[c])  # not the slivers left by rounded edges
        rows.append(r[keep])
        cols.append(order[c[keep]])
        vals.append(v[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(d_lo.size, lo.size))


@dataclass(frozen=True)
class AreaWeights:
    """Separable overlap areas of a source grid with a target grid.

    Attributes
    ----------
    lat
        (n_target_lat, n_source_lat) overlaps in sin(latitude), CSC for slicing source rows.
    lon_t
        (n_source_lon, n_target_lon) overlaps in degrees of longitude (transposed).
    target_area
        (n_target_lat, n_target_lon) area of each target cell in the same units
        (Δ sin φ × Δλ [degree]); divide by it for shares of the cell.
    lon_starts
        Where the source columns nest in the target columns in order (each wholly inside
        one, all of one width, every target column filled): the first source column of each
        target column, for a faster sum; else None.
    """

    lat: sp.csc_matrix
    lon_t: sp.csr_matrix
    target_area: np.ndarray
    lon_starts: np.ndarray | None = None

    def rows(self, start: int, stop: int, field: np.ndarray) -> np.ndarray:
        """Area-weighted sums on the target grid of ``field``, the source rows start:stop."""
        if self.lon_starts is None:
            by_lon = np.asarray(field, dtype=np.float64) @ self.lon_t
        else:  # nested columns: a sum over each target column's run of equal source columns
            by_lon = np.add.reduceat(field, self.lon_starts, axis=1, dtype=np.float64)
            by_lon *= self.lon_t.data[0]
        return self.lat[:, start:stop] @ by_lon


def area_weights(src_lat: tuple[np.ndarray, np.ndarray], src_lon: tuple[np.ndarray, np.ndarray],
                 grid: xr.Dataset | xr.DataArray) -> AreaWeights:
    """Overlap areas of the source cells (given by their edges [degree]) with ``grid``.

    Parameters
    ----------
    src_lat, src_lon
        (lower, upper) edges [degree] of the source rows and columns, in the source's order.
    grid
        Target grid: regular ``lat``/``lon`` cell centres [degree], any order or longitude
        convention (a regions dataset, :func:`fluxbridge.grid.make_grid`).

    Returns
    -------
    AreaWeights
    """
    t_lat = centre_edges(np.asarray(grid["lat"]), "lat")
    t_lon = centre_edges(np.asarray(grid["lon"]), "lon")
    lon_lo = normalise_longitude(src_lon[0])
    s_lon = (lon_lo, lon_lo + np.asarray(src_lon[1], float) - np.asarray(src_lon[0], float))
    sine = [tuple(np.sin(np.deg2rad(np.clip(e, -90, 90))) for e in pair)
            for pair in (src_lat, t_lat)]
    w_lat = overlap_matrix(sine[0], sine[1]).tocsc()
    w_lon = overlap_matrix(s_lon, t_lon, period=360.0)
    area = np.outer(sine[1][1] - sine[1][0], t_lon[1] - t_lon[0])
    lon_t = w_lon.T.tocsr()
    return AreaWeights(lat=w_lat, lon_t=lon_t, target_area=np.abs(area),
                       lon_starts=_nested_starts(lon_t, s_lon[1] - s_lon[0]))


def _nested_starts(lon_t: sp.csr_matrix, width: np.ndarray) -> np.ndarray | None:
    """First source column of each target column if the source columns nest in order."""
    target = lon_t.indices
    nested = (np.array_equal(np.diff(lon_t.indptr), np.ones(lon_t.shape[0]))
              and np.allclose(lon_t.data, width, rtol=_ROUNDING, atol=0)
              and np.allclose(width, width[0], rtol=_ROUNDING, atol=0)
              and np.array_equal(np.unique(target), np.arange(lon_t.shape[1]))
              and bool(np.all(np.diff(target) >= 0)))
    return np.flatnonzero(np.diff(target, prepend=-1)) if nested else None


def regrid_mean(da: xr.DataArray, grid: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Area-weighted (conservative) mean of a field on another regular grid.

    Parameters
    ----------
    da
        Field with dimensions ``lat`` and ``lon`` (regular, any order) and any others; NaN
        cells are left out of the mean.
    grid
        Target grid (``lat``/``lon`` cell centres [degree]).

    Returns
    -------
    xr.DataArray
        The mean over the overlapping source area on ``grid``'s coordinates, NaN where no
        valid source cell overlaps; attributes of ``da`` kept.
    """
    w = area_weights(centre_edges(da["lat"].values, "lat"),
                     centre_edges(da["lon"].values, "lon"), grid)
    other = [d for d in da.dims if d not in ("lat", "lon")]
    values = da.transpose(*other, "lat", "lon").values.reshape(-1, da.sizes["lat"],
                                                               da.sizes["lon"])
    out = np.empty((values.shape[0], *w.target_area.shape))
    for i, field in enumerate(values):
        valid = np.isfinite(field)
        total = w.rows(0, field.shape[0], valid)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(total > 0, w.rows(0, field.shape[0], np.where(valid, field, 0.0))
                              / total, np.nan)
    shape = [da.sizes[d] for d in other] + list(w.target_area.shape)
    coords = {d: da[d] for d in other if d in da.coords}
    return xr.DataArray(out.reshape(shape).astype(da.dtype if da.dtype.kind == "f" else float),
                        dims=(*other, "lat", "lon"),
                        coords={**coords, "lat": np.asarray(grid["lat"]),
                                "lon": np.asarray(grid["lon"])},
                        name=da.name, attrs=dict(da.attrs))

