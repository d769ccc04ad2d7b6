"""Footprint rows of H: known answers (constant flux, daily steps, nesting, land fraction) and
the importance-sampling estimator (unbiased, variance σ²/K)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from tower_files import write_stilt_foot

from fluxbridge.errors import InputError
from fluxbridge.grid import make_grid
from fluxbridge.io.footprints import read_stilt_footprint
from fluxbridge.operators.estimators import make_estimator
from fluxbridge.operators.footprint import UMOL_M2_S_PER_GC_M2_D, FootprintOperator

GRID = make_grid(2.0)  # lat 89, 87, ... ; lon -179, -177, ...
LAT_IDX, LON_IDX = (a.ravel() for a in np.meshgrid(np.arange(20, 24), np.arange(40, 45),
                                                   indexing="ij"))  # 20 land cells
TIMES = pd.date_range("2020-06-25", "2020-07-05", freq="D")
FOOT_LAT = np.arange(42.5, 50.0, 1.0)  # 1-degree cells nested in the 2-degree ones
FOOT_LON = np.arange(-99.5, -88.0, 1.0)
RECEPTORS = ("2020-07-01 18:00", "2020-07-02 12:00", "2020-07-04 20:00")


def _foot_values(seed: int, n_hours: int = 72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(n_hours) / 24.0)[:, None, None]
    return decay * rng.gamma(0.5, 1e-3, (n_hours, FOOT_LAT.size, FOOT_LON.size))


@pytest.fixture(scope="module")
def footprints(tmp_path_factory) -> list[xr.DataArray]:
    """Footprints read from STILT-layout files, one per receptor."""
    folder = tmp_path_factory.mktemp("foot")
    out = []
    for k, when in enumerate(RECEPTORS):
        stamp = pd.Timestamp(when).strftime("%Y%m%d%H%M")
        path = write_stilt_foot(folder / f"{stamp}_-95.0_46.0_300_foot.nc", _foot_values(k),
                                FOOT_LAT, FOOT_LON, when)
        out.append(read_stilt_footprint(path))
    return out


def _operator(footprints, land_fraction=None) -> FootprintOperator:
    return FootprintOperator(footprints, TIMES, GRID["lat"].values, GRID["lon"].values,
                             LAT_IDX, LON_IDX, land_fraction)


@pytest.fixture(scope="module")
def op(footprints) -> FootprintOperator:
    return _operator(footprints)


def _on_land(foot: xr.DataArray) -> xr.DataArray:
    """The part of a footprint inside the 20 land cells (lat 40..48, lon -100..-90)."""
    lat, lon = GRID["lat"].values[LAT_IDX], GRID["lon"].values[LON_IDX]
    return foot.where((foot.lat > lat.min() - 1) & (foot.lat < lat.max() + 1)
                      & (foot.lon > lon.min() - 1) & (foot.lon < lon.max() + 1), 0.0)


def test_conversion_is_stated_once():
    np.testing.assert_allclose(UMOL_M2_S_PER_GC_M2_D, 1e6 / 12.0107 / 86_400, rtol=1e-12)
    np.testing.assert_allclose(UMOL_M2_S_PER_GC_M2_D, 1e6 / 12.011 / 86_400, rtol=1e-4)


def test_constant_flux_gives_footprint_integral_times_flux(op, footprints):
    c = -2.5  # gC m-2 d-1
    dc = op.exact(np.full((op.n_time, op.n_cell), c))
    expected = [c * float(_on_land(f).sum()) * UMOL_M2_S_PER_GC_M2_D for f in footprints]
    np.testing.assert_allclose(dc, expected, rtol=1e-10)
    assert np.all(dc < 0)  # uptake lowers the mole fraction
    # the footprint reaches beyond the land cells: recorded, not silently dropped
    share = [float(_on_land(f).sum() / f.sum()) for f in footprints]
    np.testing.assert_allclose(op.obs_index["land_share"], share, rtol=1e-10)
    assert (op.obs_index["land_share"] < 1).all()


def test_daily_flux_is_uniform_over_the_hours_of_its_day(op, footprints):
    per_day = np.arange(op.n_time, dtype=float)  # flux = day number, the same in every cell
    dc = op.exact(np.repeat(per_day[:, None], op.n_cell, axis=1))
    for i, foot in enumerate(footprints):
        hourly = _on_land(foot).sum(("lat", "lon"))
        day = pd.DatetimeIndex(foot["time"].values).normalize()
        expected = float((hourly.values * per_day[TIMES.get_indexer(day)]).sum())
        np.testing.assert_allclose(dc[i], expected * UMOL_M2_S_PER_GC_M2_D, rtol=1e-10)


def test_land_fraction_scales_each_cell(op, footprints):
    lf = np.linspace(0.1, 1.0, op.n_cell)
    field = np.random.default_rng(4).normal(0, 1, (op.n_time, op.n_cell))
    np.testing.assert_allclose(_operator(footprints, lf).exact(field), op.exact(field * lf),
                               rtol=1e-10)


def test_nested_cells_add_up_to_the_coarse_footprint(op, footprints):
    coarse = [f.coarsen(lat=2, lon=2).sum().assign_attrs(f.attrs) for f in footprints]
    field = np.random.default_rng(5).normal(0, 1, (op.n_time, op.n_cell))
    np.testing.assert_allclose(_operator(coarse).exact(field), op.exact(field), rtol=1e-10)


def test_straddling_footprint_cells_raise(footprints):
    shifted = [footprints[0].assign_coords(lat=footprints[0]["lat"] + 0.5)]
    with pytest.raises(InputError, match="straddle"):
        _operator(shifted)


def test_receptors_reaching_outside_the_record_are_skipped(footprints):
    early = footprints[0].assign_coords(time=footprints[0]["time"] - np.timedelta64(5, "D"))
    op = _operator([early, footprints[1]])
    assert op.n_obs == 1
    assert op.obs_index["receptor_time"].iloc[0] == pd.Timestamp(RECEPTORS[1])
    with pytest.raises(InputError, match="no footprint lies within"):
        _operator([early])


def test_importance_sampling_is_exact_for_a_constant_flux(op):
    est = make_estimator("resampled", op, K=4, sampling="area")
    sample = est.draw(np.arange(op.n_obs), np.random.default_rng(0))
    field = np.full((op.n_time, op.n_cell), 1.7)
    got = est.estimate(torch.as_tensor(field.ravel()[sample.col]), sample).numpy()[0]
    np.testing.assert_allclose(got, op.exact(field), rtol=1e-10)


def _single_draw_variance(op: FootprintOperator, field: np.ndarray) -> np.ndarray:
    """Variance of one draw with probability ∝ H_ij: Σ p (H f / p)² − (H f)²."""
    out = []
    for i in range(op.n_obs):
        row = op.matrix.getrow(i)
        p = row.data / row.data.sum()
        terms = row.data * field.ravel()[row.indices] / p
        out.append(float(np.sum(p * terms**2) - np.sum(row.data * field.ravel()[row.indices])
                         ** 2))
    return np.array(out)


@pytest.mark.parametrize("K", [4, 16, 64])
def test_importance_sampling_unbiased_with_variance_over_k(op, K):
    field = np.random.default_rng(6).normal(-1.0, 2.0, (op.n_time, op.n_cell))
    est = make_estimator("resampled", op, K=K, sampling="area")
    rng = np.random.default_rng(K)
    n_draws = 600
    draws = np.empty((n_draws, op.n_obs))
    for d in range(n_draws):
        sample = est.draw(np.arange(op.n_obs), rng)
        draws[d] = est.estimate_with_variance(field.ravel()[sample.col], sample)[0][0]
    exact = op.exact(field)
    z = (draws.mean(axis=0) - exact) / (draws.std(axis=0, ddof=1) / np.sqrt(n_draws))
    assert np.all(np.abs(z) < 4), z
    ratio = draws.var(axis=0, ddof=1) / (_single_draw_variance(op, field) / K)
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
