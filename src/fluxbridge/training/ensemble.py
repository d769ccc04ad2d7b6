"""Ensembles of networks: members with their own seeds and their own validation sites."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.towers import TowerObservations
from fluxbridge.models.artifact import FittedModel
from fluxbridge.training.folds import split_validation
from fluxbridge.training.trainer import train_network


def train_ensemble(samples: pd.DataFrame, cfg: ExperimentConfig, *,
                   train_sites: Sequence[str] | np.ndarray, grid: GridFeatures | None = None,
                   targets: xr.Dataset | None = None, regions: xr.Dataset | None = None,
                   towers: TowerObservations | None = None,
                   checkpoint_dir: str | Path | None = None, progress: bool = True,
                   name: str = "nn") -> list[FittedModel]:
    """``network.n_ensemble`` networks with seeds ``seed + i``, each early-stopped on its own
    random ``tuning.training.val_fraction`` of the training sites; checkpoints in
    ``checkpoint_dir/member{i}``."""
    members = []
    for i in range(cfg.network.n_ensemble):
        member = cfg.with_seed(cfg.seed + i)
        fit_sites, val_sites = split_validation(train_sites, cfg.tuning.training.val_fraction,
                                                member.seed)
        members.append(train_network(
            samples, member, train_sites=fit_sites, val_sites=val_sites, grid=grid,
            targets=targets, regions=regions, towers=towers, progress=progress, name=name,
            checkpoint_dir=None if checkpoint_dir is None
            else Path(checkpoint_dir) / f"member{i}"))
    return members
