"""The neural network that maps predictors to NEE."""

from __future__ import annotations

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


class NEENet(nn.Module):
    """Multilayer perceptron with an embedding of the IGBP vegetation class.

    The network works in standardised units inside; the buffers ``y_mean`` and ``y_scale``
    (set with :meth:`set_target_scaling` at fit time) map its output to NEE [g m-2 d-1],
    positive to the atmosphere.

    Parameters
    ----------
    n_features
        Number of (normalised) input features.
    n_classes
        Number of IGBP classes (codes 0..n_classes-1; out-of-range codes are clipped).
    width, depth
        Hidden layer width and number of hidden layers.
    activation
        One of :data:`ACTIVATIONS`.
    dropout
        Dropout probability after each hidden layer.
    embed_dim
        Size of the vegetation class embedding (0: no embedding).
    n_regions
        With ``n_regions > 0``, a learned grid offset per region (mean and seasonal
        harmonics, see :meth:`grid_offset`) that applies to grid cells only, never to towers.
    offset_harmonics
        Number of seasonal harmonics of the grid offset (1: annual; 2: annual and semiannual).
    """

    def __init__(self, n_features: int, n_classes: int = 17, width: int = 64, depth: int = 3,
                 activation: str = "silu", dropout: float = 0.0, embed_dim: int = 4,
                 n_regions: int = 0, offset_harmonics: int = 1) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {sorted(ACTIVATIONS)}")
        if n_features < 1 or depth < 1 or width < 1 or n_classes < 1 or offset_harmonics < 0:
            raise ValueError("n_features, n_classes, width and depth must be positive, "
                             "offset_harmonics not negative")
        self.arch = {"n_features": n_features, "n_classes": n_classes, "width": width,
                     "depth": depth, "activation": activation, "dropout": dropout,
                     "embed_dim": embed_dim, "n_regions": n_regions,
                     "offset_harmonics": offset_harmonics}
        self.offset_harmonics = offset_harmonics
        self.n_classes = n_classes
        self.embed = nn.Embedding(n_classes, embed_dim) if embed_dim > 0 else None
        layers: list[nn.Module] = []
        size = n_features + max(embed_dim, 0)
        for _ in range(depth):
            layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, 1))
        self.mlp = nn.Sequential(*layers)
        n_basis = 1 + 2 * offset_harmonics
        self.offset = nn.Embedding(n_regions + 1, n_basis) if n_regions > 0 else None
        if self.offset is not None:
            nn.init.zeros_(self.offset.weight)
        self.register_buffer("y_mean", torch.zeros((), dtype=torch.float32))
        self.register_buffer("y_scale", torch.ones((), dtype=torch.float32))

    def set_target_scaling(self, y_mean: float, y_scale: float) -> None:
        """Set the output scaling: NEE = y_mean + y_scale * raw output [g m-2 d-1]."""
        if not y_scale > 0:
            raise ValueError(f"y_scale must be positive, got {y_scale}")
        self.y_mean.fill_(float(y_mean))
        self.y_scale.fill_(float(y_scale))

    def forward(self, x: Tensor, igbp: Tensor) -> Tensor:
        """NEE [g m-2 d-1] of each row.

        Parameters
        ----------
        x
            float32 (n, n_features), normalised features.
        igbp
            int64 (n,), IGBP class codes.

        Returns
        -------
        Tensor
            (n,) NEE [g m-2 d-1], positive to the atmosphere.
        """
        if self.embed is not None:
            codes = igbp.long().clamp(0, self.n_classes - 1)
            x = torch.cat([x, self.embed(codes)], dim=1)
        return self.mlp(x).squeeze(-1) * self.y_scale + self.y_mean

    def grid_offset(self, region: Tensor, dayofyear: Tensor) -> Tensor:
        """Offset [g m-2 d-1] of grid cells: ``a_r + Σ_k b_rk cos(k ω d) + c_rk sin(k ω d)``.

        It stands for what towers cannot see (disturbance and stand-age legacies of the region's
        cells; towers stand in undisturbed stands), so it is added to gridded predictions and
        learned from the regional term only. Zero without ``n_regions`` or for region 0.

        Parameters
        ----------
        region
            int64 (n,) region ids (0 = none).
        dayofyear
            (n,) day of the year.
        """
        return self.offset_at(region, self.offset_basis(dayofyear))

    def offset_at(self, region: Tensor, basis: Tensor) -> Tensor:
        """:meth:`grid_offset` from the seasonal basis rows (n, n_basis) of :meth:`offset_basis`
        (precomputed once per day by callers that evaluate many cells)."""
        if self.offset is None:
            return torch.zeros(region.shape, dtype=self.y_scale.dtype, device=region.device)
        return (self._coefficients(region) * basis).sum(-1) * self.y_scale

    def offset_field(self, region: Tensor, basis: Tensor) -> Tensor:
        """:meth:`offset_at` of every (basis row, cell) pair: (n_basis, n_cell) [g m-2 d-1]."""
        if self.offset is None:
            return torch.zeros((basis.shape[0], region.shape[0]), dtype=self.y_scale.dtype,
                               device=region.device)
        return basis @ self._coefficients(region).T * self.y_scale

    def _coefficients(self, region: Tensor) -> Tensor:
        assert self.offset is not None
        r = region.long().clamp(0, self.offset.num_embeddings - 1)
        return self.offset(r) * (r > 0).unsqueeze(-1)

    def offset_basis(self, dayofyear: Tensor) -> Tensor:
        """(n, 1 + 2 h) :func:`seasonal_basis` of the grid offset, in the network's dtype."""
        return seasonal_basis(dayofyear.to(self.y_scale.dtype), self.offset_harmonics)


def seasonal_basis(dayofyear: Tensor, harmonics: int) -> Tensor:
    """(n, 1 + 2 h) seasonal basis of the grid offset: 1, cos(k ω d), sin(k ω d) for
    k = 1..h harmonics, ω = 2π / 365.25, in the dtype of the floating-point ``dayofyear``."""
    w = 2 * torch.pi * dayofyear / 365.25
    terms = [torch.ones_like(w)]
    for k in range(1, harmonics + 1):
        terms += [torch.cos(k * w), torch.sin(k * w)]
    return torch.stack(terms, dim=-1)
