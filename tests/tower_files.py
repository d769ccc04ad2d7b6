"""Tiny files in the STILT-R footprint and NOAA ObsPack layouts (docs/footprints.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

EPOCH = pd.Timestamp("1970-01-01")


def write_stilt_foot(path: Path, foot: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                     receptor_time: str, units: str = "ppm (umol-1 m2 s)",
                     name: str = "foot") -> Path:
    """``foot`` (hours back, lat, lon) as STILT-R writes it: lat and lon ascending, time the
    beginning of each hour back from the receptor (most recent first), fill -1."""
    n_hours = foot.shape[0]
    hours = pd.Timestamp(receptor_time) - pd.to_timedelta(np.arange(1, n_hours + 1), "h")
    seconds = ((hours - EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), np.where(np.isnan(foot), -1.0, foot).astype("f4"),
                {"units": units, "standard_name": "footprint",
                 "long_name": "stilt surface influence footprint"})},
        coords={
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "time": ("time", seconds, {"units": "seconds since 1970-01-01 00:00:00Z",
                                       "standard_name": "time", "calendar": "standard"}),
        },
        attrs={"crs": "+proj=longlat", "crs_format": "PROJ.4",
               "documentation": "github.com/uataq/stilt", "title": "STILT Footprint"},
    )
    ds[name].encoding["_FillValue"] = np.float32(-1.0)
    ds.to_netcdf(path)
    return path


def write_obspack(path: Path, times: pd.DatetimeIndex, value: np.ndarray, *,
                  qc_flag: list[str] | None = None, lon: float = -90.27,
                  units: str = "mol mol-1", drop: tuple[str, ...] = ()) -> Path:
    """An ObsPack tower file (one site, one intake): ``value`` in ``units``, fill -999.999."""
    n = times.size
    qc_flag = qc_flag or ["..."] * n
    ids = [f"obspack_co2_1_test_v1.0~co2_tst_tower-insitu_1_allvalid-396magl~{i}"
           for i in range(n)]
    ds = xr.Dataset(
        {
            "time": ("obs", ((times - EPOCH) / pd.Timedelta(seconds=1)).to_numpy(np.int64),
                     {"units": "seconds since 1970-01-01T00:00:00Z"}),
            "value": ("obs", np.where(np.isnan(value), -999.999, value),
                      {"units": units, "_FillValue": -999.999,
                       "long_name": "measured_mole_fraction_of_trace_gas_in_dry_air"}),
            "value_unc": ("obs", np.full(n, 0.2e-6), {"units": "mol mol-1"}),
            "latitude": ("obs", np.full(n, 45.95), {"units": "degrees_north"}),
            "longitude": ("obs", np.full(n, lon), {"units": "degrees_east"}),
            "altitude": ("obs", np.full(n, 868.0), {"units": "m"}),
            "intake_height": ("obs", np.full(n, 396.0), {"units": "m"}),
            "qc_flag": ("obs", np.array(qc_flag, dtype="S3")),
            "obs_flag": ("obs", np.ones(n, dtype=np.int32)),
            "obspack_id": ("obs", np.array(ids, dtype="S200")),
        },
        attrs={"site_code": "TST", "dataset_parameter": "co2", "site_utc2lst": -6.0},
    )
    ds = ds.drop_vars(list(drop))
    encoding = {v: {"dtype": "S1"} for v in ("qc_flag", "obspack_id") if v in ds}
    ds.to_netcdf(path, encoding=encoding)
    return path
