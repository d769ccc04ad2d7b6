"""The canonical datasets that flow between the package's layers, and their checks.

* **sites** — dims ``(site, time)``; data ``nee`` [g m-2 d-1] (carbon, positive = source),
  ``nee_weight`` [1] (0..1 QC weight, NaN where ``nee`` is NaN) and site meteorology in canonical
  names (``ta`` [degC], ``sw_in`` [W m-2], ``sw_in_pot`` [W m-2], ``vpd`` [hPa], ``precip``
  [mm d-1], optionally ``gpp``, ``reco``); coordinates ``site`` (str id), ``lat`` (site), ``lon``
  (site, -180..180), ``igbp`` (site, str class), ``time`` (period start, datetime64).
  Attribute ``time_step`` in {"HH", "HR", "DD", "WW", "MM", "YY", "8D"}.
* **predictors** — dims ``(time, lat, lon)`` on the canonical grid (lat descending, lon
  ascending in [-180, 180)); canonical names (``ta``, ``vpd``, ``sw_in``, ``precip``, ``ndvi``,
  ``evi``, ``nirv``, ``lst_day``, ``lst_night``, ...), plus static ``land_cover`` (lat, lon,
  IGBP code 0..16) when available.
* **regions** — see :mod:`fluxbridge.regions`: ``region`` (lat, lon) int with CF flags,
  ``cell_area`` [m2], ``land_fraction`` [1].
* **targets** — dims ``(member, region, time)`` monthly (time = month start): ``nbe`` [Tg month-1]
  of carbon per member as read; ``correction`` (region, time) [Tg month-1] summing the terms
  removed; ``nee`` = nbe − correction per member; ``nee_mean`` and ``nee_spread`` (region, time)
  [Tg month-1]. Coordinate ``region`` holds integer ids, ``region_name`` their names. Attribute
  ``corrections`` (JSON) lists every correction applied with its sign.

Every data variable carries ``units`` and ``long_name``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError

SITE_TIME_STEPS = ("HH", "HR", "DD", "WW", "MM", "YY", "8D")


def _require(ds: xr.Dataset, names: Iterable[str], kind: str, where: str | None) -> None:
    for name in names:
        if name not in ds.variables:
            raise InputError(f"{kind} dataset lacks {name!r}", path=where, variable=name,
                             expected=f"the canonical {kind} dataset (see fluxbridge.schema)")


def _require_units(ds: xr.Dataset, names: Iterable[str], where: str | None) -> None:
    for name in names:
        if name in ds and "units" not in ds[name].attrs:
            raise InputError("no units attribute", path=where, variable=name,
                             expected="a 'units' attribute")


def check_sites(ds: xr.Dataset, where: str | None = None) -> xr.Dataset:
    """Validate a canonical sites dataset; return it unchanged."""
    _require(ds, ["nee", "nee_weight", "lat", "lon", "igbp", "time", "site"], "sites", where)
    if ds["nee"].dims != ("site", "time"):
        raise InputError(f"nee has dims {ds['nee'].dims}", path=where, variable="nee",
                         expected="('site', 'time')")
    _require_units(ds, ds.data_vars, where)
    lat, lon = ds["lat"].values, ds["lon"].values
    if np.any(np.abs(lat) > 90) or np.any((lon < -180) | (lon > 180)):
        raise InputError("site coordinates out of range", path=where, variable="lat/lon",
                         expected="lat in [-90, 90], lon in [-180, 180]")
    return ds


def check_regions(ds: xr.Dataset, where: str | None = None) -> xr.Dataset:
    """Validate a canonical regions dataset; return it unchanged."""
    _require(ds, ["region", "cell_area", "land_fraction"], "regions", where)
    for key in ("flag_values", "flag_meanings"):
        if key not in ds["region"].attrs:
            raise InputError(f"region mask lacks the {key} attribute", path=where,
                             variable="region", expected="CF flag_values and flag_meanings")
    lat = ds["lat"].values
    if lat.size > 1 and not np.all(np.diff(lat) < 0):
        raise InputError("latitude is not descending", path=where, variable="lat",
                         expected="the canonical grid (see fluxbridge.grid)")
    return ds


def check_predictors(ds: xr.Dataset, regions: xr.Dataset | None = None,
                     where: str | None = None) -> xr.Dataset:
    """Validate a canonical predictors dataset (and its grid against ``regions``)."""
    for dim in ("time", "lat", "lon"):
        if dim not in ds.dims:
            raise InputError(f"predictors lack dimension {dim!r}", path=where, variable=dim,
                             expected="dims (time, lat, lon)")
    _require_units(ds, ds.data_vars, where)
    if regions is not None:
        for name in ("lat", "lon"):
            a, b = ds[name].values, regions[name].values
            if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
                raise GridMismatchError("predictor grid differs from the region grid",
                                        path=where, variable=name, expected="the model grid")
    return ds


def check_targets(ds: xr.Dataset, where: str | None = None) -> xr.Dataset:
    """Validate a canonical targets dataset; return it unchanged."""
    _require(ds, ["nbe", "nee", "nee_mean", "nee_spread", "correction"], "targets", where)
    if ds["nee"].dims != ("member", "region", "time"):
        raise InputError(f"nee has dims {ds['nee'].dims}", path=where, variable="nee",
                         expected="('member', 'region', 'time')")
    _require_units(ds, ds.data_vars, where)
    return ds


def check_time_axis(ds: xr.Dataset, where: str | None, variable: str = "time",
                    dims: str = "a 'time' dimension", units: str = "days since 2000-01-01"
                    ) -> None:
    """Raise unless ``ds`` has a ``time`` dimension decoded to dates.

    Parameters
    ----------
    ds
        A dataset as read from a file.
    where
        The file, for the message.
    variable
        The name(s) the time dimension may have in the file, for the message.
    dims
        What was expected when the time dimension is missing.
    units
        An example of the CF time units expected when the times are not dates.
    """
    if "time" not in ds.dims:
        raise InputError("no time dimension", path=where, variable=variable, expected=dims)
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputError("time axis is not decodable to dates", path=where, variable="time",
                         expected=f"units like {units!r} and a standard calendar")
