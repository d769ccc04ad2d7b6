"""The footprint term of the objective: λ_f mean over receptors of (Ĥf − Δc)² / σ².

``Ĥf`` is the model's enhancement [ppm] at a tower receptor through its footprint
(:class:`fluxbridge.operators.FootprintOperator`), estimated from cell-days drawn in proportion
to footprint weight (importance sampling, unbiased; ``exact`` with ``constraint.estimator:
exact``), ``Δc`` the observed enhancement (CO2 minus background, fossil and ocean priors,
:mod:`fluxbridge.io.towers`), and ``σ² = value_unc² + tuning.footprint.transport_error_ppm²``.

With the regional term, its grid offsets apply to grid cells, so they enter the footprint rows
as they enter the regional ones: their part of ``Hf`` is exact
(:class:`fluxbridge.training.offsets.GridOffsets` on the footprint rows), the term's gradient
reaches them, and their final fit is joint. With towers alone there are no offsets: the network
takes the footprint gradient, as in Upton et al. (2026). A tower sees a few hundred cells that
are not typical of their region, and region-wide offsets fitted to them over-corrected the rest
of the region (docs/footprints.md).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import xarray as xr

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.towers import TowerObservations
from fluxbridge.operators import FootprintOperator, make_estimator, replicates
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.training.term import ObservationTerm

log = logging.getLogger(__name__)


def receptor_sigma(table: np.ndarray, transport_error_ppm: float) -> np.ndarray:
    """σ [ppm] of each receptor: its measurement uncertainty (NaN: none) and the model-data
    mismatch in quadrature."""
    unc = np.nan_to_num(np.asarray(table, dtype=float), nan=0.0)
    return np.sqrt(unc**2 + transport_error_ppm**2)


def footprint_operator(towers: TowerObservations, grid: GridFeatures, regions: xr.Dataset
                       ) -> FootprintOperator:
    """The footprint rows of H on the model's land cells: each receptor's footprint summed
    into the cells of ``grid`` (``regions``' ``lat``/``lon`` are its cell centres)."""
    return FootprintOperator(towers.footprints(), grid.times, regions["lat"].values,
                             regions["lon"].values, grid.lat_index, grid.lon_index,
                             grid.land_fraction)


class FootprintTerm(ObservationTerm):
    """The tower footprint term of one network's training.

    Parameters
    ----------
    net
        The network on the grid.
    towers
        Matched tower observations.
    regions
        The regions dataset (its ``lat`` and ``lon`` are the model grid's cell centres).
    cfg
        The experiment (``constraint.lambda_footprint``, ``tuning.footprint``).
    """

    name = "footprint"

    def __init__(self, net: GridNetwork, towers: TowerObservations, regions: xr.Dataset,
                 cfg: ExperimentConfig) -> None:
        self.net, self.cfg = net, cfg
        con, tun = cfg.constraint, cfg.tuning.footprint
        self.weight, self.obs_per_step = con.lambda_footprint, tun.obs_per_step
        grid = net.grid
        op = footprint_operator(towers, grid, regions)
        op.matrix = (op.matrix @ sp.diags(grid.valid().ravel().astype(np.float64))).tocsr()
        op.matrix.eliminate_zeros()
        self.operator = op
        table = towers.rows_of(op.obs_index["source"])
        self.mu = table["enhancement_ppm"].to_numpy(dtype=np.float64)
        self.sigma = receptor_sigma(table["co2_unc"].to_numpy(), tun.transport_error_ppm)
        if not np.all(self.sigma > 0):
            raise InputError("zero σ for a receptor", variable="transport_error_ppm",
                             expected="a positive tuning.footprint.transport_error_ppm or "
                                      "measurement uncertainties")
        self.obs_ids = np.arange(len(table), dtype=np.int64)
        self.sites = table["site"].to_numpy()
        kind = "exact" if con.estimator == "exact" else "resampled"
        self.estimator = make_estimator(kind, op, K=tun.K, sampling="area",
                                        n_rep=replicates(kind, cfg.tuning.regional.square),
                                        seed=cfg.seed)
        self._start(stream=21)
        log.debug("footprint constraint: %d receptors, K = %d, median sigma %.3g ppm",
                  self.obs_ids.size, tun.K, float(np.median(self.sigma)))
