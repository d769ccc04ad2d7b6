"""Predictor features: the default feature list, derived variables, site samples and
normalisation.

Three views of the same predictors feed the models:

* :func:`site_samples` — one row per (site, day) with observed NEE, for fitting;
* :class:`fluxbridge.grid_features.GridFeatures` — the land cells of a predictors dataset held
  in memory, indexed by (time, cell), for the sparse observation operator;
* :func:`fluxbridge.grid_features.feature_matrix` — a flattened gridded chunk.

Statistics for normalisation (:class:`Normaliser`) are fitted on training rows only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import sw_in_pot_daily
from fluxbridge.location import at_times, location_source, with_location_layers
from fluxbridge.vocabulary import VARIABLES, igbp_codes

logger = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "ta", "vpd", "sw_in", "sw_in_pot", "precip", "ndvi", "evi", "nirv", "lst_day", "lst_night",
)  # fmt: skip
"""Default predictors, canonical names of :mod:`fluxbridge.vocabulary`."""

SEASONAL_FEATURES: tuple[str, ...] = tuple(f"{name}_msc" for name in FEATURES
                                           if name != "sw_in_pot")
"""Each default predictor's mean seasonal cycle at the place (:mod:`fluxbridge.location`);
that of ``sw_in_pot`` is left out, being a function of latitude and date that ``sw_in_pot``
itself gives."""

DEFAULT_FEATURES: tuple[str, ...] = (*FEATURES, *SEASONAL_FEATURES)
"""Features of an experiment that names none: the predictors and their mean seasonal cycles.
The places' means over the record (``<name>_site_mean``) are left out: in the twin world they
raise the skill at left-out towers but spoil the upscaled regional totals
(``benchmarks/feature_sets.py``, docs/method.md)."""

METEO_FEATURES: frozenset[str] = frozenset({"ta", "vpd", "sw_in", "sw_in_pot", "precip"})
"""Features a site file may carry itself (tower meteorology)."""


def feature_units(name: str) -> str:
    """Units of a feature: its canonical variable's (a location feature's: its predictor's),
    ``"1"`` for a name outside the vocabulary."""
    source = location_source(name)
    name = source[0] if source is not None else name
    return VARIABLES[name].units if name in VARIABLES else "1"


def sw_in_pot(lat: np.ndarray, time: pd.DatetimeIndex) -> np.ndarray:
    """Potential shortwave radiation [W m-2], shape (n_time, n_lat), from latitudes [degree]
    and the day of year of each time."""
    doy = np.asarray(time.day_of_year, dtype=float)
    return sw_in_pot_daily(np.asarray(lat, dtype=float)[None, :], doy[:, None])


def sw_in_pot_monthly(lat: np.ndarray, time: pd.DatetimeIndex) -> np.ndarray:
    """Monthly mean potential shortwave radiation [W m-2], shape (n_time, n_lat).

    Parameters
    ----------
    lat
        Latitudes [degree].
    time
        Any time within each month (month starts at the monthly step).

    Returns
    -------
    np.ndarray
        Mean over the days of each time's month of the daily mean top-of-atmosphere
        radiation (:func:`fluxbridge.grid.sw_in_pot_daily`).
    """
    lat = np.asarray(lat, dtype=float)
    out = np.empty((len(time), lat.size))
    for i, period in enumerate(pd.DatetimeIndex(time).to_period("M")):
        days = pd.period_range(period.start_time, period.end_time, freq="D").day_of_year
        out[i] = sw_in_pot_daily(lat[None, :], np.asarray(days, float)[:, None]).mean(axis=0)
    return out


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


def _dropped_sites(site_ids: np.ndarray, keep: np.ndarray, df: pd.DataFrame,
                   features: Sequence[str]) -> dict[str, str]:
    """Sites that give no usable sample, each with the reason; logged in one line."""
    complete = df[list(features)].notna().all(axis=1)
    with_features = set(df.loc[complete, "site"])
    dropped = {str(s): "no finite NEE" for s in site_ids[~keep.any(axis=1)]}
    dropped.update({str(s): "no day with every feature" for s in site_ids[keep.any(axis=1)]
                    if s not in with_features})
    if dropped:
        logger.warning("%d site(s) without a usable day left out: %s", len(dropped),
                       ", ".join(f"{s} ({why})" for s, why in sorted(dropped.items())))
    return dropped


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
        exactly the same times (missing times give NaN). Location features
        (:mod:`fluxbridge.location`) it lacks are computed from its whole record.
    features
        Feature names (canonical).
    meteo_from
        ``"site"``: meteorological features (``ta``, ``vpd``, ``sw_in``, ``sw_in_pot``,
        ``precip``) from the site dataset when present there; ``"grid"``: always from the
        gridded predictors (training then sees the inputs upscaling sees). Remote-sensing
        features always come from ``predictors``.
        ``sw_in_pot`` missing from its source is computed from latitude and day of year.

    Returns
    -------
    pd.DataFrame
        Columns ``site`` (str), ``time`` (datetime64), ``igbp`` (str), ``igbp_code`` (int),
        ``lat``, ``lon`` [degree], one float32 column per feature (NaN kept), ``nee``
        [g m-2 d-1] positive to the atmosphere, ``weight`` [1]. ``df.attrs["units"]`` maps each
        column to its units; ``df.attrs["dropped_sites"]`` maps each site without a usable
        sample (no finite NEE, or no day with every feature) to the reason.
    """
    if meteo_from not in ("site", "grid"):
        raise InputError(f"meteo_from={meteo_from!r}", variable="meteo_from",
                         expected="'site' or 'grid'")
    for name in ("nee", "nee_weight", "lat", "lon", "igbp"):
        if name not in sites.variables:
            raise InputError("sites dataset lacks it", variable=name,
                             expected="the canonical sites dataset (fluxbridge.schema)")
    site_ids = np.asarray(sites["site"].values).astype(str)
    time = pd.DatetimeIndex(sites["time"].values)
    lat = np.asarray(sites["lat"].values, dtype=float)
    lon = np.asarray(sites["lon"].values, dtype=float)
    igbp = np.asarray(sites["igbp"].values).astype(str)
    codes = igbp_codes(igbp, "sites dataset")
    if predictors is not None:
        predictors = with_location_layers(predictors, features)
    columns = _site_columns(sites, predictors, features, meteo_from == "site")

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
    logger.debug("site samples: %d rows from %d sites; NaN per feature: %s",
                 len(df), int(keep.any(axis=1).sum()), {k: v for k, v in n_nan.items() if v})
    df.attrs["dropped_sites"] = _dropped_sites(site_ids, keep, df, features)
    df.attrs["units"] = {
        "site": "", "time": "", "igbp": "", "igbp_code": "1",
        "lat": "degrees_north", "lon": "degrees_east",
        **{name: feature_units(name) for name in features},
        "nee": VARIABLES["nee"].units, "weight": "1",
    }
    return df


