"""Tall towers in a run: the dual model takes the footprint term, the site-only model does
not, and broken tower inputs are refused before any training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from fluxbridge.errors import InputError
from fluxbridge.models.artifact import load_model
from fluxbridge.pipeline import train_step

TOWER_WORLD = {"resolution_deg": 10.0, "n_years": 1, "n_sites": 16, "n_members": 3,
               "site_years_min": 1, "site_years_max": 1, "n_towers": 3,
               "tower_every_days": 30}
FAST = {"network": {"width": 8, "depth": 2, "epochs": 2, "patience": 2, "batch_size": 512},
        "constraint": {"K": 8}, "validation": {"folds": 2, "leave_region_out": False},
        "baselines": {"random_forest": False, "xgboost": False},
        "tuning": {"regional": {"obs_per_step": 8}, "footprint": {"obs_per_step": 8,
                                                                  "K": 8}},
        "progress": False}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("towerworld")
    synthesize(root / "world", config=TOWER_WORLD, seed=2, progress=False)
    return root / "world"


def _config(tmp: Path, inputs: Path, name: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "out_dir": str(tmp / name),
                                    "inputs": str(inputs), **FAST}))
    return path


def test_dual_model_takes_the_towers_site_only_does_not(tmp_path, world_dir):
    models = train_step(_config(tmp_path, world_dir / "inputs.yaml", "towers"),
                        progress=False)
    n_receptors = len(pd.read_csv(world_dir / "towers" / "tower_priors.csv"))
    assert load_model(models / "dual.pt").provenance["n_receptors"] == n_receptors
    assert load_model(models / "site_only.pt").provenance["n_receptors"] == 0


def test_receptor_without_background_is_refused_before_training(tmp_path, world_dir):
    inputs = yaml.safe_load((world_dir / "inputs.yaml").read_text())
    priors = pd.read_csv(world_dir / "towers" / "tower_priors.csv").iloc[1:]
    priors.to_csv(tmp_path / "priors.csv", index=False)
    spec = {role: (str(world_dir / v) if isinstance(v, str) else [str(world_dir / p)
                                                                  for p in v])
            for role, v in inputs.items()}
    spec["tower_priors"] = str(tmp_path / "priors.csv")
    (tmp_path / "inputs.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match="without a background"):
        train_step(_config(tmp_path, tmp_path / "inputs.yaml", "broken"), progress=False)
    assert not list((tmp_path / "broken").rglob("*.pt"))
