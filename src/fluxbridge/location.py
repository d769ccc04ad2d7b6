"""Features of a location: each predictor's mean over the record and its mean seasonal cycle.

FLUXCOM gives its models, beside the predictors of the day, what distinguishes one place from
another: the mean of a predictor over the whole record (the site's climate) and its mean
seasonal cycle (where in its own climate a month lies). A feature named ``<var>_site_mean`` or
``<var>_msc`` is such a layer of the predictor ``<var>``:

* ``<var>_site_mean`` (lat, lon): the mean over every time of the predictors;
* ``<var>_msc`` (month, lat, lon): the mean of each calendar month over the years.

They are computed once from the gridded predictors (:func:`with_location_layers`), so a tower
takes the layers of its grid cell and the upscaling the same layers everywhere: training and
upscaling see one definition. The period is the predictors' own (stated in the attributes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import sw_in_pot_field

log = logging.getLogger(__name__)

SITE_MEAN = "_site_mean"
MSC = "_msc"


def location_source(name: str) -> tuple[str, str] | None:
    """``(predictor, kind)`` of a location feature (kind ``"site_mean"`` or ``"msc"``), None
    for any other name."""
    for suffix in (SITE_MEAN, MSC):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix[1:]
    return None


def at_times(layer: xr.DataArray, time: xr.DataArray | pd.DatetimeIndex) -> xr.DataArray:
    """A location layer (or any predictor) with ``time`` first, at the times ``time``.

    A layer on ``month`` (1..12) takes each time's calendar month; a static layer is repeated
    at every time; a predictor with ``time`` is returned as it is. Other dimensions (lat, lon,
    or the sites of a selection) follow in their order, lat before lon.
    """
    if "time" in layer.dims:
        return _time_first(layer)
    times = pd.DatetimeIndex(np.asarray(time))
    coord = xr.DataArray(times, dims="time", name="time")
    if "month" in layer.dims:
        month = xr.DataArray(times.month.to_numpy(), dims="time", coords={"time": coord})
        out = layer.sel(month=month).drop_vars("month")
    else:
        out = layer.expand_dims(time=coord)
    return _time_first(out)


def _time_first(da: xr.DataArray) -> xr.DataArray:
    if {"lat", "lon"} <= set(da.dims):
        return da.transpose("time", "lat", "lon", ...)
    return da.transpose("time", ...)


def _predictor(predictors: xr.Dataset, name: str) -> xr.DataArray:
    """A time-varying predictor (time, lat, lon); ``sw_in_pot`` computed where absent."""
    if name in predictors and "time" in predictors[name].dims:
        return predictors[name].transpose("time", "lat", "lon")
    if name == "sw_in_pot":
        return sw_in_pot_field(predictors)
    raise InputError("a location feature's predictor is missing or has no time dimension",
                     variable=name, expected="a predictor on (time, lat, lon)")


def location_layer(predictors: xr.Dataset, name: str) -> xr.DataArray:
    """The layer of one location feature, computed (into memory) from ``predictors``.

    Parameters
    ----------
    predictors
        Canonical predictors (time, lat, lon); may be lazy.
    name
        ``<var>_site_mean`` or ``<var>_msc`` of a time-varying predictor ``<var>``.

    Returns
    -------
    xr.DataArray
        float32 (lat, lon) or (month, lat, lon) in the predictor's units; NaN where the
        predictor has no value at any time (or in that month).
    """
    source = location_source(name)
    if source is None:
        raise ValueError(f"{name!r} is not a location feature")
    var, kind = source
    da = _predictor(predictors, var)
    time = pd.DatetimeIndex(predictors["time"].values)
    if kind == "site_mean":
        layer = da.mean("time")
        method = "time: mean"
    else:
        layer = da.groupby(xr.DataArray(time.month.to_numpy(), dims="time", name="month",
                                        coords={"time": da["time"]})).mean("time")
        method = "time: mean within years time: mean over years"
    units = da.attrs.get("units", "")
    what = "mean over the record" if kind == "site_mean" else "mean seasonal cycle"
    return layer.astype(np.float32).compute().assign_attrs(
        units=units, cell_methods=method, long_name=f"{var} {what}",
        period=f"{time[0]:%Y-%m-%d}/{time[-1]:%Y-%m-%d}" if time.size else "")


def with_location_layers(predictors: xr.Dataset, features: Sequence[str]) -> xr.Dataset:
    """``predictors`` with the layer of every location feature among ``features`` added (a
    layer it already holds is kept)."""
    names = [f for f in features if location_source(f) is not None and f not in predictors]
    if not names:
        return predictors
    layers = {name: location_layer(predictors, name) for name in names}
    log.info("location features computed from the predictors: %s", ", ".join(names))
    return predictors.assign(layers)
