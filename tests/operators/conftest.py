"""Fixtures of the operator tests: a 10-degree region set, a daily year, its operator and a
known field on the operator's cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.operators.operator import RegionalOperator
from fluxbridge.regions import builtin_regions


@pytest.fixture(scope="module")
def regions() -> xr.Dataset:
    return builtin_regions("transcom_like", 10.0)


@pytest.fixture(scope="module")
def times() -> pd.DatetimeIndex:
    return pd.date_range("2001-01-01", "2001-12-31", freq="D")


@pytest.fixture(scope="module")
def op(regions, times) -> RegionalOperator:
    return RegionalOperator(regions, times)


@pytest.fixture(scope="module")
def field(op) -> np.ndarray:
    rng = np.random.default_rng(1)
    seasonal = np.sin(np.arange(op.n_time) / 58.0)[:, None]
    return 1.0 + seasonal * rng.normal(1, 0.5, op.n_cell)[None, :] + rng.normal(
        0, 0.7, (op.n_time, op.n_cell))


@pytest.fixture(scope="module")
def strata(op) -> np.ndarray:
    return np.random.default_rng(2).integers(1, 5, op.n_cell)
