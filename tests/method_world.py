"""A tiny synthetic world for the method's tests: known true NEE with a hidden regional offset.

True NEE = linear function of three features + an offset per region that no feature carries and
that the site samples do not see (towers stand in undisturbed stands). The inversion targets are
the exact regional totals of the true field, with a spread of 5 % of |total| + 1 Tg.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.grid_features import GridFeatures
from fluxbridge.operators import RegionalOperator
from fluxbridge.regions import builtin_regions

FEATURES = ("ta", "sw_in", "ndvi")
COEF = np.array([-0.15, -0.004, -2.0])  # g m-2 d-1 per feature unit
INTERCEPT = 2.5
OFFSET_SCALE = 1.0  # g m-2 d-1


@dataclass
class World:
    regions: xr.Dataset
    grid: GridFeatures
    truth: np.ndarray  # (n_time, n_cell) g m-2 d-1
    offset: np.ndarray  # (n_cell,) hidden offset
    samples: pd.DataFrame
    targets: xr.Dataset
    operator: RegionalOperator


@lru_cache(maxsize=1)
def _regions(resolution: float) -> xr.Dataset:
    return builtin_regions("transcom_like", resolution)


def make_world(resolution: float = 10.0, n_sites: int = 30, seed: int = 0,
               year: int = 2001) -> World:
    """Build the world (about a second at 10 degrees)."""
    rng = np.random.default_rng(seed)
    regions = _regions(resolution)
    region = regions["region"].values
    frac = regions["land_fraction"].values
    ilat, ilon = np.nonzero((region > 0) & (frac > 0))
    lat = regions["lat"].values[ilat]
    times = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    doy = times.day_of_year.to_numpy()[:, None]
    season = np.cos(2 * np.pi * (doy - 200) / 365.0) * np.sign(lat)[None, :]
    ta = 25 - 0.4 * np.abs(lat)[None, :] + 10 * season + rng.normal(0, 2, (times.size, lat.size))
    sw = 200 + 100 * season - 1.5 * np.abs(lat)[None, :] + rng.normal(0, 20, ta.shape)
    ndvi = np.clip(0.5 + 0.2 * season + rng.normal(0, 0.05, ta.shape), 0, 1)
    values = np.stack([ta, sw, ndvi], axis=-1).astype(np.float32)
    cell_region = region[ilat, ilon].astype(np.int64)
    igbp = cell_region.copy()  # one vegetation class per region (codes 1..11)
    region_offset = rng.normal(0, OFFSET_SCALE, cell_region.max() + 1)
    offset = region_offset[cell_region]
    base = values.astype(np.float64) @ COEF + INTERCEPT
    truth = base + offset[None, :]
    n_lon = regions.sizes["lon"]
    grid = GridFeatures(
        values=values, igbp_code=igbp, lat_index=ilat.astype(np.int64),
        lon_index=ilon.astype(np.int64), cell_ids=(ilat * n_lon + ilon).astype(np.int64),
        times=times, feature_names=list(FEATURES), region=cell_region,
        cell_area=regions["cell_area"].values[ilat, ilon],
        land_fraction=frac[ilat, ilon], n_lat=regions.sizes["lat"], n_lon=n_lon,
    )
    site_cells = rng.choice(lat.size, size=n_sites, replace=False)
    rows = []
    for i, c in enumerate(site_cells):
        noise = rng.normal(0, 0.3, times.size)
        rows.append(pd.DataFrame({
            "site": f"S{i:02d}", "time": times, "igbp": "ENF", "igbp_code": igbp[c],
            "lat": lat[c], "lon": regions["lon"].values[ilon[c]],
            **{f: values[:, c, j] for j, f in enumerate(FEATURES)},
            "nee": base[:, c] + noise, "weight": rng.uniform(0.5, 1.0, times.size),
        }))
    samples = pd.concat(rows, ignore_index=True)
    operator = RegionalOperator(regions, times, ilat, ilon)
    totals = operator.to_dataarray(operator.exact(truth))
    spread = 0.05 * np.abs(totals) + 1.0
    targets = xr.Dataset({
        "nee_mean": totals.assign_attrs(units="Tg month-1", long_name="ensemble mean"),
        "nee_spread": spread.assign_attrs(units="Tg month-1", long_name="ensemble spread"),
    })
    return World(regions, grid, truth, offset, samples, targets, operator)


def model_targets(trainer: Any, withheld: int) -> xr.Dataset:
    """Targets equal to the trainer's model's exact totals (grid offsets included), with the
    trainer's σ as spread and region ``withheld`` without targets."""
    op = trainer.regional.operator
    exact = op.exact(trainer.net.predict_grid())
    mean = np.where(op.obs_index["region"].to_numpy() == withheld, np.nan, exact)
    spread = np.full(op.n_obs, np.nan)
    spread[trainer.regional.obs_ids] = trainer.regional.sigma
    targets = op.to_dataarray(mean).to_dataset(name="nee_mean")
    targets["nee_spread"] = op.to_dataarray(spread)
    return targets
