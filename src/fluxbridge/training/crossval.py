"""Cross-validation: out-of-fold predictions of the network and the baselines on identical folds."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.towers import TowerObservations
from fluxbridge.training.baselines import train_baseline
from fluxbridge.training.ensemble import train_ensemble
from fluxbridge.training.folds import make_folds
from fluxbridge.training.sites import check_samples

log = logging.getLogger(__name__)


def _predictions_frame(data: pd.DataFrame, fold_of: np.ndarray, kinds: Sequence[str]
                       ) -> pd.DataFrame:
    out = pd.DataFrame({"site": data["site"].astype(str),
                        "time": data["time"] if "time" in data else pd.NaT,
                        "fold": fold_of,
                        "igbp": data["igbp"] if "igbp" in data else data["igbp_code"],
                        "observed": data["nee"].to_numpy(dtype=float),
                        "weight": data["weight"].to_numpy(dtype=float)})
    for kind in kinds:
        out[kind] = np.nan
    out.attrs["units"] = {"observed": "g m-2 d-1", "weight": "1",
                          **{kind: "g m-2 d-1" for kind in kinds}}
    out.attrs["long_name"] = "out-of-fold NEE predictions, positive to the atmosphere"
    return out


def cross_validate(samples: pd.DataFrame, cfg: ExperimentConfig, *,
                   kinds: Sequence[str] = ("nn", "rf", "xgboost"),
                   folds: pd.Series | None = None,
                   grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                   regions: xr.Dataset | None = None, towers: TowerObservations | None = None,
                   checkpoint_dir: str | Path | None = None,
                   progress: bool = True, name: str | None = None) -> pd.DataFrame:
    """Out-of-fold predictions of the network and the baselines, all on the same folds.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`).
    cfg
        The experiment (λ > 0 trains the network with the regional term: needs ``grid``,
        ``targets`` and ``regions``); with ``towers`` also the footprint term.
    kinds
        ``"nn"`` (an ensemble of ``network.n_ensemble``, averaged), ``"rf"``, ``"xgboost"``.
    folds
        Fold per site (:func:`make_folds`); by default ``validation.folds`` site folds.
    checkpoint_dir
        Network checkpoints go to ``checkpoint_dir/fold{f}/member{i}``.
    progress
        Show each network's progress over epochs.
    name
        The network's name in the progress and in ``attrs["seconds_per_fold"]``; by default
        ``site_only`` or ``dual`` (λ > 0).

    Returns
    -------
    pd.DataFrame
        One row per sample with finite NEE: ``site``, ``time``, ``fold``, ``igbp``,
        ``observed`` [g m-2 d-1], ``weight`` [1] and one column per kind [g m-2 d-1];
        ``attrs["seconds_per_fold"]`` maps each model (the network by ``name``, the
        baselines by kind) to its mean training and prediction time per fold [s].
    """
    check_samples(samples)
    if folds is None:
        folds = make_folds(samples, cfg.validation.folds, "site", cfg.seed)
    data = samples[np.isfinite(samples["nee"].to_numpy(dtype=float))].reset_index(drop=True)
    site = data["site"].astype(str)
    missing = sorted(set(site) - set(folds.index.astype(str)))
    if missing:
        raise InputError(f"no fold for sites {missing[:5]}", variable="folds",
                         expected="a fold for every site (see make_folds)")
    fold_of = site.map(folds.rename(index=str)).to_numpy(dtype=np.int64)
    out = _predictions_frame(data, fold_of, kinds)
    fold_ids = np.unique(folds.to_numpy())
    model = name or ("dual" if cfg.constrained else "site_only")
    seconds: dict[str, list[float]] = {}
    for i, f in enumerate(fold_ids, start=1):
        train_sites = sorted(folds.index[folds.to_numpy() != f].astype(str))
        test = fold_of == f
        if not test.any():
            continue
        label = f"fold {i}/{len(fold_ids)}"
        for kind in kinds:
            t0 = time.perf_counter()
            if kind == "nn":
                members = train_ensemble(
                    samples, cfg, train_sites=train_sites, grid=grid, targets=targets,
                    regions=regions, towers=towers, progress=progress,
                    name=f"{model} {label}",
                    checkpoint_dir=None if checkpoint_dir is None
                    else Path(checkpoint_dir) / f"fold{f}")
                pred = np.mean([m.predict_frame(data[test]) for m in members], axis=0)
            else:
                pred = train_baseline(kind, samples, cfg,
                                      train_sites=train_sites).predict_frame(data[test])
            out.loc[test, kind] = pred
            key = model if kind == "nn" else kind
            seconds.setdefault(key, []).append(time.perf_counter() - t0)
            log.info("%s %s: %d test sites, %d samples, %.1f s", key, label,
                     int(site[test].nunique()), int(test.sum()), seconds[key][-1])
    out.attrs["seconds_per_fold"] = {k: float(np.mean(v)) for k, v in seconds.items()}
    return out
