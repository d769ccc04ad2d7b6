"""Small tables for the evaluation tests: regional series, inversion targets, site predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

TIMES = pd.date_range("2001-01-01", periods=24, freq="MS")
REGIONS = ["North", "Tropical", "South"]


def regional_series(scale: float) -> pd.DataFrame:
    """``region, time, nee_tgc``: a seasonal cycle of amplitude ``scale × (k + 1)`` in region k."""
    return pd.concat([pd.DataFrame({
        "region": r, "time": TIMES.strftime("%Y-%m"),
        "nee_tgc": scale * (k + 1) * np.cos(2 * np.pi * TIMES.month / 12)})
        for k, r in enumerate(REGIONS)], ignore_index=True)


def inversion_targets() -> xr.Dataset:
    """Four random members on the three regions, with their mean and spread."""
    rng = np.random.default_rng(0)
    members = rng.normal(0, 5, (4, 3, TIMES.size)) + np.cos(2 * np.pi * TIMES.month / 12).values
    da = xr.DataArray(members, dims=("member", "region", "time"),
                      coords={"member": list("abcd"), "region": [1, 2, 3],
                              "region_name": ("region", REGIONS), "time": TIMES})
    return xr.Dataset({"nee": da, "nee_mean": da.mean("member"), "nee_spread": da.std("member")})


def site_predictions() -> pd.DataFrame:
    """Four sites: ``nn`` is the observation plus noise, ``rf`` half the observation."""
    rng = np.random.default_rng(2)
    rows = []
    for i in range(4):
        obs = rng.normal(i, 1, TIMES.size) + np.sin(TIMES.month.values)
        rows.append(pd.DataFrame({"site": f"S{i}", "time": TIMES.strftime("%Y-%m"), "fold": i,
                                  "igbp": "ENF", "observed": obs, "weight": 1.0,
                                  "nn": obs + rng.normal(0, 0.3, obs.size), "rf": obs * 0.5}))
    return pd.concat(rows, ignore_index=True)
