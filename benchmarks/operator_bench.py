"""The operator benchmark's world (:mod:`benchmarks.operator`): a site-only trainer and a
constrained one whose regional term switches estimators and settings in place, the model field
f and its exact totals, and the measurements made on them."""

from __future__ import annotations

import copy
import functools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fluxbridge.config import ExperimentConfig, parse_config
from fluxbridge.features import site_samples
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.inputs import open_world
from fluxbridge.operators import default_group_size, make_estimator, replicates
from fluxbridge.training import Trainer

PRETRAIN_STEPS = 400  # site-only steps of the network of the field f
STALE_STEPS = 50  # steps between a stale cache's network and the field's
IN_TRAINING_STEPS = 1000


def _path(name: str) -> tuple[str, ...]:
    """Where a setting named as in the rows is in the configuration."""
    if name in ("estimator", "K"):
        return ("constraint", name)
    if name in ("obs_per_step", "square"):
        return ("tuning", "regional", name)
    return ("tuning", "cache", name.removeprefix("cache_"))  # cache_*, refresh_every


def configured(cfg: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """``cfg`` with the settings named as in the rows changed."""
    data = cfg.model_dump()
    for name, value in changes.items():
        *sections, key = _path(name)
        functools.reduce(dict.__getitem__, sections, data)[key] = value
    return ExperimentConfig.model_validate(data)


def setting(cfg: ExperimentConfig, name: str) -> Any:
    """The value of the setting named as in the rows."""
    return functools.reduce(getattr, _path(name), cfg)


class Bench:
    """One world: a site-only trainer, a constrained one (its regional term built once, its
    estimator and settings switched), the field f and its exact totals."""

    def __init__(self, manifest: Path) -> None:
        t0 = time.perf_counter()
        world = open_world(manifest)
        self.cfg = cfg = configured(parse_config({"network": {"device": "cpu"}}), square="plain")
        samples = site_samples(world.sites, world.predictors, features=cfg.features)
        self.grid = grid = GridFeatures.from_dataset(world.predictors, world.regions,
                                                     features=cfg.features)
        sites = np.unique(samples["site"])
        self.base = Trainer(samples, cfg.with_lambda(0.0), train_sites=sites)
        self.trainer = tr = Trainer(samples, cfg, train_sites=sites, grid=grid,
                                    targets=world.targets, regions=world.regions)
        assert tr.regional is not None and tr.regional.cache is not None and tr.net is not None
        self.term, self.cache, self.net = tr.regional, tr.regional.cache, tr.net
        self.load_time = time.perf_counter() - t0
        self.rng = np.random.default_rng(0)
        self.steps_per_epoch = math.ceil(len(self.base.data) / cfg.network.batch_size)
        for _ in range(PRETRAIN_STEPS - STALE_STEPS):
            self.base.step(self.batch())
        self.stale = _state(self.base.model)
        for _ in range(STALE_STEPS):
            self.base.step(self.batch())
        self.start = (_state(self.base.model), copy.deepcopy(self.base.optimizer.state_dict()))
        self.initial = _state(tr.model)  # offsets at zero
        tr.model.load_state_dict(self.start[0], strict=False)  # the pretrained network
        self.f = self.net.predict_grid(offset=False)
        op, ids = self.term.operator, self.term.obs_ids
        self.exact = op.exact(self.f)[ids]
        self.sigma = self.term.sigma
        self.rows_per_obs = float(op.row_sizes(ids).mean())

    def batch(self) -> torch.Tensor:
        return torch.as_tensor(self.rng.choice(len(self.base.data), self.cfg.network.batch_size,
                                               replace=False))

    def configure(self, cfg: ExperimentConfig | None = None, **changes: Any) -> None:
        """Set ``cfg`` (by default the current one) with ``changes`` in the constrained
        trainer, its regional term and its cache; its draws start afresh."""
        cfg = configured(cfg or self.trainer.cfg, **changes)
        self.trainer.cfg = self.term.cfg = cfg
        self.cache.tuning = cfg.tuning.cache
        self.term.start_epoch()

    def use(self, kind: str, **overrides: Any) -> float:
        """Set the constrained trainer's estimator and settings (``overrides`` of the
        benchmark's); a control variate's cache is built from the stale network (the first
        build of a layout also merges the operator's columns): seconds of that refresh."""
        term = self.term
        cfg = configured(self.cfg, estimator=kind, **overrides)
        n_rep = replicates(kind, cfg.tuning.regional.square)
        layout = [(c.tuning.cache.features, c.tuning.cache.group_size)
                  for c in (cfg, self.trainer.cfg)]
        same = (term.estimator.name == kind == "control_variate" and layout[0] == layout[1]
                and term.estimator.n_rep == n_rep)
        K = cfg.constraint.K
        if not same:
            term.estimator = make_estimator(kind, term.operator, K=K, seed=K, n_rep=n_rep,
                                            sampling=cfg.constraint.sampling,
                                            strata=self.grid.igbp_code)
        term.estimator.K = K
        term.cache = self.cache if term.estimator.needs_cache() else None
        if term.cache is not None:
            term.cache.estimator = term.estimator
        self.configure(cfg)
        if kind != "control_variate":
            return 0.0
        return self.refresh(self.stale)

    def refresh(self, state: dict[str, torch.Tensor]) -> float:
        """Refresh the cache from network ``state``, then set the network of the field f (timed
        steps move the trainer's network): seconds of the refresh."""
        tr = self.trainer
        tr.model.load_state_dict(state, strict=False)
        t0 = time.perf_counter()
        self.cache.refresh()
        seconds = time.perf_counter() - t0
        tr.model.load_state_dict(self.start[0], strict=False)
        return seconds

    def accuracy(self, K: int, reps: int) -> tuple[float, float]:
        """Bias and spread / σ of the trainer's estimator at K for the field f."""
        term = self.term
        est = term.estimator
        self.trainer.model.load_state_dict(self.start[0], strict=False)  # timed steps moved it
        est.K = K
        n_draws = 1 if est.name == "fixed" else reps
        draws = np.empty((n_draws, term.obs_ids.size))
        flat = self.f.ravel()
        pick = np.arange(term.obs_ids.size)
        offset = 0 if term.offsets is None else term.offsets.totals(pick).detach().numpy()
        for r in range(n_draws):
            sample = est.draw(term.obs_ids, self.rng)
            pred = torch.from_numpy(flat[sample.col].astype(np.float64))
            inputs = self.net.column_inputs(sample.col)[0] if est.needs_cache() else None
            with torch.no_grad():
                draws[r] = term.totals(pred, pick, sample, inputs)[0].numpy() - offset
        err = (draws - self.exact[None, :]) / self.sigma[None, :]
        if n_draws == 1:
            return float(np.sqrt(np.mean(err[0] ** 2))), 0.0
        return (float(np.sqrt(np.mean(err.mean(axis=0) ** 2))),
                float(np.sqrt(np.mean(err.std(axis=0, ddof=1) ** 2))))

    def time_steps(self, n_steps: int) -> tuple[float, float]:
        """Fastest seconds of a site-only step and of a constrained step, interleaved so that
        both see the same load of a shared machine."""
        times: dict[int, list[float]] = {0: [], 1: []}
        for i in range(n_steps + 2):
            for k, t in enumerate((self.base, self.trainer)):
                idx = self.batch()
                t0 = time.perf_counter()
                t.step(idx)
                if i >= 2:  # warm-up steps are not timed
                    times[k].append(time.perf_counter() - t0)
        return float(np.min(times[0])), float(np.min(times[1]))

    def in_training(self, **overrides: Any) -> dict[str, Any]:
        """Train from the pretrained network and optimiser, site-only and with the control
        variate (``overrides`` of the settings), on the same site batches: the cost of every
        step and refresh, and the spread of the regional estimates by the draws' own
        estimate."""
        tr, base, cache = self.trainer, self.base, self.cache
        build = self.use("control_variate", **overrides)
        cfg = tr.cfg
        tr.model.load_state_dict(self.initial)  # the offsets start afresh
        for t in (base, tr):
            t.model.load_state_dict(self.start[0], strict=False)
            state = copy.deepcopy(self.start[1])  # the network's parameters come first in
            if t is tr:  # both optimisers; the offsets start afresh
                state["param_groups"] = tr.optimizer.state_dict()["param_groups"]
            t.optimizer.load_state_dict(state)
        cache.refresh()
        before = cache.refreshes
        per_epoch = self.steps_per_epoch
        seconds = {0: 0.0, 1: 0.0}
        noise, misfit = [], []
        for i in range(IN_TRAINING_STEPS):
            idx = self.batch()
            t1 = time.perf_counter()
            base.step(idx)
            t2 = time.perf_counter()
            if i and i % per_epoch == 0 and cache.due(i // per_epoch):  # as Trainer.epoch
                cache.refresh()
            out = tr.step(idx)
            noise.append(out["estimate_var"])
            misfit.append(out["regional"])
            seconds[0] += t2 - t1
            seconds[1] += time.perf_counter() - t2
        step, site = (seconds[k] / IN_TRAINING_STEPS for k in (1, 0))
        K = cfg.constraint.K
        return {"estimator": "control_variate", "K": K,
                **{k: setting(cfg, k) for k in ("obs_per_step", "square")},
                "cells_fraction": min(1.0, K / self.rows_per_obs),
                "std_sigma": float(np.sqrt(np.mean(noise))),
                "std_late": float(np.sqrt(np.mean(noise[len(noise) // 2:]))),
                "misfit_late": float(np.mean(misfit[len(misfit) // 2:])),
                "step_seconds": step, "ratio_to_site_only": step / site, "mode": "in_training",
                "steps": IN_TRAINING_STEPS, "refreshes": cache.refreshes - before,
                "refresh_every_steps": cfg.tuning.cache.refresh_every * per_epoch,
                **self.cache_info(), "cache_build_seconds": build}

    def cache_info(self) -> dict[str, Any]:
        """The constrained trainer's cache layout."""
        cfg = self.trainer.cfg
        return {"cache_features": setting(cfg, "cache_features"),
                "cache_group_size": setting(cfg, "cache_group_size")
                or default_group_size(self.grid),
                "cache_entries": int(self.cache.groups().igbp.size)}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
