"""The dual model's grid offset: a per-region correction of grid cells, learned from the targets.

Towers stand in undisturbed stands, so no predictor tells the network about the disturbance and
stand-age legacies that bias upscaled totals. The offset (a mean and seasonal harmonics per
region [g m-2 d-1], in :class:`fluxbridge.models.network.NEENet`) applies to grid cells only,
never to towers. It is linear in its coefficients, so its regional totals are exact (a small
design matrix); only the network's share of a total is sampled.

Much of what the offsets correct is shared: towers avoid disturbed stands everywhere, so the
site-only sink is too strong in most regions. With ``constraint.correction: hierarchical`` the
regions' offsets are treated as draws around a shared mean (:mod:`fluxbridge.training.hierarchy`):
the mean corrects regions without targets, and each constrained region's offset is shrunk toward
it by its own uncertainty (little, where the inversions constrain it well).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from fluxbridge.operators import LinearOperator
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.training.hierarchy import region_blocks, share_offsets, transfer_weight

log = logging.getLogger(__name__)

Fields = Callable[[np.ndarray], tuple[np.ndarray, Sequence[np.ndarray]]]


def basis_totals(operator: LinearOperator, obs_ids: np.ndarray, n_groups: int, fields: Fields,
                 chunk: int = 1 << 22) -> np.ndarray:
    """Exact totals at the targets ``obs_ids`` of basis fields that are zero outside their
    group of cells.

    Parameters
    ----------
    operator
        The observation operator.
    obs_ids
        Its rows, in target order.
    n_groups
        Number of groups.
    fields
        ``fields(col)`` gives the group of each grid column (-1: none) and the basis values
        there (n_basis arrays of shape (n,)).
    chunk
        Operator entries read at a time.

    Returns
    -------
    np.ndarray
        (n_targets, n_groups * n_basis) float64, column ``group * n_basis + k``, in the
        operator's units per unit of basis value.
    """
    rows = operator.matrix[obs_ids].tocoo()
    size = obs_ids.size * n_groups
    D: np.ndarray | None = None
    for a in range(0, rows.nnz, chunk):
        group, values = fields(rows.col[a:a + chunk])
        on = group >= 0
        key = rows.row[a:a + chunk][on] * n_groups + group[on]
        data = rows.data[a:a + chunk][on]
        part = np.stack([np.bincount(key, data * v[on], minlength=size) for v in values],
                        axis=1)
        D = part if D is None else D + part
    if D is None:  # no entries: the basis's width from an empty call
        D = np.zeros((size, len(fields(np.zeros(0, dtype=np.int64))[1])))
    return D.reshape(obs_ids.size, -1)


class GridOffsets:
    """The grid offset's exact totals at the targets, its gradient and its least-squares fit.

    Parameters
    ----------
    net
        The network (with an offset) on the grid.
    operator, obs_ids
        The observation operator and its rows in target order.
    """

    def __init__(self, net: GridNetwork, operator: LinearOperator, obs_ids: np.ndarray) -> None:
        assert net.model.offset is not None
        self.net, self.offset = net, net.model.offset
        self.n_regions = self.offset.num_embeddings - 1
        region = net.grid.region
        basis = net.basis.double().cpu().numpy()

        def fields(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            t, c = np.divmod(col, net.n_cell)
            return region[c] - 1, basis.T[:, t]  # -1: outside every region

        # (n_targets, n_regions * n_basis) [Tg month-1 per g m-2 d-1 of coefficient],
        # column (region - 1) * n_basis + k
        self.design = basis_totals(operator, obs_ids, self.n_regions, fields)

    @property
    def _y_scale(self) -> torch.Tensor:
        return self.net.model.y_scale

    def totals(self, pick: np.ndarray) -> torch.Tensor:
        """Exact totals of the offset at target positions ``pick`` (len(pick),) float64
        [Tg month-1], differentiable in the offset's coefficients."""
        coef = self.offset.weight[1:].reshape(-1).double() * self._y_scale.double()
        return torch.as_tensor(self.design[pick], device=self.net.device) @ coef

    def add_grad(self, pick: np.ndarray, d_totals: np.ndarray) -> None:
        """Add to the offset's gradient that of a loss whose gradient with respect to the
        offset's totals at target positions ``pick`` is ``d_totals``."""
        weight = self.offset.weight
        coef = (self.design[pick].T @ d_totals) * float(self._y_scale)
        grad = np.zeros(weight.shape)
        grad[1:] = coef.reshape(grad[1:].shape)
        grad = torch.from_numpy(grad).to(weight)
        weight.grad = grad if weight.grad is None else weight.grad.add_(grad)

    def fit(self, current: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
            obs_region: np.ndarray, match_totals: bool = True,
            extra: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
        """Set the offsets to their σ-weighted least-squares fit, the network held fixed.

        The offsets enter the totals linearly, so once the network is trained their best
        values solve a small least-squares problem (1 + 2 × harmonics coefficients per region);
        this removes the optimiser's step-to-step noise from the final offsets. With
        ``match_totals`` each region's total over its target months is matched exactly (the
        budget the inversions constrain best) and the σ-weighted fit shapes the season: the
        Karush-Kuhn-Tucker system of the constrained least squares, minimum norm, so regions
        without targets keep their offsets.

        Parameters
        ----------
        current
            The model's totals at every target (network estimated, offset exact)
            [Tg month-1].
        mu, sigma
            The targets and their σ [Tg month-1].
        obs_region
            Region id of every target.
        match_totals
            Match each region's total exactly.
        extra
            Further least-squares rows ``(A, b)`` in the same unknowns (another term's
            :meth:`rows`, weighted relative to this term), appended after this term's rows are
            scaled by ``1 / √n`` (each term a mean over its rows, as in the loss).

        Returns
        -------
        dict
            Mean regional error in units of σ² before and after (``regional_before``,
            ``regional_after``).
        """
        D = self.design * float(self._y_scale)
        A, b = D / sigma[:, None], (mu - current) / sigma
        if extra is not None:
            A = np.vstack([A / np.sqrt(len(b)), extra[0]])
            b = np.concatenate([b / np.sqrt(len(b)), extra[1]])
        if match_totals:
            ids = np.unique(obs_region)
            C = np.stack([D[obs_region == r].sum(axis=0) for r in ids])
            e = np.array([(mu - current)[obs_region == r].sum() for r in ids])
            kkt = np.block([[A.T @ A, C.T], [C, np.zeros((ids.size, ids.size))]])
            solution, *_ = np.linalg.lstsq(kkt, np.concatenate([A.T @ b, e]), rcond=None)
            delta = solution[:D.shape[1]]
        else:
            delta, *_ = np.linalg.lstsq(A, b, rcond=None)
        with torch.no_grad():
            self.offset.weight[1:] += torch.as_tensor(
                delta.reshape(self.n_regions, -1), dtype=self.offset.weight.dtype,
                device=self.offset.weight.device)
        after = current + D @ delta
        out = {"regional_before": float(np.mean(((current - mu) / sigma) ** 2)),
               "regional_after": float(np.mean(((after - mu) / sigma) ** 2))}
        log.debug("grid offsets fitted by least squares: regional error %.3g -> %.3g sigma^2",
                  out["regional_before"], out["regional_after"])
        return out

    def rows(self, current: np.ndarray, mu: np.ndarray, sigma: np.ndarray, weight: float
             ) -> tuple[np.ndarray, np.ndarray]:
        """This term's least-squares rows for another term's :meth:`fit` (``extra``):
        ``√(weight / n)`` times the σ-weighted design and residuals of its ``n`` rows, with
        ``weight`` its λ relative to the other term's."""
        scale = np.sqrt(weight / len(mu)) / sigma
        return (self.design * float(self._y_scale) * scale[:, None],
                (mu - current) * scale)

    def share(self, sigma: np.ndarray, obs_region: np.ndarray, hemisphere: np.ndarray,
              tested: bool = False) -> dict[str, Any]:
        """Replace the offsets by their hierarchical version (:func:`.share_offsets`): each
        constrained region's offset shrunk toward the regions' random-effects mean, every
        region without targets set to that mean, times the share a leave-one-region-out test
        supports (:func:`.transfer_weight`) if ``tested``, else all of it.

        Parameters
        ----------
        sigma
            The targets' σ [Tg month-1].
        obs_region
            Region id of every target.
        hemisphere
            (n_regions + 1,) ±1 by region id (:func:`.region_hemispheres`).
        tested
            Give regions without targets only the share of the mean that predicts the
            constrained regions' own offsets when each is left out.
        """
        scale = float(self._y_scale)
        design = self.design * scale
        variance = region_variances(design, sigma, obs_region, self.n_regions)
        constrained = np.isfinite(variance).all(axis=1)
        coef = self.offset.weight[1:].detach().double().cpu().numpy() * scale
        transfer = 1.0
        if tested:
            blocks = region_blocks(design, np.isfinite(sigma), obs_region, self.n_regions)
            transfer = transfer_weight(coef, variance, constrained, hemisphere[1:], blocks)
        shared, info = share_offsets(coef, variance, constrained, hemisphere[1:], transfer)
        with torch.no_grad():
            self.offset.weight[1:] = torch.as_tensor(shared / scale).to(self.offset.weight)
        log.info("grid offsets shared: mean %s g m-2 d-1, between-region sd %s; regions "
                 "without targets get %.2f of the mean", np.round(info["mean"], 4).tolist(),
                 np.round(np.sqrt(info["tau2"]), 4).tolist(), transfer)
        return {**info, "transfer": transfer}


def region_variances(design: np.ndarray, sigma: np.ndarray, obs_region: np.ndarray,
                     n_regions: int) -> np.ndarray:
    """Variances of each region's offset coefficients given its own targets,
    diag((AᵀA)⁺) with A the region's columns of ``design`` / σ at its targets.

    Parameters
    ----------
    design
        (n_targets, n_regions × n_basis) exact totals per unit coefficient, column
        ``(r - 1) n_basis + k`` [Tg month-1 per g m-2 d-1].
    sigma
        (n_targets,) the targets' σ [Tg month-1]; NaN leaves a target out.
    obs_region
        (n_targets,) region id of every target.
    n_regions
        Number of regions (ids 1..n_regions).

    Returns
    -------
    np.ndarray
        (n_regions, n_basis) [(g m-2 d-1)²], infinite for regions without targets.
    """
    n_basis = design.shape[1] // n_regions
    variance = np.full((n_regions, n_basis), np.inf)
    for r in range(1, n_regions + 1):
        rows = (obs_region == r) & np.isfinite(sigma)
        A = design[rows, (r - 1) * n_basis:r * n_basis] / sigma[rows, None]
        if np.abs(A).sum() > 0:
            variance[r - 1] = np.diag(np.linalg.pinv(A.T @ A))
    return variance
