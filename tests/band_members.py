"""Latitude-band inversion members with known values, for the climatology and budget tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def band_member(name: str, start: str, n_months: int, offset: float) -> xr.DataArray:
    """NBE = month of year + year + offset [Tg month-1] in each of the three bands."""
    time = pd.date_range(start, periods=n_months, freq="MS")
    values = (time.month + time.year + offset).to_numpy(float)
    return xr.DataArray(np.tile(values, (3, 1)), dims=("region", "time"),
                        coords={"region": [1, 2, 3], "time": time,
                                "region_name": ("region", ["North", "Tropical", "South"])},
                        attrs={"member": name, "units": "Tg month-1"})
