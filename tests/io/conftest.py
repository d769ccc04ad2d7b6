"""Tiny files in the real formats, built in temporary directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

HH_COLUMNS = ("TA_F", "SW_IN_F", "VPD_F", "P_F", "NEE_VUT_REF", "NEE_VUT_REF_QC",
              "NEE_CUT_REF", "NEE_CUT_REF_QC")


def write_site_csv(path: Path, times: pd.DatetimeIndex, res: str,
                   columns: dict[str, np.ndarray]) -> Path:
    """A FLUXNET2015 FULLSET-like CSV (-9999 for NaN) at resolution ``res``."""
    fmt = {"HH": "%Y%m%d%H%M", "HR": "%Y%m%d%H%M", "DD": "%Y%m%d", "MM": "%Y%m", "YY": "%Y"}[res]
    frame = {}
    if res in ("HH", "HR"):
        step = pd.Timedelta(minutes=30 if res == "HH" else 60)
        frame["TIMESTAMP_START"] = times.strftime(fmt)
        frame["TIMESTAMP_END"] = (times + step).strftime(fmt)
    else:
        frame["TIMESTAMP"] = times.strftime(fmt)
    for name, values in columns.items():
        frame[name] = np.where(np.isnan(values), -9999, values)
    pd.DataFrame(frame).to_csv(path, index=False)
    return path


@pytest.fixture
def site_csv(tmp_path):
    """Factory: ``site_csv(res, n, **columns)`` writes FLX_XX-Tst_..._{res}_...csv."""

    def make(res: str = "DD", n: int = 10, start: str = "2005-01-01", name: str | None = None,
             **columns: np.ndarray) -> Path:
        freq = {"HH": "30min", "HR": "h", "DD": "D", "MM": "MS", "YY": "YS"}[res]
        times = pd.date_range(start, periods=n, freq=freq)
        if not columns:
            rng = np.random.default_rng(0)
            columns = {"TA_F": rng.normal(10, 3, n), "SW_IN_F": rng.uniform(0, 300, n),
                       "VPD_F": rng.uniform(0, 10, n), "P_F": rng.uniform(0, 2, n),
                       "NEE_VUT_REF": rng.normal(-1, 1, n), "NEE_VUT_REF_QC": np.ones(n)}
        y0, y1 = times[0].year, times[-1].year
        fname = name or f"FLX_XX-Tst_FLUXNET2015_FULLSET_{res}_{y0}-{y1}_1-4.csv"
        return write_site_csv(tmp_path / fname, times, res, columns)

    return make


def era5_dataset(times: pd.DatetimeIndex, t2m: float = 293.16, d2m: float = 283.16,
                 ssrd: float = 360_000.0, tp: float = 0.001) -> xr.Dataset:
    """New-CDS-layout ERA5 single levels on a 45° grid (latitude descending, lon 0..315)."""
    lat = np.array([67.5, 22.5, -22.5, -67.5])
    lon = np.arange(0.0, 360.0, 45.0)
    shape = (times.size, lat.size, lon.size)
    lon_signal = np.broadcast_to(lon[None, None, :] / 100.0, shape)

    def var(value, units, step):
        return (("valid_time", "latitude", "longitude"),
                (value + (lon_signal if units == "K" else np.zeros(shape))).astype("float32"),
                {"units": units, "GRIB_stepType": step})

    ds = xr.Dataset(
        {"t2m": var(t2m, "K", "instant"), "d2m": var(d2m, "K", "instant"),
         "ssrd": var(ssrd, "J m**-2", "accum"), "tp": var(tp, "m", "accum")},
        coords={"valid_time": times.values, "latitude": lat, "longitude": lon, "number": 0,
                "expver": ("valid_time", np.array(["0001"] * times.size))},
    )
    ds["valid_time"].encoding.update(units="seconds since 1970-01-01", dtype="int64")
    return ds


@pytest.fixture
def hourly_times() -> pd.DatetimeIndex:
    return pd.date_range("2010-01-01", periods=48, freq="h")


@pytest.fixture
def make_era5():
    """Factory of new-CDS-layout ERA5 datasets (see :func:`era5_dataset`)."""
    return era5_dataset
