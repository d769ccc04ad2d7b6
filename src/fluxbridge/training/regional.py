"""The regional term of the objective: λ mean over region-months of (F̂ − μ)² / σ².

``F̂`` is the model's regional monthly total estimated from a sparse draw of grid cell-days
(:mod:`fluxbridge.operators`), ``μ`` and ``σ = max(spread, floor)`` the corrected inversion
ensemble's mean and spread. :class:`RegionalTerm` builds them; the draws, the loss, its
gradient and the cache are those of :class:`fluxbridge.training.term.ObservationTerm`.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.operators import RegionalOperator, make_estimator, replicates
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.training.hierarchy import region_hemispheres
from fluxbridge.training.term import DRAW_AHEAD, ObservationTerm, relative_variance

__all__ = ["DRAW_AHEAD", "RegionalTerm", "floored_sigma", "relative_variance"]

log = logging.getLogger(__name__)


def floored_sigma(spread: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
    """The targets' σ [Tg month-1]: the inversion spread floored at ``constraint.sigma_floor``
    times its median and at ``tuning.regional.sigma_floor_tg``, so that no region-month
    dominates the regional term."""
    floor = max(cfg.constraint.sigma_floor * float(np.nanmedian(spread)),
                cfg.tuning.regional.sigma_floor_tg)
    return np.fmax(spread, floor)


class RegionalTerm(ObservationTerm):
    """The regional term of one network's training.

    Parameters
    ----------
    net
        The network on the grid.
    targets, regions
        Canonical targets (``nee_mean``, ``nee_spread`` [Tg month-1]) and regions.
    cfg
        The experiment (constraint and tuning).
    masked
        Counts of masked inputs; ``grid_cell_days`` is set here.
    """

    def __init__(self, net: GridNetwork, targets: xr.Dataset, regions: xr.Dataset,
                 cfg: ExperimentConfig, masked: dict[str, int]) -> None:
        self.net, self.cfg = net, cfg
        con, tun = cfg.constraint, cfg.tuning
        self.weight, self.obs_per_step = con.lambda_regional, tun.regional.obs_per_step
        grid = net.grid
        self.operator = RegionalOperator(regions, grid.times, grid.lat_index, grid.lon_index)
        # cell-days with a missing feature are masked, as in the upscaled totals
        before = self.operator.matrix.nnz
        self.operator.matrix = (self.operator.matrix
                                @ sp.diags(grid.valid().ravel().astype(np.float64))).tocsr()
        self.operator.matrix.eliminate_zeros()
        masked["grid_cell_days"] = int(before - self.operator.matrix.nnz)
        if masked["grid_cell_days"]:
            log.info("%d cell-days of the regions masked for a missing feature",
                     masked["grid_cell_days"])
        matched = self.operator.match_targets(targets)
        self.sigma = floored_sigma(matched["spread"].to_numpy(dtype=float), cfg)
        if not np.all(self.sigma > 0):
            raise InputError("zero inversion spread and no floor", variable="nee_spread",
                             expected="a positive constraint.sigma_floor")
        self.obs_ids = matched["obs"].to_numpy(dtype=np.int64)
        self.mu = matched["mu"].to_numpy(dtype=np.float64)  # [Tg month-1], float64 on the host
        self.estimator = make_estimator(con.estimator, self.operator, K=con.K,
                                        sampling=con.sampling, strata=grid.igbp_code,
                                        n_rep=replicates(con.estimator, tun.regional.square),
                                        seed=cfg.seed)
        self._start(stream=1)
        self.hemisphere = (region_hemispheres(regions, self.offsets.n_regions)
                           if self.offsets is not None else None)
        log.debug("regional constraint: %d region-months, estimator %s, K = %d, smallest sigma "
                  "%.3g Tg", self.obs_ids.size, con.estimator, con.K, float(self.sigma.min()))

    def fit_offsets(self, also: ObservationTerm | None = None) -> dict[str, float]:
        """Set the grid offsets to their σ-weighted least-squares fit with the network held
        fixed (:meth:`GridOffsets.fit`, with ``also``'s rows, e.g. the footprint term's,
        weighted by its λ relative to this term's; skipped with ``fit_K`` 0), then, with the
        hierarchical correction, to their shared version (:meth:`GridOffsets.share`); nothing
        without offsets."""
        tun = self.cfg.tuning.offset
        if self.offsets is None:
            return {}
        obs_region = self.operator.obs_index["region"].to_numpy()[self.obs_ids].astype(int)
        out: dict[str, float] = {}
        if tun.fit_K > 0:
            extra = None
            if also is not None and also.offsets is not None:
                extra = also.offsets.rows(also.current_totals(tun.fit_K), also.mu, also.sigma,
                                          also.weight / self.weight)
            out = self.offsets.fit(self.current_totals(tun.fit_K), self.mu, self.sigma,
                                   obs_region, tun.match_totals, extra=extra)
        if self.cfg.constraint.correction == "hierarchical":
            assert self.hemisphere is not None
            self.offsets.share(self.sigma, obs_region, self.hemisphere,
                               tested=tun.tested)
        return out