def _site_columns(sites: xr.Dataset, predictors: xr.Dataset | None, features: Sequence[str],
                  meteo_at_site: bool) -> dict[str, np.ndarray]:
    """Each feature (site, time) of :func:`site_samples`: tower meteorology where wanted and
    present, else the predictors at the nearest land cell; ``sw_in_pot`` computed where its
    source lacks it."""
    time = pd.DatetimeIndex(sites["time"].values)
    lat = np.asarray(sites["lat"].values, dtype=float)
    lon = np.asarray(sites["lon"].values, dtype=float)
    columns: dict[str, np.ndarray] = {}
    cell: tuple[np.ndarray, np.ndarray] | None = None
    for name in features:
        from_site = meteo_at_site and name in METEO_FEATURES
        if from_site and name in sites:
            columns[name] = sites[name].transpose("site", "time").values
            continue
        if name == "sw_in_pot" and (from_site or predictors is None):
            columns[name] = sw_in_pot(lat, time).T
            continue
        if predictors is None or (name not in predictors and name != "sw_in_pot"):
            raise InputError("feature found neither in the sites dataset nor in the predictors",
                             variable=name, expected="a predictors dataset that carries it")
        if cell is None:
            cell = nearest_land_cell(lat, lon, predictors)
            logger.info("site predictors taken at the nearest land cell of %d sites", lat.size)
        if name == "sw_in_pot" and name not in predictors:
            columns[name] = sw_in_pot(predictors["lat"].values[cell[0]], time).T
            continue
        da = predictors[name].isel(lat=xr.DataArray(cell[0], dims="site"),
                                   lon=xr.DataArray(cell[1], dims="site"))
        da = at_times(da, time).reindex(time=time).transpose("site", "time")
        columns[name] = np.asarray(da.values)
    return columns


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
