"""Per-epoch checkpoints of a training run and the early-stopping record they carry.

A checkpoint holds the network, the optimiser, every random generator, the regional term's
state (the draws' generator, the network the cache was built from and its floor) and the loop's
record, written atomically after every epoch. A rerun with the same configuration and sites
resumes from it and ends with the same weights; one of another configuration is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from fluxbridge.errors import InputError
from fluxbridge.models.torchfile import read_torch_file
from fluxbridge.outputs.files import atomic_path


class Stateful(Protocol):
    """What a checkpoint saves and restores (a :class:`~fluxbridge.training.Trainer`)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

CHECKPOINT_NAME = "checkpoint.pt"


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def fingerprint(training_key: str, train_sites: Sequence[str],
                val_sites: Sequence[str] | None) -> str:
    """A short hash of what decides a training run: its settings and its sites."""
    payload = json.dumps([training_key, sorted(map(str, train_sites)),
                          sorted(map(str, val_sites or []))], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class LoopState:
    """The training loop's record: epochs run, the best validation epoch and its weights,
    epochs without improvement, whether training is done, and each epoch's losses."""

    best_state: dict[str, torch.Tensor]
    epoch: int = 0
    best_val: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, losses: dict[str, Any], model: torch.nn.Module, patience: int,
               epochs: int) -> None:
        """Add an epoch: keep the weights when the validation loss improved (or when there is
        no validation), and stop after ``patience`` epochs without improvement or ``epochs``
        in all."""
        self.history.append(losses)
        self.epoch += 1
        val = losses.get("val")
        if val is None or val < self.best_val:
            self.best_val = float("inf") if val is None else val
            self.best_epoch = self.epoch
            self.best_state = cpu_state(model)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.done = self.bad_epochs >= patience or self.epoch >= epochs


class Checkpoint:
    """The checkpoint file of one training run (``None`` path: none is kept).

    Parameters
    ----------
    directory
        Folder of the checkpoint, or None.
    key
        :func:`fingerprint` of the run.
    """

    def __init__(self, directory: str | Path | None, key: str) -> None:
        self.path = None if directory is None else Path(directory) / CHECKPOINT_NAME
        self.key = key

    def save(self, trainer: Stateful, loop: LoopState) -> None:
        """Write the trainer's and the loop's state (atomically)."""
        if self.path is None:
            return
        record = asdict(loop)
        record["history"] = json.dumps(record["history"])
        payload = {**record, **trainer.state_dict(), "fingerprint": self.key}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def restore(self, trainer: Stateful) -> LoopState | None:
        """Load a checkpoint into ``trainer`` and return its loop state (None: no checkpoint).

        Raises
        ------
        InputError
            If the checkpoint belongs to another configuration or site split.
        """
        if self.path is None or not self.path.exists():
            return None
        ckpt = read_torch_file(self.path, "a training checkpoint written by fluxbridge")
        if ckpt.get("fingerprint") != self.key:
            raise InputError("checkpoint belongs to another configuration or site split",
                             path=self.path, variable="checkpoint",
                             expected="the same settings and sites, or an empty checkpoint_dir")
        trainer.load_state_dict(ckpt)
        names = LoopState.__dataclass_fields__
        loop = LoopState(**{k: ckpt[k] for k in names if k in ckpt})
        loop.history = json.loads(ckpt["history"])
        return loop
