"""Training: the loop, the regional term, the grid offsets, checkpoints, folds, baselines.

* :mod:`~fluxbridge.training.trainer` — :class:`Trainer` (the loop), :func:`train_network`,
  :func:`~fluxbridge.training.ensemble.train_ensemble`;
* :mod:`~fluxbridge.training.regional` — the regional term (operator, targets, draws, loss and
  gradient), with :mod:`~fluxbridge.training.cache` (the control variate's cache) and
  :mod:`~fluxbridge.training.offsets` (the grid offset);
* :mod:`~fluxbridge.training.checkpoint`, :mod:`~fluxbridge.training.folds`,
  :mod:`~fluxbridge.training.baselines`, :mod:`~fluxbridge.training.crossval`.
"""

from fluxbridge.training.baselines import train_baseline
from fluxbridge.training.crossval import cross_validate
from fluxbridge.training.ensemble import train_ensemble
from fluxbridge.training.folds import make_folds, split_validation
from fluxbridge.training.trainer import Trainer, TrainingInterrupted, train_network

__all__ = ["Trainer", "TrainingInterrupted", "cross_validate", "make_folds", "split_validation",
           "train_baseline", "train_ensemble", "train_network"]
