"""Site predictors of the site cross-validation, from each site's own meteorology only.

A bucket water availability, each site's climate and the mean seasonal cycle of its own
meteorology: no coordinates and no NEE, nothing that could carry a test site's fluxes into
training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.features import feature_units
from fluxbridge.io.fluxnet_meteo import EXTRA_METEO_COLUMNS, EXTRA_METEO_UNITS
from fluxbridge.timesteps import step_days

SITECV_FEATURES: tuple[str, ...] = ("ta", "vpd", "sw_in", "sw_in_pot", "precip")
"""Tower meteorology every FLUXNET2015 SUBSET/FULLSET file carries (TA_F, VPD_F, SW_IN_F,
SW_IN_POT, P_F), in canonical names."""

METEO_FEATURES: tuple[str, ...] = (*SITECV_FEATURES, *EXTRA_METEO_COLUMNS)
"""Time-varying predictors of the cross-validation."""

CLIMATE_FEATURES: dict[str, str] = {"ta_site_mean": "ta", "precip_site_mean": "precip",
                                    "sw_in_site_mean": "sw_in", "vpd_site_mean": "vpd"}
"""Per-site means of a meteorological variable over the site's whole record (mean annual
temperature, precipitation, radiation and dryness, as FLUXCOM's static site climate)."""

MSC_FEATURES: dict[str, str] = {"ta_msc": "ta", "sw_in_msc": "sw_in", "vpd_msc": "vpd",
                                "precip_msc": "precip"}
"""The site's mean seasonal cycle of a meteorological variable (mean over the record's years of
each calendar month), taken at each record's month: where in its own climate a month lies."""

DERIVED_UNITS: dict[str, str] = {**EXTRA_METEO_UNITS, "wai": "1"}
"""Units of the features this module adds outside the vocabulary (a site mean or seasonal
cycle has its variable's units: :func:`fluxbridge.features.feature_units`)."""


def derived_units(name: str) -> str:
    """Units of a feature this module adds."""
    return DERIVED_UNITS.get(name) or feature_units(name)


DEFAULT_FEATURES: tuple[str, ...] = (*METEO_FEATURES, "wai", *CLIMATE_FEATURES, *MSC_FEATURES)
"""Predictors of :func:`fluxbridge.studies.sitecv.sitecv_predictions` by default (those
present in the samples). No coordinates: like FLUXCOM, the models see climate, not place."""

WAI_CAPACITY_MM = 150.0
"""Soil water capacity of the water-availability bucket [mm]."""


def water_availability(sites: xr.Dataset, capacity: float = WAI_CAPACITY_MM) -> xr.DataArray:
    """Relative water availability (0..1) of a bucket model, as FLUXCOM's WAI.

    Each site's bucket fills with precipitation and empties by evapotranspiration
    ``AET = PET · W / capacity``; ``PET`` is Priestley–Taylor (α = 1.26) from net radiation
    ``Rn = 0.85 SW_in + LW_in − 0.98 σ (T + 273.15)⁴`` (albedo 0.15; without ``lw_in``,
    ``Rn = 0.6 SW_in``) at the record's own step, and ``W`` starts full and is run twice over
    the record (the second pass starts from the end of the first). Meteorology only.

    Parameters
    ----------
    sites
        Canonical sites dataset (site, time) with ``ta`` [degC], ``sw_in`` [W m-2],
        ``precip`` [mm d-1] and optionally ``lw_in`` [W m-2], daily or monthly.
    capacity
        Bucket size [mm].

    Returns
    -------
    xr.DataArray
        ``wai`` [1] on (site, time); NaN where the site has no meteorology.
    """
    ta = sites["ta"].transpose("site", "time").values.astype(float)
    sw = sites["sw_in"].transpose("site", "time").values.astype(float)
    precip = sites["precip"].transpose("site", "time").values.astype(float)
    if "lw_in" in sites:
        lw = sites["lw_in"].transpose("site", "time").values.astype(float)
        rn = 0.85 * sw + lw - 0.98 * 5.670374e-8 * (ta + 273.15) ** 4
        rn = np.where(np.isfinite(lw), rn, 0.6 * sw)
    else:
        rn = 0.6 * sw
    # Priestley-Taylor: slope of the saturation vapour pressure curve [kPa K-1], psychrometric
    # constant 0.066 kPa K-1, latent heat 2.45 MJ kg-1; W m-2 -> MJ m-2 d-1 is 0.0864
    es = 0.6108 * np.exp(17.27 * ta / (ta + 237.3))
    delta = 4098.0 * es / (ta + 237.3) ** 2
    pet = np.clip(1.26 * delta / (delta + 0.066) * np.maximum(rn, 0.0) * 0.0864 / 2.45, 0, None)
    days = step_days(sites["time"].values)
    wai = np.full(ta.shape, np.nan)
    for i in range(ta.shape[0]):
        ok = np.isfinite(ta[i]) & np.isfinite(precip[i]) & np.isfinite(pet[i])
        idx = np.flatnonzero(ok)
        w = capacity
        for _ in range(2):
            for t in idx:
                aet = min(pet[i, t] * days[t] * w / capacity, w)
                w = min(capacity, w - aet + precip[i, t] * days[t])
                wai[i, t] = w / capacity
    return xr.DataArray(wai, dims=("site", "time"), coords={"site": sites["site"],
                                                            "time": sites["time"]},
                        name="wai", attrs={"units": "1",
                                           "long_name": "relative water availability"})


