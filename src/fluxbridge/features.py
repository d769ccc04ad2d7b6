"""Predictor features: site samples, normalisation and gridded feature arrays.

Three views of the same predictors feed the models:

* :func:`site_samples` — one row per (site, day) with observed NEE, for fitting;
* :class:`GridFeatures` — the land cells of a predictors dataset held in memory, indexed by
  (time, cell), for the sparse observation operator;
* :func:`feature_matrix` — a flattened gridded chunk, for upscaling.

Statistics for normalisation (:class:`Normaliser`) are fitted on training rows only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid, sw_in_pot_daily
from fluxbridge.vocabulary import IGBP_CODE, VARIABLES

logger = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "ta", "vpd", "sw_in", "sw_in_pot", "precip", "ndvi", "evi", "nirv", "lst_day", "lst_night",
)  # fmt: skip
"""Default predictors, canonical names of :mod:`fluxbridge.vocabulary`."""

METEO_FEATURES: frozenset[str] = frozenset({"ta", "vpd", "sw_in", "sw_in_pot", "precip"})
"""Features a site file may carry itself (tower meteorology)."""


def _units(name: str) -> str:
    return VARIABLES[name].units if name in VARIABLES else "1"


def _spacing(coord: np.ndarray) -> float | None:
    """Mean spacing of a coordinate [its units]; None with fewer than two points."""
    coord = np.asarray(coord, dtype=np.float64)
    return float(np.abs(np.diff(coord)).mean()) if coord.size > 1 else None


def _sw_in_pot(lat: np.ndarray, time: pd.DatetimeIndex) -> np.ndarray:
    """Potential shortwave radiation [W m-2], shape (n_time, n_lat)."""
    doy = np.asarray(time.day_of_year, dtype=float)
    return sw_in_pot_daily(np.asarray(lat, dtype=float)[None, :], doy[:, None])


def _igbp_codes(classes: Sequence[Any], where: str) -> np.ndarray:
    codes = []
    for c in classes:
        name = str(c).strip().upper()
        if name not in IGBP_CODE:
            raise InputError(f"unknown IGBP class {c!r}", path=where, variable="igbp",
                             expected="one of " + " ".join(IGBP_CODE))
        codes.append(IGBP_CODE[name])
    return np.asarray(codes, dtype=np.int64)


def _land_cells(predictors: xr.Dataset) -> np.ndarray:
    """Boolean (lat, lon) mask of cells with land in ``predictors``."""
    if "land_cover" in predictors:
        return np.asarray(predictors["land_cover"].values) > 0
    if "land_fraction" in predictors:
        return np.asarray(predictors["land_fraction"].values) > 0
    return np.ones((predictors.sizes["lat"], predictors.sizes["lon"]), dtype=bool)


def nearest_land_cell(lat: np.ndarray, lon: np.ndarray, predictors: xr.Dataset
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the grid cell nearest (great circle) to each point among cells with land.

    Parameters
    ----------
    lat, lon
        Points [degree].
    predictors
        Dataset on the canonical grid; land cells are ``land_cover > 0`` (else
        ``land_fraction > 0``, else every cell).

    Returns
    -------
    lat_index, lon_index
        Integer indices into ``predictors.lat`` and ``predictors.lon``.
    """
    land = _land_cells(predictors)
    if not land.any():
        raise InputError("predictors have no land cell", variable="land_cover",
                         expected="at least one cell with land_cover > 0")
    ilat, ilon = np.nonzero(land)
    glat = np.deg2rad(predictors["lat"].values[ilat])[None, :]
    glon = np.deg2rad(predictors["lon"].values[ilon])[None, :]
    plat = np.deg2rad(np.asarray(lat, dtype=float))[:, None]
    plon = np.deg2rad(np.asarray(lon, dtype=float))[:, None]
    # haversine; monotonic in distance, enough for an argmin
    h = (np.sin((glat - plat) / 2) ** 2
         + np.cos(plat) * np.cos(glat) * np.sin((glon - plon) / 2) ** 2)
    best = np.argmin(h, axis=1)
    return ilat[best], ilon[best]


