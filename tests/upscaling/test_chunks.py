"""Chunks of the grid: the plan covers every cell once in whole months; the chunk function's
totals are flux × area × days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.operators.operator import region_weights
from fluxbridge.regions import builtin_regions
from fluxbridge.upscaling.chunks import plan_chunks, predict_chunk


def test_plan_chunks_cover_every_cell_once_in_whole_months():
    time = pd.date_range("2020-01-15", "2020-07-02", freq="D")
    chunks = plan_chunks(time, n_lat=9, n_lon=18, time_chunk=62, max_chunk_cells=31 * 18 * 4)
    seen = np.zeros((time.size, 9), dtype=int)
    for c in chunks:
        seen[c.time, c.lat] += 1
        assert (c.time.stop - c.time.start) * (c.lat.stop - c.lat.start) * 18 <= 62 * 18 * 4
    assert np.all(seen == 1)
    starts = {c.time.start for c in chunks} - {0}
    assert all(time[s].day == 1 for s in starts)  # blocks begin at month starts
    one_month = plan_chunks(time, 9, 18, time_chunk=5, max_chunk_cells=10**9)
    assert len(one_month) == len(pd.unique(time.to_period("M")))


def test_plan_chunks_keep_whole_globe_when_a_month_fits():
    time = pd.date_range("2021-01-01", "2021-12-31", freq="D")
    chunks = plan_chunks(time, n_lat=9, n_lon=18, time_chunk=92, max_chunk_cells=62 * 9 * 18)
    assert all(c.lat == slice(0, 9) for c in chunks)  # no latitude bands: each day read once
    assert max(c.time.stop - c.time.start for c in chunks) <= 62
    assert len(chunks) == 6  # two months per block
    banded = plan_chunks(time, n_lat=9, n_lon=18, time_chunk=92, max_chunk_cells=31 * 18 * 4)
    heights = {c.lat.stop - c.lat.start for c in banded}
    assert heights == {3}  # a month too large for one chunk: bands of equal height


class _Constant:
    """NEE = c on land; one call per prediction."""

    name = "constant"
    feature_names = ("ta",)

    def __init__(self, c: float) -> None:
        self.c = c

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        return np.full(X.shape[0], self.c, dtype=np.float32)


def _block(regions: xr.Dataset, times: pd.DatetimeIndex) -> xr.Dataset:
    shape = (times.size, regions.sizes["lat"], regions.sizes["lon"])
    ds = xr.Dataset({"ta": (("time", "lat", "lon"), np.zeros(shape, dtype=np.float32))},
                    coords={"time": times, "lat": regions["lat"], "lon": regions["lon"]})
    ds["land_cover"] = (("lat", "lon"), np.where(regions["land_fraction"] > 0, 10, 0))
    return ds


def test_chunk_totals_are_flux_times_land_area_times_days():
    regions = builtin_regions("transcom_like", 20.0)
    times = pd.date_range("2021-02-01", "2021-03-31", freq="D")
    land_area = (regions["cell_area"] * regions["land_fraction"]).fillna(0.0)
    out = predict_chunk([_Constant(2.0), _Constant(4.0)], _block(regions, times),
                        region_weights(regions), land_area, np.ones(times.size))
    area = region_weights(regions).sum(("lat", "lon")).values  # [m2] of land per region
    days = np.array([28, 31])
    for k, c in enumerate((2.0, 4.0)):
        np.testing.assert_allclose(out["regional_tgc"].values[k],
                                   c * area[:, None] * days[None, :] / 1e12, rtol=1e-9)
        np.testing.assert_allclose(out["global_tgc"].values[k],
                                   c * float(land_area.sum()) * days / 1e12, rtol=1e-9)
    land = regions["land_fraction"].values > 0
    np.testing.assert_allclose(out["nee"].values[:, land], 3.0)
    np.testing.assert_allclose(out["nee_monthly_spread"].values[:, land], np.sqrt(2.0))
    assert np.isnan(out["nee_monthly"].values[:, ~land]).all()


def test_monthly_record_in_one_month_chunks_counts_each_month_s_days():
    """A chunk of one monthly time takes the days the whole record gives it."""
    regions = builtin_regions("transcom_like", 20.0)
    times = pd.date_range("2021-02-01", periods=1, freq="MS")
    land_area = (regions["cell_area"] * regions["land_fraction"]).fillna(0.0)
    out = predict_chunk([_Constant(1.0)], _block(regions, times), region_weights(regions),
                        land_area, np.array([28.0]))
    np.testing.assert_allclose(out["global_tgc"].values[0],
                               [float(land_area.sum()) * 28 / 1e12], rtol=1e-9)
