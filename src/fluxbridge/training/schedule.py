"""The learning rate over the epochs of a training run."""

from __future__ import annotations

import math


def lr_factor(epoch: int, epochs: int, schedule: str = "constant", floor: float = 0.01) -> float:
    """The learning rate of epoch ``epoch`` (0-based) relative to the configured one.

    Parameters
    ----------
    epoch
        Epoch number, 0 for the first.
    epochs
        Epochs of the full run (``network.epochs``; early stopping may end it sooner).
    schedule
        ``"constant"`` (1 throughout) or ``"cosine"``: half a cosine from 1 at the first epoch
        down to ``floor`` at the last.
    floor
        The cosine schedule's last factor [1].

    Returns
    -------
    float
        Factor of the learning rate [1].
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    if epochs <= 1:
        return 1.0
    progress = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
