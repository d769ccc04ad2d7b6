"""How many days each time step of a flux or predictor record stands for.

Records are daily (one value a day) or monthly (monthly means, time = month start): a flux
density [g m-2 d-1] times the days of its step is the carbon of that step per square metre.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError


def step_days(time: xr.DataArray | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Days each time step stands for: 1 for daily records, the days of the month for
    monthly ones.

    The kind of record is told by the median spacing of the times: under 1.5 days is daily,
    27 to 32 days monthly. A single time counts as one day.

    Parameters
    ----------
    time
        Increasing times of the record.

    Returns
    -------
    np.ndarray
        float64 (n_time,) [d].
    """
    t = pd.DatetimeIndex(np.asarray(time))
    if t.size < 2:
        return np.ones(t.size)
    spacing = np.diff(t.values).astype("timedelta64[s]").astype(float)
    step = float(np.median(spacing) / 86_400.0)
    if step < 1.5:
        return np.ones(t.size)
    if 27 <= step <= 32:
        return t.days_in_month.to_numpy(dtype=float)
    raise InputError(f"time step of {step:.1f} days is neither daily nor monthly",
                     variable="time", expected="daily or monthly times")
