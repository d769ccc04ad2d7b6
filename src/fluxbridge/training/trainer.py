"""Training one network with the dual constraint: the site term plus the regional term and,
with tower observations, the footprint term.

    L = mean_i w_i (f(x_i) − y_i)² / s_y²  +  λ mean_(r,m) (F̂_rm − μ_rm)² / σ_rm²
        + λ_f mean_j (Ĥ_j f − Δc_j)² / σ_j²

``s_y`` is the weighted standard deviation of training NEE; the regional term is
:class:`fluxbridge.training.regional.RegionalTerm`, the footprint term
:class:`fluxbridge.training.footprint.FootprintTerm`. λ = 0 and no towers (or λ_f = 0) is the
site-only (FLUXCOM-style) model. The trainer holds the data, the network and the optimiser,
and runs the loop; it sets no process-wide torch state (its random generator lives in the
trainer and in checkpoints).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import FluxbridgeError, InputError
from fluxbridge.features import Normaliser
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.towers import TowerObservations
from fluxbridge.models.artifact import FittedModel
from fluxbridge.models.network import NEENet
from fluxbridge.outputs.files import code_version
from fluxbridge.progress import Progress, format_numbers
from fluxbridge.training.checkpoint import Checkpoint, LoopState, cpu_state, fingerprint
from fluxbridge.training.footprint import FootprintTerm
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.training.regional import RegionalTerm
from fluxbridge.training.schedule import lr_factor
from fluxbridge.training.sites import SiteTensors, check_samples, feature_columns, usable_rows
from fluxbridge.training.term import ObservationTerm

log = logging.getLogger(__name__)

SHOWN_LOSSES = ("site", "regional", "footprint", "val")
"""Losses shown in the progress of each epoch [s_y², σ²]; the estimator's diagnostics go to the
debug log."""


class TrainingInterrupted(FluxbridgeError):
    """Raised by :func:`train_network` when ``stop_after_epochs`` is reached (time-boxed runs,
    resume tests); the checkpoint of the last finished epoch is on disk."""


def device_of(name: str) -> torch.device:
    """The torch device of a configuration's ``network.device`` (auto: CUDA when seen)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """One network's training state: site tensors, network, optimiser, observation terms.

    Parameters are those of :func:`train_network`.
    """

    def __init__(self, samples: pd.DataFrame, cfg: ExperimentConfig, *,
                 train_sites: Sequence[str] | np.ndarray,
                 val_sites: Sequence[str] | np.ndarray | None = None,
                 grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                 regions: xr.Dataset | None = None,
                 towers: TowerObservations | None = None) -> None:
        check_samples(samples)
        self.cfg, net = cfg, cfg.network
        self.device = device_of(net.device)
        self.features = feature_columns(samples, cfg.features,
                                        None if grid is None else grid.feature_names)
        rows, n_masked = usable_rows(samples, train_sites, self.features)
        self.masked: dict[str, int] = {"site_samples": n_masked, "grid_cell_days": 0}
        if rows.size == 0:
            raise InputError("no sample with finite NEE and features at the training sites",
                             variable="train_sites", expected="sites present in the samples")
        self.normaliser = Normaliser.fit(samples.iloc[rows], self.features)
        self.data = SiteTensors.of(samples, rows, self.features, self.normaliser, self.device)
        y_mean, self.s_y = self.data.target_moments()
        self.val = None
        if val_sites is not None and len(val_sites):
            val_rows, _ = usable_rows(samples, val_sites, self.features)
            if val_rows.size:
                self.val = SiteTensors.of(samples, val_rows, self.features, self.normaliser,
                                          self.device)
        use_towers = towers is not None and cfg.constraint.lambda_footprint > 0
        # Offsets only with regional targets: with towers alone the network takes the
        # footprint gradient (offsets fitted to footprints over-corrected the rest of a region).
        with_offset = (cfg.constrained and cfg.constraint.correction != "none"
                       and regions is not None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model = NEENet(len(self.features), width=net.width, depth=net.depth,
                                activation=net.activation, dropout=net.dropout,
                                embed_dim=net.embed_dim,
                                n_regions=int(np.max(regions["region"].values))
                                if with_offset else 0,
                                offset_harmonics=cfg.tuning.offset.harmonics)
            self.torch_rng = torch.get_rng_state()
        self.model.set_target_scaling(y_mean, self.s_y)
        self.model.to(self.device)
        self.optimizer = self._optimizer()
        self.base_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        self.rng = np.random.default_rng(cfg.seed)
        self.net = None if grid is None else GridNetwork(self.model, grid, self.normaliser,
                                                         self.device)
        self.regional, self.footprint = self._terms(targets, regions,
                                                    towers if use_towers else None)
        self.terms: list[ObservationTerm] = [t for t in (self.regional, self.footprint)
                                             if t is not None]

    def _terms(self, targets: xr.Dataset | None, regions: xr.Dataset | None,
               towers: TowerObservations | None
               ) -> tuple[RegionalTerm | None, FootprintTerm | None]:
        """The regional term (λ > 0) and the footprint term (tower observations given)."""
        cfg, regional, footprint = self.cfg, None, None
        if cfg.constrained:
            if self.net is None or targets is None or regions is None:
                raise InputError(f"lambda_regional = {cfg.constraint.lambda_regional} needs "
                                 "grid features, targets and regions", variable="constraint",
                                 expected="inputs with a grid, targets and regions (or "
                                 "lambda_regional = 0 for a site-only model)")
            regional = RegionalTerm(self.net, targets, regions, cfg, self.masked)
        if towers is not None:
            if self.net is None or regions is None:
                raise InputError("tower observations need grid features and regions",
                                 variable="towers", expected="inputs with a grid and regions")
            footprint = FootprintTerm(self.net, towers, regions, cfg)
        return regional, footprint

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW; the grid offset's coefficients learn faster and without weight decay, so
        that the network is left to the towers. Fused: one kernel per group instead of a dozen
        per tensor (on the CPU an update took 48 µs against 177 µs)."""
        net, offset_tuning = self.cfg.network, self.cfg.tuning.offset
        offset = [] if self.model.offset is None else list(self.model.offset.parameters())
        others = [p for p in self.model.parameters() if all(p is not q for q in offset)]
        groups: list[dict[str, Any]] = [{"params": others}]
        if offset:
            groups.append({"params": offset, "lr": net.lr * offset_tuning.lr_factor,
                           "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=net.lr, weight_decay=net.weight_decay, fused=True)

    @contextlib.contextmanager
    def torch_random(self) -> Iterator[None]:
        """The trainer's own torch generator (dropout) within the block; the process's is
        left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.torch_rng)
            try:
                yield
            finally:
                self.torch_rng = torch.get_rng_state()

    def _site_loss(self, pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The site term: weighted mean squared error in units of s_y²."""
        return (w * (pred - y) ** 2).mean() / self.s_y**2

    def step(self, idx: torch.Tensor) -> dict[str, float]:
        """One optimiser step on site rows ``idx`` plus each observation term's draws; site
        rows and every term's draws go through the network in one forward pass."""
        self.optimizer.zero_grad(set_to_none=True)
        x, c, y, w = (t[idx] for t in (self.data.x, self.data.c, self.data.y, self.data.w))
        if not self.terms:
            loss = self._site_loss(self.model(x, c), y, w)
            loss.backward()
            self.optimizer.step()
            return {"site": float(loss.detach())}
        draws = [term.draw() for term in self.terms]
        out = self.model(torch.cat([x, *(d[2] for d in draws)]),
                         torch.cat([c, *(d[3] for d in draws)]))
        n = x.shape[0]
        loss = self._site_loss(out[:n], y, w)
        losses, grads = {"site": float(loss.detach())}, []
        for term, (pick, sample, xs, _) in zip(self.terms, draws, strict=True):
            cells = out[n:n + xs.shape[0]]
            n += xs.shape[0]
            err, d_totals, noise = term.error(cells, pick, sample, xs)
            # each term's gradient in closed form, pushed through the network in the site
            # term's backward pass
            grads.append(torch.as_tensor(term.cell_gradient(d_totals, pick, sample)).to(cells))
            term.offset_gradient(d_totals, pick)
            losses[term.name] = err
            losses[f"{term.prefix}estimate_var"] = noise
        torch.autograd.backward([loss, out[x.shape[0]:]],
                                [torch.ones_like(loss), torch.cat(grads)])
        self.optimizer.step()
        return losses

    def epoch(self, number: int = 0) -> dict[str, float]:
        """Epoch ``number``: the control variate's cache rebuilt if due, then one pass over the
        training rows in random batches. Returns mean losses; with a sampled estimator also the
        mean estimate variance [σ²] (the draws' own estimate), with a control variate the
        cache's ``refreshes``."""
        caches = [t.cache for t in self.terms if t.cache is not None]
        before = sum(cache.refreshes for cache in caches)
        for cache in caches:
            if cache.due(number):
                cache.refresh()
        self.model.train()
        self._set_lr(number)
        for term in self.terms:
            term.start_epoch()
        order = self.rng.permutation(len(self.data))
        sums: dict[str, float] = {}
        steps = 0
        batch = self.cfg.network.batch_size
        with self.torch_random():
            for start in range(0, len(self.data), batch):
                idx = torch.as_tensor(order[start:start + batch], device=self.device)
                for k, v in self.step(idx).items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        out = {k: v / steps for k, v in sums.items()}
        if caches:
            out["refreshes"] = float(sum(cache.refreshes for cache in caches) - before)
        return out

    def _set_lr(self, number: int) -> None:
        """Every group's learning rate at epoch ``number`` (``tuning.training.lr_schedule``)."""
        tuning = self.cfg.tuning.training
        factor = lr_factor(number, self.cfg.network.epochs, tuning.lr_schedule,
                           tuning.lr_floor)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def val_loss(self) -> float | None:
        """Site loss [s_y²] on the validation sites (None without validation sites)."""
        if self.val is None:
            return None
        v, training = self.val, self.model.training
        with torch.no_grad():
            self.model.eval()
            pred = self.model(v.x, v.c)
            self.model.train(training)
            return float(self._site_loss(pred, v.y, v.w))

    def state_dict(self) -> dict[str, Any]:
        """The network, optimiser, random generators and observation terms, for a
        checkpoint."""
        out = {"model": cpu_state(self.model), "optimizer": self.optimizer.state_dict(),
               "torch_rng": self.torch_rng, "rng": json.dumps(self.rng.bit_generator.state)}
        for term in self.terms:
            out.update(term.state_dict())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.torch_rng = state["torch_rng"]
        self.rng.bit_generator.state = json.loads(state["rng"])
        for term in self.terms:
            term.load_state_dict(state)

    def fitted(self, state: dict[str, torch.Tensor], name: str, provenance: dict[str, Any]
               ) -> FittedModel:
        """The network with the given weights as a :class:`FittedModel`."""
        model = copy.deepcopy(self.model).cpu()
        model.load_state_dict(state)
        model.eval()
        return FittedModel(kind="nn", feature_names=self.features, normaliser=self.normaliser,
                           estimator=model, config=self.cfg.to_dict(), name=name,
                           provenance={"code_version": code_version(),
                                       "masked_for_missing_features": dict(self.masked),
                                       **provenance})


def train_network(samples: pd.DataFrame, cfg: ExperimentConfig, *,
                  train_sites: Sequence[str] | np.ndarray,
                  val_sites: Sequence[str] | np.ndarray | None = None,
                  grid: GridFeatures | None = None, targets: xr.Dataset | None = None,
                  regions: xr.Dataset | None = None, towers: TowerObservations | None = None,
                  checkpoint_dir: str | Path | None = None, progress: bool = True,
                  name: str = "nn",
                  stop_after_epochs: int | None = None) -> FittedModel:
    """Train one network with the site term, when λ > 0 the regional term and, with tower
    observations and λ_f > 0, the footprint term.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`): ``site``, features,
        ``igbp_code``, ``nee`` [g m-2 d-1], ``weight`` [1].
    cfg
        The experiment: features, network, constraint (λ = 0: site only), tuning, seed.
    train_sites, val_sites
        Sites to fit on and sites for early stopping (none: run all epochs, keep the last).
    grid, targets, regions
        Gridded features of the land cells, canonical targets (``nee_mean``, ``nee_spread``
        [Tg month-1]) and regions; needed when λ > 0.
    towers
        Tower observations (:func:`fluxbridge.io.towers.open_towers`) for the footprint
        term; None: no footprint term.
    checkpoint_dir
        Folder of the per-epoch checkpoint; a rerun with the same folder, configuration and
        sites resumes where the last run stopped and ends with the same weights.
    progress
        Show the progress over epochs (site, regional and validation loss, ETA).
    name
        Label of the returned model.
    stop_after_epochs
        Raise :class:`TrainingInterrupted` after this many epochs of this call.

    Returns
    -------
    FittedModel
        The weights of the best validation epoch (or the last), grid offsets fitted;
        ``provenance`` holds the epochs run, the loss history and the number of tower
        receptors of the footprint term (0 without).
    """
    train_sites = list(np.asarray(train_sites).astype(str))
    val_list = None if val_sites is None else list(np.asarray(val_sites).astype(str))
    trainer = Trainer(samples, cfg, train_sites=train_sites, val_sites=val_list, grid=grid,
                      targets=targets, regions=regions, towers=towers)
    key = cfg.training_key() + ("" if trainer.footprint is None
                                else f"|towers:{len(trainer.footprint.obs_ids)}")
    checkpoint = Checkpoint(checkpoint_dir, fingerprint(key, train_sites, val_list))
    loop = checkpoint.restore(trainer) or LoopState(best_state=cpu_state(trainer.model))
    if loop.epoch:
        log.info("resuming %s from epoch %d (%s)", name, loop.epoch, checkpoint.path)
    epochs, this_call = cfg.network.epochs, 0
    with Progress(epochs, name, unit="epoch", initial=loop.epoch, enabled=progress) as bar:
        while not loop.done and loop.epoch < epochs:
            losses: dict[str, Any] = trainer.epoch(loop.epoch)
            losses["val"] = trainer.val_loss()
            loop.record(losses, trainer.model, cfg.network.patience, epochs)
            checkpoint.save(trainer, loop)
            bar.update(1, {k: losses.get(k) for k in SHOWN_LOSSES})
            log.debug("%s epoch %d: %s", name, loop.epoch, format_numbers(
                {k: v for k, v in losses.items() if k not in SHOWN_LOSSES}))
            this_call += 1
            if stop_after_epochs is not None and this_call >= stop_after_epochs \
                    and not loop.done:
                raise TrainingInterrupted(f"stopped after {this_call} epochs as asked")
    offsets: dict[str, float] = {}
    if trainer.model.offset is not None and trainer.terms:
        trainer.model.load_state_dict(loop.best_state)
        offsets = (trainer.regional.fit_offsets(also=trainer.footprint)
                   if trainer.regional is not None else {})
        loop.best_state = cpu_state(trainer.model)
    return trainer.fitted(loop.best_state, name, {
        "seed": cfg.seed, "n_train_sites": len(train_sites), "epochs_run": loop.epoch,
        "best_epoch": loop.best_epoch, "val_sites": val_list or [], "history": loop.history,
        "offset_fit": offsets,
        "n_receptors": 0 if trainer.footprint is None else int(trainer.footprint.obs_ids.size),
    })
