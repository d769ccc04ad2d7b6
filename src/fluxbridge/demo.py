"""The demo (``fluxbridge demo``, ``make demo``): the twin-world experiment, made smaller.

The demo runs every step of the full experiment (``fluxbridge init`` writes it) on a smaller
world and with fewer retrainings, so that it finishes in about six minutes on two cores:

* the world has 3 years instead of 5 (``templates/demo_world.yaml``);
* cross-validation has 3 site folds instead of 5;
* leave-region-out withholds 4 regions, from densely to sparsely towered, instead of all 11;
* the random forest baseline has 50 trees instead of 100.

The networks, the constraint and the evaluation are the full experiment's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fluxbridge.config import ExperimentConfig, parse_config
from fluxbridge.pipeline import run_experiment
from fluxbridge.rundir import RunResult

DEMO_WORLD = "demo_world.yaml"

DEMO_HELDOUT_REGIONS = ("Europe", "Australia", "North American Boreal", "Tropical Asia")
"""Regions withheld by the demo's leave-region-out, from most to least towers per area."""


def demo_settings(out: Path) -> dict[str, Any]:
    """The demo's experiment as a configuration mapping, its run directory ``out``."""
    world = resources.files("fluxbridge.templates").joinpath(DEMO_WORLD)
    return {
        "name": "demo",
        "out_dir": str(out),
        "world": {"dir": str(out / "world"), "config": str(world)},
        "validation": {"folds": 3, "leave_region_out_regions": list(DEMO_HELDOUT_REGIONS)},
        "tuning": {"baselines": {"rf_n_estimators": 50}},
    }


def demo_config(out: str | Path) -> ExperimentConfig:
    """The configuration of ``make demo``: the smaller twin-world experiment in ``out``."""
    return parse_config(demo_settings(Path(out).resolve()))


def run_demo(out: str | Path = "runs/demo", overwrite: bool = False,
             progress: bool = True) -> RunResult:
    """Run the demo experiment into ``out`` (see :func:`fluxbridge.pipeline.run_experiment`).

    Parameters
    ----------
    out
        Run directory; the twin world is written to ``out/world``.
    overwrite
        Replace a finished run in ``out``.
    progress
        Show progress (one line per step, and per epoch within training).
    """
    return run_experiment(demo_config(out), overwrite=overwrite, progress=progress)