def site_meteo_features(sites: xr.Dataset) -> pd.DataFrame:
    """The extra meteorology, site climate and mean seasonal cycle of each site, per (site, time).

    Computed from every record of a site that has meteorology, with or without NEE, and from
    nothing else: meteorology is a predictor known wherever the model is applied, so these are
    predictors too and cannot leak observed NEE across folds.

    Parameters
    ----------
    sites
        Canonical sites dataset with the meteorology of :data:`METEO_FEATURES` (those present
        are used).

    Returns
    -------
    pd.DataFrame
        ``site``, ``time`` and one float32 column per variable of :data:`EXTRA_METEO_COLUMNS`
        and per feature of :data:`CLIMATE_FEATURES` and :data:`MSC_FEATURES` whose source
        variable ``sites`` carries, and ``wai`` (:func:`water_availability`) when it carries
        ``ta``, ``sw_in`` and ``precip``.
    """
    extra = [n for n in EXTRA_METEO_COLUMNS if n in sites.data_vars]
    sources = sorted({*CLIMATE_FEATURES.values(), *MSC_FEATURES.values()} & set(sites.data_vars))
    names = sorted({*sources, *extra})
    frame = sites[names].transpose("site", "time").to_dataframe()[names].reset_index()
    frame = frame[frame[names].notna().any(axis=1)]
    frame["site"] = frame["site"].astype(str)
    month = pd.DatetimeIndex(frame["time"]).month
    out = frame[["site", "time"]].copy()
    for name in extra:
        out[name] = frame[name].astype(np.float32)
    if {"ta", "sw_in", "precip"} <= set(sites.data_vars):
        wai = water_availability(sites).to_series()
        out["wai"] = wai.reindex(pd.MultiIndex.from_arrays(
            [frame["site"].to_numpy(), frame["time"].to_numpy()])).to_numpy(dtype=np.float32)
    for name, source in CLIMATE_FEATURES.items():
        if source in sources:
            out[name] = frame.groupby("site")[source].transform("mean").astype(np.float32)
    for name, source in MSC_FEATURES.items():
        if source in sources:
            # mean over years of each calendar month (daily values: of the month's days)
            out[name] = frame.groupby([frame["site"], month])[source].transform(
                "mean").astype(np.float32)
    return out.reset_index(drop=True)


def add_site_features(samples: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Join :func:`site_meteo_features` onto the samples by (site, time)."""
    names = [c for c in features.columns if c not in ("site", "time")]
    out = samples.drop(columns=[c for c in names if c in samples.columns])
    keys = features.assign(site=features["site"].astype(str))
    out = out.assign(_site=out["site"].astype(str)).merge(
        keys.rename(columns={"site": "_site"}), on=["_site", "time"], how="left"
    ).drop(columns="_site")
    out.index = samples.index
    units = dict(samples.attrs.get("units", {}))
    units.update({n: derived_units(n) for n in names})
    out.attrs = {**samples.attrs, "units": units}
    return out


def add_climate_features(samples: pd.DataFrame) -> pd.DataFrame:
    """Per-site means (:data:`CLIMATE_FEATURES`) over the samples' own rows.

    For a table without the sites dataset behind it; :func:`fluxbridge.studies.sitecv.run_sitecv`
    uses the full meteorological record instead (:func:`site_meteo_features`).
    """
    out = samples.copy()
    for name, source in CLIMATE_FEATURES.items():
        if source in out.columns:
            out[name] = out.groupby("site")[source].transform("mean").astype(np.float32)
    units = dict(samples.attrs.get("units", {}))
    units.update({n: derived_units(n) for n, s in CLIMATE_FEATURES.items() if s in out.columns})
    out.attrs["units"] = units
    return out