def site_samples(
    sites: xr.Dataset,
    predictors: xr.Dataset | None = None,
    features: Sequence[str] = FEATURES,
    meteo_from: str = "site",
) -> pd.DataFrame:
    """Training samples: one row per (site, time) with observed NEE and its predictors.

    Parameters
    ----------
    sites
        Canonical sites dataset (``nee`` [g m-2 d-1] and ``nee_weight`` [1] on (site, time),
        coordinates ``lat``, ``lon``, ``igbp``; optional site meteorology).
    predictors
        Canonical predictors dataset (time, lat, lon), daily; needed for every feature the
        site dataset does not provide. Values are taken at the nearest cell with land and at
        exactly the same times (missing times give NaN).
    features
        Feature names (canonical).
    meteo_from
        ``"site"``: meteorological features (``ta``, ``vpd``, ``sw_in``, ``sw_in_pot``,
        ``precip``) from the site dataset when present there; ``"predictors"``: always from the
        gridded predictors. Remote-sensing features always come from ``predictors``.
        ``sw_in_pot`` missing from its source is computed from latitude and day of year.

    Returns
    -------
    pd.DataFrame
        Columns ``site`` (str), ``time`` (datetime64), ``igbp`` (str), ``igbp_code`` (int),
        ``lat``, ``lon`` [degree], one float32 column per feature (NaN kept), ``nee``
        [g m-2 d-1] positive to the atmosphere, ``weight`` [1]. ``df.attrs["units"]`` maps each
        column to its units.
    """
    if meteo_from not in ("site", "predictors"):
        raise InputError(f"meteo_from={meteo_from!r}", variable="meteo_from",
                         expected="'site' or 'predictors'")
    for name in ("nee", "nee_weight", "lat", "lon", "igbp"):
        if name not in sites.variables:
            raise InputError("sites dataset lacks it", variable=name,
                             expected="the canonical sites dataset (fluxbridge.schema)")
    site_ids = np.asarray(sites["site"].values).astype(str)
    time = pd.DatetimeIndex(sites["time"].values)
    lat = np.asarray(sites["lat"].values, dtype=float)
    lon = np.asarray(sites["lon"].values, dtype=float)
    igbp = np.asarray(sites["igbp"].values).astype(str)
    codes = _igbp_codes(igbp, "sites dataset")

    columns: dict[str, np.ndarray] = {}
    cell: tuple[np.ndarray, np.ndarray] | None = None
    for name in features:
        from_site = meteo_from == "site" and name in METEO_FEATURES
        if from_site and name in sites:
            columns[name] = sites[name].transpose("site", "time").values
            continue
        if name == "sw_in_pot" and (from_site or predictors is None):
            columns[name] = _sw_in_pot(lat, time).T
            continue
        if predictors is None or (name not in predictors and name != "sw_in_pot"):
            raise InputError("feature found neither in the sites dataset nor in the predictors",
                             variable=name, expected="a predictors dataset that carries it")
        if cell is None:
            cell = nearest_land_cell(lat, lon, predictors)
            logger.info("site predictors taken at the nearest land cell of %d sites", lat.size)
        if name == "sw_in_pot" and name not in predictors:
            columns[name] = _sw_in_pot(predictors["lat"].values[cell[0]], time).T
            continue
        da = predictors[name].isel(lat=xr.DataArray(cell[0], dims="site"),
                                   lon=xr.DataArray(cell[1], dims="site"))
        da = da.reindex(time=time).transpose("site", "time")
        columns[name] = np.asarray(da.values)

    nee = sites["nee"].transpose("site", "time").values
    weight = sites["nee_weight"].transpose("site", "time").values
    keep = np.isfinite(nee)
    si, ti = np.nonzero(keep)
    df = pd.DataFrame({
        "site": pd.array(site_ids[si], dtype="str"),
        "time": time[ti],
        "igbp": pd.array(igbp[si], dtype="str"),
        "igbp_code": codes[si],
        "lat": lat[si],
        "lon": lon[si],
    })
    for name in features:
        df[name] = np.asarray(columns[name], dtype=np.float32)[si, ti]
    df["nee"] = nee[si, ti].astype(np.float64)
    df["weight"] = np.nan_to_num(weight[si, ti].astype(np.float64), nan=0.0)
    n_nan = {name: int(df[name].isna().sum()) for name in features}
    logger.info("site samples: %d rows from %d sites; NaN per feature: %s",
                len(df), int(keep.any(axis=1).sum()), {k: v for k, v in n_nan.items() if v})
    df.attrs["units"] = {
        "site": "", "time": "", "igbp": "", "igbp_code": "1",
        "lat": "degrees_north", "lon": "degrees_east",
        **{name: _units(name) for name in features},
        "nee": VARIABLES["nee"].units, "weight": "1",
    }
    return df


