"""The days a time step stands for: daily and monthly records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fluxbridge.errors import InputError
from fluxbridge.timesteps import step_days


def test_daily_steps_are_one_day():
    np.testing.assert_array_equal(step_days(pd.date_range("2004-02-27", periods=5)), 1.0)


def test_monthly_steps_are_the_days_of_their_month():
    months = pd.date_range("2004-01-01", periods=4, freq="MS")  # a leap February
    np.testing.assert_array_equal(step_days(months), [31, 29, 31, 30])
    mid = pd.DatetimeIndex(["2003-01-16", "2003-02-15", "2003-03-16"])  # mid-month stamps
    np.testing.assert_array_equal(step_days(mid), [31, 28, 31])


def test_a_single_time_is_a_day_and_other_steps_are_refused():
    np.testing.assert_array_equal(step_days(pd.DatetimeIndex(["2004-02-01"])), [1.0])
    assert step_days(pd.DatetimeIndex([])).shape == (0,)
    with pytest.raises(InputError, match="neither daily nor monthly"):
        step_days(pd.date_range("2004-01-01", periods=4, freq="7D"))
