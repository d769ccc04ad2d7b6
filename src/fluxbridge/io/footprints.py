"""Reader of STILT / STILT-R transport footprints (one receptor per NetCDF file).

Layout followed (STILT-R v2 ``r/src/write_footprint.r`` and ``docs/output-files.md`` of
github.com/uataq/stilt; docs/footprints.md): a file ``<simulation_id>_foot.nc`` holds
``foot(time, lat, lon)`` float32 in ``ppm (umol-1 m2 s)`` with ``_FillValue = -1``, ``lon`` and
``lat`` cell centres (degrees_east / degrees_north, ascending), ``time`` in ``seconds since
1970-01-01 00:00:00Z`` marking the beginning of each hour back from the receptor (the first hour
back is stamped one hour before the receptor time). The receptor is not stored in the file: it
is in the simulation id ``yyyymmddHHMM_long_lati_zagl`` (or ``yyyymmddHH_...``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import resolution_of, spatial_dim, to_canonical_grid

log = logging.getLogger(__name__)

FOOT_UNITS = "ppm (umol-1 m2 s)"
"""Units of a footprint: mole fraction [ppm] per surface flux [µmol m-2 s-1]."""

_UNIT_FORMS = {"ppm(umol-1m2s)", "ppm(µmol-1m2s)", "ppm/(umolm-2s-1)", "ppm/(µmolm-2s-1)",
               "ppmm2sumol-1", "ppmm2sµmol-1"}
_SIMULATION_ID = re.compile(
    r"(?P<time>\d{12}|\d{10})_(?P<a>-?\d+(?:\.\d+)?)_(?P<b>-?\d+(?:\.\d+)?)"
    r"_(?P<zagl>\d+(?:\.\d+)?)(?:_foot)?$")


@dataclass(frozen=True)
class Receptor:
    """Where and when the air of a footprint was sampled.

    Attributes
    ----------
    time
        Receptor (sampling) time, UTC without time zone.
    lat, lon
        Receptor position [degree]; longitude in [-180, 180).
    height
        Sampling height above ground [m].
    """

    time: pd.Timestamp
    lat: float
    lon: float
    height: float


def receptor_from_name(path: str | os.PathLike[str]) -> Receptor | None:
    """The receptor in a STILT simulation id file name, None if the name has none.

    The id is ``yyyymmddHHMM_<x>_<y>_zagl[_foot]``. STILT-R writes longitude then latitude
    (``2015061822_-111.980323_40.782561_5``) although its documentation names the fields
    ``lati_long``: a value outside [-90, 90] is taken as the longitude; otherwise the order is
    longitude, latitude. Pass ``receptor=`` to :func:`read_stilt_footprint` to overrule.
    """
    match = _SIMULATION_ID.search(Path(path).name.removesuffix(".nc"))
    if match is None:
        return None
    a, b = float(match["a"]), float(match["b"])
    lon, lat = (b, a) if abs(b) > 90 >= abs(a) else (a, b)
    fmt = "%Y%m%d%H%M" if len(match["time"]) == 12 else "%Y%m%d%H"
    return Receptor(pd.Timestamp(pd.to_datetime(match["time"], format=fmt)), lat,
                    float((lon + 180.0) % 360.0 - 180.0), float(match["zagl"]))


def read_stilt_footprint(path: str | os.PathLike[str], receptor: Receptor | None = None
                         ) -> xr.DataArray:
    """A STILT footprint file on the canonical grid convention.

    Parameters
    ----------
    path
        ``<simulation_id>_foot.nc`` in the STILT-R layout (module docstring).
    receptor
        The receptor; by default parsed from the simulation id in the file name.

    Returns
    -------
    xr.DataArray
        ``foot`` (time, lat, lon) float64 [ppm (umol-1 m2 s)]: time = beginning of each hour
        (UTC, increasing), lat descending, lon ascending in [-180, 180), fill (no influence) as
        0; scalar coordinates ``receptor_time``, ``receptor_lat``, ``receptor_lon``
        [degree] and ``receptor_height`` [m above ground].

    Raises
    ------
    InputError
        Missing ``foot``, units other than a footprint's, negative values, an irregular grid,
        times not hourly or not before the receptor, or no receptor in name or arguments.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("footprint file not found", path=path)
    receptor = receptor or receptor_from_name(path)
    if receptor is None:
        raise InputError("no receptor in the file name", path=path,
                         expected="a name <yyyymmddHHMM>_<long>_<lati>_<zagl>_foot.nc or "
                                  "receptor= given")
    with xr.open_dataset(path) as ds:
        if "foot" not in ds:
            raise InputError("no footprint variable", path=path, variable="foot",
                             expected=f"foot(time, lat, lon) in {FOOT_UNITS} (STILT-R layout); "
                                      f"found {sorted(ds.data_vars)}")
        foot = ds["foot"].load()
    _check_units(foot, path)
    foot = _on_canonical_grid(foot, path)
    values = np.nan_to_num(foot.values.astype(np.float64), nan=0.0)
    if np.any(values < 0):
        raise InputError(f"{int((values < 0).sum())} negative footprint values "
                         f"(minimum {values.min():.3g})", path=path, variable="foot",
                         expected="footprints >= 0 (fill -1 is read as no influence)")
    foot = foot.copy(data=values)
    _check_hours(foot, receptor, path)
    foot = foot.assign_coords(receptor_time=receptor.time, receptor_lat=receptor.lat,
                              receptor_lon=receptor.lon, receptor_height=receptor.height)
    foot.name = "foot"
    foot.attrs = {"units": FOOT_UNITS, "long_name": "STILT surface influence footprint",
                  "time_position": "beginning of hour", "source": str(path)}
    return foot


def _check_units(foot: xr.DataArray, path: Path) -> None:
    units = str(foot.attrs.get("units", ""))
    if units.replace(" ", "").lower() not in _UNIT_FORMS:
        raise InputError(f"units {units!r}", path=path, variable="foot",
                         expected=f"{FOOT_UNITS!r}, ppm per (umol m-2 s-1)")


def _on_canonical_grid(foot: xr.DataArray, path: Path) -> xr.DataArray:
    """``foot`` as (time, lat, lon), lat descending and lon in [-180, 180) ascending, after
    checking that the grid is regular (before the longitudes are wrapped)."""
    try:
        lat, lon = spatial_dim(foot, "lat"), spatial_dim(foot, "lon")
        resolution_of(foot[lat], "lat")
        resolution_of(foot[lon], "lon")
    except InputError as err:
        raise InputError(err.detail, path=path, variable=err.variable,
                         expected=err.expected or "a regular latitude-longitude grid") from None
    if "time" not in foot.dims:
        raise InputError(f"dimensions {foot.dims} have no time", path=path, variable="foot",
                         expected="hourly footprints (STILT time_integrate = FALSE)")
    foot = to_canonical_grid(foot, lat=lat, lon=lon)
    return foot.sortby("time").transpose("time", "lat", "lon")


def _check_hours(foot: xr.DataArray, receptor: Receptor, path: Path) -> None:
    """Times hourly, unique, and all before the receptor time."""
    times = pd.DatetimeIndex(foot["time"].values)
    steps = np.diff(times.values).astype("timedelta64[s]").astype(np.int64)
    if np.any(steps != 3600):
        raise InputError(f"time steps of {sorted(set(steps.tolist()))} s", path=path,
                         variable="time", expected="hourly footprints, 3600 s apart")
    if times.size and times.max() >= receptor.time:
        raise InputError(f"footprint hour {times.max()} is not before the receptor time "
                         f"{receptor.time}", path=path, variable="time",
                         expected="hours back in time from the receptor")