@dataclass
class Normaliser:
    """Feature standardisation with statistics fitted on training rows.

    Attributes
    ----------
    feature_names
        Feature order of the columns it transforms.
    mean, std
        Per-feature mean and standard deviation, in the features' units.
    """

    feature_names: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, df: pd.DataFrame, features: Sequence[str]) -> Normaliser:
        """Mean and standard deviation of ``features`` over the rows of ``df`` (NaN ignored).

        Pass the training rows only. A feature that is constant or all NaN gets std 1
        (and mean 0 when all NaN).
        """
        missing = [f for f in features if f not in df.columns]
        if missing:
            raise InputError("samples lack feature columns", variable=", ".join(missing),
                             expected="columns for every feature")
        values = df[list(features)].to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
        var = np.nansum((values - mean) ** 2, axis=0) / np.maximum(count, 1)
        std = np.sqrt(var)
        std = np.where(std > 0, std, 1.0)
        return cls(list(features), mean, std)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of ``X`` (n, n_feature); NaN becomes 0 (the mean)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise InputError(f"feature array of shape {X.shape}", variable="X",
                             expected=f"(n, {len(self.feature_names)}) for "
                                      f"{', '.join(self.feature_names)}")
        Z = (X - self.mean) / self.std
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_dict(self) -> dict[str, list]:
        """JSON-able form."""
        return {"feature_names": list(self.feature_names),
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        """Inverse of :meth:`to_dict`."""
        try:
            names = [str(n) for n in d["feature_names"]]
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed normaliser: {exc}", variable="normaliser",
                             expected="feature_names, mean and std lists") from exc
        if not (len(names) == mean.size == std.size):
            raise InputError("normaliser lists differ in length", variable="normaliser",
                             expected="one mean and std per feature")
        return cls(names, mean, std)


def _feature_array(ds: xr.Dataset, name: str) -> xr.DataArray:
    """One feature (time, lat, lon) of a predictors dataset; ``sw_in_pot`` computed if absent."""
    if name in ds:
        return ds[name].transpose("time", "lat", "lon")
    if name == "sw_in_pot":
        time = pd.DatetimeIndex(ds["time"].values)
        pot = _sw_in_pot(ds["lat"].values, time)[:, :, None]
        pot = np.broadcast_to(pot, (time.size, ds.sizes["lat"], ds.sizes["lon"]))
        return xr.DataArray(pot, dims=("time", "lat", "lon"),
                            coords={"time": ds["time"], "lat": ds["lat"], "lon": ds["lon"]})
    raise InputError("predictors lack a feature", variable=name,
                     expected="every feature the model was trained on")


def _land_cover(ds: xr.Dataset) -> np.ndarray:
    if "land_cover" not in ds:
        raise InputError("predictors lack the static land cover", variable="land_cover",
                         expected="land_cover (lat, lon) IGBP codes 0..16")
    lc = ds["land_cover"]
    if "time" in lc.dims:
        lc = lc.isel(time=0)
    return np.asarray(lc.transpose("lat", "lon").values)


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
        X[:, j] = np.asarray(_feature_array(ds, name).values, dtype=np.float32).reshape(n)
    lc = np.nan_to_num(_land_cover(ds).astype(np.float64), nan=0.0).astype(np.int64)
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
        regions
            Canonical regions dataset on the same grid.
        features
            Feature names, in model order.
        only_regions
            Keep only cells inside a region (``region != 0``), to save memory.
        """
        check_same_grid(predictors, regions, "predictors and regions")
        lc = np.nan_to_num(_land_cover(predictors).astype(np.float64), nan=0.0).astype(np.int64)
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
                values[:, :, j] = _sw_in_pot(predictors["lat"].values[ilat], times)
                continue
            da = _feature_array(predictors, name).isel(sel).transpose("time", "cell")
            values[:, :, j] = np.asarray(da.values, dtype=np.float32)
        n_nan = int((~np.isfinite(values)).any(axis=2).sum())
        logger.info("grid features: %d times x %d land cells x %d features (%.1f MB); "
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
            units={name: _units(name) for name in features},
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
