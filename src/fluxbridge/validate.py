"""Every check of an experiment before any work: its inputs and its dask scheduler.

``fluxbridge validate CONFIG`` lists every problem together; ``run``, ``train`` and
``upscale`` make the same checks first, before any training.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from fluxbridge.config import ExperimentConfig, load_config
from fluxbridge.errors import InputError, InputProblems
from fluxbridge.io.inputs import World, open_inputs

IN_PROCESS = ("synchronous", "threads")
_ADDRESS = re.compile(r"(?:(?:tcp|tls)://)?\[?(?P<host>[^\[\]/\s]+?)\]?:(?P<port>\d{1,5})")


def scheduler_problem(address: str | None, timeout: float = 3.0) -> InputError | None:
    """Why a dask scheduler address cannot be used (malformed, or no answer to a TCP connect
    within ``timeout`` [s]); None when it can, or when there is none (a LocalCluster)."""
    if address is None or address in IN_PROCESS:
        return None
    where = {"variable": "upscaling.scheduler",
             "expected": "tcp://HOST:PORT of a running `dask scheduler`, 'synchronous', "
             "'threads', or none for a LocalCluster"}
    match = _ADDRESS.fullmatch(address.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        return InputError(f"malformed address {address!r}", **where)
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=timeout).close()
    except OSError as exc:
        return InputError(f"no dask scheduler answers at {address} "
                          f"({exc.strerror or type(exc).__name__})", **where)
    return None


def experiment_problems(world: World, cfg: ExperimentConfig) -> list[InputError]:
    """Every problem of an experiment's inputs and of its scheduler address."""
    problems = world.problems()
    scheduler = scheduler_problem(cfg.upscaling.scheduler)
    return problems + ([scheduler] if scheduler is not None else [])


def check_experiment(world: World, cfg: ExperimentConfig) -> World:
    """Check an experiment before any work; returns ``world`` with its datasets cached.

    Raises
    ------
    InputError
        The one problem found, or :class:`~fluxbridge.errors.InputProblems` listing them all.
    """
    problems = experiment_problems(world, cfg)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InputProblems(problems)
    return world


def validate_experiment(config: str | Path | ExperimentConfig) -> list[str]:
    """Every problem of an experiment, one line each; empty when it can run.

    Parameters
    ----------
    config
        Path of the experiment YAML, or a validated configuration.

    Raises
    ------
    InputError
        When the configuration itself cannot be read or names a file that does not exist
        (nothing further can be checked).
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    world = open_inputs(*cfg.input_spec(), **cfg.input_options())
    return [str(p).replace("\n", " ") for p in experiment_problems(world, cfg)]
