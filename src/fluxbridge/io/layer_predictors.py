"""Monthly predictors from real global layers: PSL climatologies and static GeoTIFF layers.

Where no daily meteorology is at hand, the predictors are monthly: NOAA PSL air temperature and
precipitation (a 1981-2010 long-term mean, or a monthly series) averaged onto the model grid by
area, the monthly mean top-of-atmosphere radiation (``sw_in_pot``) from latitude and month,
static vegetation layers (annual NDVI maximum and minimum, C4 fraction, Köppen-Geiger group)
repeated at every month, and the IGBP land cover. A climatology becomes a mean seasonal cycle on
the months of the nominal year (:mod:`fluxbridge.climatology`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.climatology import months_to_times
from fluxbridge.errors import InputError
from fluxbridge.features import sw_in_pot_monthly
from fluxbridge.io.geotiff_layers import KOPPEN_GEIGER, read_class_fractions, read_layer_mean
from fluxbridge.io.psl import read_psl
from fluxbridge.vocabulary import attrs as var_attrs

LAYERS: dict[str, tuple[str, float]] = {
    "ndvi_maximum": ("ndvi_max", 1.0),
    "ndvi_minimum": ("ndvi_min", 1.0),
    "c4_fraction": ("c4_fraction", 0.01),
    "kg_": ("climate_zone", 1.0),
}
"""File-name start (lower case) → canonical variable and factor to its units (the C4 layer is
in percent, the variable a fraction)."""


def layer_variable(path: str | os.PathLike[str]) -> tuple[str, float]:
    """The canonical variable and unit factor of a static layer, from its file name.

    Raises
    ------
    InputError
        A file name that starts with none of :data:`LAYERS`.
    """
    stem = Path(path).name.lower()
    for start, found in LAYERS.items():
        if stem.startswith(start):
            return found
    raise InputError("unknown layer", path=path, variable="inputs.vegetation_layers",
                     expected="a file named NDVI_maximum*, NDVI_minimum*, C4_fraction* or KG_*")


def read_static_layers(paths: Sequence[str | os.PathLike[str]], grid: xr.Dataset
                       ) -> xr.Dataset:
    """Static global layers on the model grid, each by area (mean, or majority class).

    Returns
    -------
    xr.Dataset
        One (lat, lon) variable per file, named and scaled as :data:`LAYERS` says.
    """
    out = xr.Dataset(coords={"lat": grid["lat"], "lon": grid["lon"]})
    for path in paths:
        name, scale = layer_variable(path)
        if name in out:
            raise InputError(f"{name} given twice", path=path, variable=name,
                             expected="one file per layer")
        if name == KOPPEN_GEIGER.variable:
            out[name] = read_class_fractions(path, grid, KOPPEN_GEIGER)[name].astype(
                np.float32).assign_attrs(var_attrs(name), source=str(path))
        else:
            out[name] = read_layer_mean(path, grid, name, scale)[name].assign_attrs(
                source=str(path))
    return out


def read_monthly_meteorology(paths: Sequence[str | os.PathLike[str]], grid: xr.Dataset
                             ) -> xr.Dataset:
    """PSL temperature and precipitation on the model grid, monthly (time, lat, lon).

    Parameters
    ----------
    paths
        PSL NetCDF files (:func:`fluxbridge.io.psl.read_psl`), all climatologies or all monthly
        series; each variable from one file.
    grid
        Model grid.

    Returns
    -------
    xr.Dataset
        ``ta`` [degC], ``precip`` [mm d-1] (those the files hold). A climatology lies on the
        months of the nominal year with ``climatology = "true"`` and its base period.
    """
    parts = [read_psl(p, grid=grid) for p in paths]
    kinds = {p.attrs["climatology"] for p in parts}
    if len(kinds) > 1:
        raise InputError("climatologies mixed with monthly series", path=paths[0],
                         variable="time", expected="all long-term means, or all monthly series")
    seen: dict[str, str] = {}
    for part in parts:
        for name in part.data_vars:
            if name in seen:
                raise InputError(f"{name} read from two files ({seen[name]})",
                                 path=part.attrs["source"], variable=name,
                                 expected="each variable from one file")
            seen[name] = part.attrs["source"]
    merged = xr.merge(parts, join="exact", combine_attrs="override")
    if kinds == {"true"}:
        periods = sorted({p.attrs["climatology_period"] for p in parts})
        return months_to_times(merged, " and ".join(periods))
    merged.attrs["climatology"] = "false"
    return merged


def monthly_predictors(meteorology: Sequence[str | os.PathLike[str]],
                       layers: Sequence[str | os.PathLike[str]], land_cover: xr.DataArray,
                       regions: xr.Dataset) -> xr.Dataset:
    """The monthly predictors on the model grid.

    Parameters
    ----------
    meteorology
        PSL files (see :func:`read_monthly_meteorology`).
    layers
        Static GeoTIFF layers (see :func:`read_static_layers`).
    land_cover
        IGBP classes on the model grid (lat, lon).
    regions
        Canonical regions dataset: the model grid, its land fraction and region ids.

    Returns
    -------
    xr.Dataset
        Canonical predictors (time, lat, lon): the meteorology, ``sw_in_pot`` [W m-2] (monthly
        mean top-of-atmosphere radiation, the only radiation available on both the grid and at
        the sites), every static layer repeated at each month, ``land_cover``,
        ``land_fraction`` and ``region``; the meteorology's ``climatology`` attributes.
    """
    met = read_monthly_meteorology(meteorology, regions)
    times = pd.DatetimeIndex(met["time"].values)
    out = met.copy()
    pot = sw_in_pot_monthly(regions["lat"].values, times)[:, :, None]
    out["sw_in_pot"] = (("time", "lat", "lon"), np.broadcast_to(
        pot, (times.size, regions.sizes["lat"], regions.sizes["lon"])).astype(np.float32),
        {**var_attrs("sw_in_pot"), "comment": "monthly mean of the daily top-of-atmosphere "
         "shortwave radiation, from latitude and day of year"})
    static = read_static_layers(layers, regions) if layers else xr.Dataset()
    for name in static.data_vars:
        out[name] = static[name].expand_dims(time=met["time"]).transpose("time", "lat", "lon")
    out["land_cover"] = land_cover
    out["land_fraction"] = regions["land_fraction"]
    out["region"] = regions["region"].assign_attrs(units="1")
    out.attrs = {**met.attrs, "source": " ".join(str(p) for p in [*meteorology, *layers])}
    return out
