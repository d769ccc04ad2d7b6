"""Fixtures of the training tests: the method's small world, its sites, one torch thread, and
the small configuration they train with (changed section by section)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from method_world import FEATURES, World, make_world

from fluxbridge.config import ExperimentConfig, parse_config
from fluxbridge.models.artifact import FittedModel
from fluxbridge.training import Trainer, train_network

# a small network for a 10-degree world; λ = 0 (site only) unless a test turns the term on
SMALL: dict[str, Any] = {
    "features": list(FEATURES),
    "network": {"width": 16, "depth": 2, "embed_dim": 3, "epochs": 12, "batch_size": 512,
                "lr": 5e-3, "patience": 100, "device": "cpu"},
    "constraint": {"lambda_regional": 0.0, "K": 16},
    "tuning": {"regional": {"obs_per_step": 16}},
}

Configure = Callable[..., ExperimentConfig]


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, nested mappings key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread: None) -> None:
    """Every training test on one torch thread."""


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()


@pytest.fixture(scope="session")
def sites(world: World) -> list[str]:
    return sorted(world.samples["site"].unique())


@pytest.fixture(scope="session")
def configure() -> Configure:
    """``configure(network={...}, constraint={...}, tuning={...})``: the small configuration
    with those keys changed."""
    def make(**changes: Any) -> ExperimentConfig:
        return parse_config(merged(SMALL, changes))

    return make


@pytest.fixture(scope="session")
def small(configure: Configure) -> ExperimentConfig:
    """The small configuration, site only."""
    return configure()


@pytest.fixture(scope="session")
def fit(world: World) -> Callable[..., FittedModel]:
    """``fit(sites, cfg, **kw)``: :func:`train_network` on the world with its grid, targets
    and regions."""
    def train(sites: list[str], cfg: ExperimentConfig, **kw: Any) -> FittedModel:
        return train_network(world.samples, cfg, train_sites=sites, grid=world.grid,
                             targets=world.targets, regions=world.regions, progress=False,
                             **kw)

    return train


@pytest.fixture(scope="session")
def make_trainer(world: World, sites: list[str]) -> Callable[..., Trainer]:
    """``make_trainer(cfg, **kw)``: a :class:`Trainer` on every site of the world with its
    grid, targets and regions (``kw`` replaces any of them)."""
    def build(cfg: ExperimentConfig, **kw: Any) -> Trainer:
        inputs: dict[str, Any] = {"train_sites": sites, "grid": world.grid,
                                  "targets": world.targets, "regions": world.regions, **kw}
        samples = inputs.pop("samples", world.samples)
        return Trainer(samples, cfg, **inputs)

    return build


def _cv_draws(trainer: Trainer, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    term, net = trainer.regional, trainer.net
    assert term is not None and net is not None
    exact = term.operator.exact(net.predict_grid())[term.obs_ids]
    rng = np.random.default_rng(1)
    pick = np.arange(term.obs_ids.size)
    draws = []
    with torch.no_grad():
        for _ in range(n):
            sample = term.estimator.draw(term.obs_ids, rng)
            pred, xs = net.predict_columns(sample.col, offset=False)
            draws.append(term.totals(pred.double(), pick, sample, xs)[0].numpy())
    return np.array(draws), exact


@pytest.fixture(scope="session")
def cv_draws() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``cv_draws(trainer, n=200)``: the regional term's estimates of the trainer's model
    totals (grid offset included) over ``n`` independent draws of every target (n, n_target),
    and the exact totals (n_target,) [Tg month-1]."""
    return _cv_draws
