"""The footprint term in training: it corrects the regions its towers see, λ_f = 0 changes
nothing, each receptor's σ, and the offsets' joint fit with the regional term."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from method_world import World
from tower_files import write_stilt_foot

from fluxbridge.io.footprints import read_stilt_footprint
from fluxbridge.io.towers import TowerObservations
from fluxbridge.operators import FootprintOperator
from fluxbridge.studies.grid_totals import grid_field
from fluxbridge.training import Trainer, TrainingInterrupted, train_network
from fluxbridge.training.footprint import receptor_sigma

SEEN = (35.0, 65.0, -10.0, 40.0)  # lat and lon bounds [degree] the footprints cover


@pytest.fixture(scope="module")
def towers(world: World, tmp_path_factory) -> TowerObservations:
    """Receptors every 4 days whose 24-hour footprints cover a European block of cells
    uniformly, their enhancements the true field's (noise-free)."""
    folder = tmp_path_factory.mktemp("feet")
    lat = np.sort(world.regions["lat"].values)
    lon = world.regions["lon"].values
    lat = lat[(lat > SEEN[0]) & (lat < SEEN[1])]
    lon = lon[(lon > SEEN[2]) & (lon < SEEN[3])]
    times = pd.date_range("2001-01-03 12:00", "2001-12-30", freq="4D")
    paths = []
    for t in times:
        name = f"{t:%Y%m%d%H%M}_5.0_50.0_300_foot.nc"
        paths.append(write_stilt_foot(folder / name, np.full((24, lat.size, lon.size), 0.01),
                                      lat, lon, str(t)))
    grid = world.grid
    op = FootprintOperator((read_stilt_footprint(p) for p in paths), grid.times,
                           world.regions["lat"].values, world.regions["lon"].values,
                           grid.lat_index, grid.lon_index, grid.land_fraction)
    table = pd.DataFrame({"site": "TST", "time": times, "co2_unc": 0.2,
                          "enhancement_ppm": op.exact(world.truth)})
    return TowerObservations(paths, table)


def _seen_regions(world: World) -> np.ndarray:
    lat = world.regions["lat"].values[world.grid.lat_index]
    lon = world.regions["lon"].values[world.grid.lon_index]
    inside = (lat > SEEN[0]) & (lat < SEEN[1]) & (lon > SEEN[2]) & (lon < SEEN[3])
    regions, counts = np.unique(world.grid.region[inside], return_counts=True)
    return regions[counts >= 2]


def _rmse_in(world: World, model, regions: np.ndarray) -> float:
    pred = grid_field(model, world.grid).astype(np.float64)
    diff = world.operator.exact(pred) - world.operator.exact(world.truth)
    rows = np.isin(world.operator.obs_index["region"].to_numpy(), regions)
    return float(np.sqrt(np.mean(diff[rows] ** 2)))


def _fit(world, sites, cfg, towers=None):
    return train_network(world.samples, cfg, train_sites=sites, grid=world.grid,
                         targets=world.targets, regions=world.regions, towers=towers,
                         progress=False)


def test_footprint_term_corrects_the_regions_the_towers_see(world, sites, configure, towers):
    seen = _seen_regions(world)
    assert seen.size >= 1
    site_only = _fit(world, sites, configure())
    footprint_only = _fit(world, sites, configure(constraint={"lambda_footprint": 1.0}),
                          towers)
    assert _rmse_in(world, footprint_only, seen) < 0.7 * _rmse_in(world, site_only, seen)
    assert footprint_only.provenance["n_receptors"] == len(towers.table)


def test_lambda_footprint_zero_changes_nothing(world, sites, configure, towers):
    cfg = configure(network={"epochs": 3}, constraint={"lambda_regional": 1.0,
                                                        "lambda_footprint": 0.0})
    with_towers = _fit(world, sites, cfg, towers)
    without = _fit(world, sites, cfg)
    for key, value in with_towers.estimator.state_dict().items():
        torch.testing.assert_close(value, without.estimator.state_dict()[key], rtol=0, atol=0)


def test_receptor_sigma_adds_the_mismatch_in_quadrature():
    np.testing.assert_allclose(receptor_sigma(np.array([3.0, np.nan]), 4.0), [5.0, 4.0])


def test_term_rows_follow_the_operator_and_the_table(world, sites, configure, towers):
    cfg = configure(constraint={"lambda_footprint": 1.0},
                    tuning={"footprint": {"transport_error_ppm": 1.0}})
    trainer = Trainer(world.samples, cfg, train_sites=sites, grid=world.grid,
                      targets=world.targets, regions=world.regions, towers=towers)
    term = trainer.footprint
    assert term is not None and trainer.regional is None
    assert term.obs_ids.size == len(towers.table)  # every footprint inside the year
    np.testing.assert_allclose(term.mu, towers.table["enhancement_ppm"].to_numpy())
    np.testing.assert_allclose(term.sigma, np.hypot(0.2, 1.0))
    assert trainer.model.offset is None  # towers alone: the network takes the gradient


def _footprint_misfit(trainer) -> float:
    term = trainer.footprint
    pred = trainer.net.predict_grid()
    return float(np.mean(((term.operator.exact(pred) - term.mu) / term.sigma) ** 2))


def test_joint_offset_fit_uses_the_receptors(world, sites, configure, towers):
    """With both terms the offsets' fit weighs the receptors in: where they disagree with the
    regional targets (enhancements 1 ppm higher), their misfit is lower than after the
    regional fit alone, from the same network."""
    cfg = configure(constraint={"lambda_regional": 1.0, "lambda_footprint": 100.0,
                                "estimator": "exact", "correction": "region"},
                    network={"epochs": 1},
                    tuning={"offset": {"fit_K": 64, "match_totals": False}})
    shifted = TowerObservations(towers.paths, towers.table.assign(
        enhancement_ppm=towers.table["enhancement_ppm"] + 1.0))
    misfit = {}
    for joint in (False, True):
        trainer = Trainer(world.samples, cfg, train_sites=sites, grid=world.grid,
                          targets=world.targets, regions=world.regions, towers=shifted)
        trainer.regional.fit_offsets(also=trainer.footprint if joint else None)
        misfit[joint] = _footprint_misfit(trainer)
    assert misfit[True] < 0.5 * misfit[False]


def test_resume_with_both_terms_gives_same_weights(world, sites, configure, towers, tmp_path):
    """The footprint term's draws are in the checkpoint: interrupted and resumed, the run ends
    as an uninterrupted one."""
    cfg = configure(network={"epochs": 3, "batch_size": 256},
                    constraint={"lambda_regional": 1.0, "lambda_footprint": 1.0})
    train, val = sites[:-5], sites[-5:]

    def run(**kw):
        return train_network(world.samples, cfg, train_sites=train, val_sites=val,
                             grid=world.grid, targets=world.targets, regions=world.regions,
                             towers=towers, progress=False, **kw)

    reference = run()
    with pytest.raises(TrainingInterrupted):
        run(checkpoint_dir=tmp_path, stop_after_epochs=2)
    resumed = run(checkpoint_dir=tmp_path)
    assert resumed.provenance["history"] == reference.provenance["history"]
    for key, value in reference.estimator.state_dict().items():
        torch.testing.assert_close(value, resumed.estimator.state_dict()[key], rtol=0, atol=0)
