"""The network being trained, evaluated on the columns of the in-memory grid.

A grid column is ``t * n_cell + c`` (time ``t``, land cell ``c``), the column numbering of the
observation operator. :class:`GridNetwork` turns columns into network inputs (raw features
gathered and normalised in torch, the same numbers as :meth:`Normaliser.transform`) and
evaluates the network and its grid offset there.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from fluxbridge.features import Normaliser
from fluxbridge.grid_features import GridFeatures
from fluxbridge.models.network import NEENet


class GridNetwork:
    """A network and the grid it is evaluated on.

    Parameters
    ----------
    model
        The network (with its grid offset, if any).
    grid
        The land cells' raw features in memory.
    normaliser
        The training sites' normaliser.
    device
        Where the network runs.
    """

    def __init__(self, model: NEENet, grid: GridFeatures, normaliser: Normaliser,
                 device: torch.device) -> None:
        self.model, self.grid, self.device = model, grid, device
        self.n_cell = grid.n_cell
        with warnings.catch_warnings():  # read-only grids are fine: never written to
            warnings.simplefilter("ignore", UserWarning)
            self.rows = torch.from_numpy(grid.rows())
        self.mean = torch.as_tensor(normaliser.mean, dtype=torch.float64)
        self.std = torch.as_tensor(normaliser.std, dtype=torch.float64)
        self.igbp = torch.as_tensor(grid.igbp_code, dtype=torch.int64, device=device)
        self.region = torch.as_tensor(grid.region, dtype=torch.int64, device=device)
        # each cell's vegetation-class slot, 0, 1, ... over the grid's classes
        self.slot = np.unique(grid.igbp_code, return_inverse=True)[1].astype(np.int64)
        self.n_slot = int(self.slot.max()) + 1
        self._has_dropout = any(isinstance(m, torch.nn.Dropout) and m.p > 0
                                for m in model.modules())
        dayofyear = pd.DatetimeIndex(grid.times).day_of_year.to_numpy()
        self.basis = model.offset_basis(torch.tensor(dayofyear, dtype=torch.int64,
                                                     device=device))

    def columns(self, time_idx: np.ndarray, cell_idx: np.ndarray) -> torch.Tensor:
        """Grid columns of (time, cell) pairs; IndexError outside the grid."""
        t = torch.as_tensor(np.asarray(time_idx, dtype=np.int64))
        c = torch.as_tensor(np.asarray(cell_idx, dtype=np.int64))
        n_time = self.grid.times.size
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_time or int(c.min()) < 0
                          or int(c.max()) >= self.n_cell):
            raise IndexError(f"(time, cell) outside the grid's {n_time} x {self.n_cell}")
        return t * self.n_cell + c

    def normalised(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 CPU tensor of :meth:`Normaliser.transform` (float64 arithmetic, NaN and
        infinities → 0) of raw features (n, n_feature)."""
        if isinstance(X, np.ndarray):
            with warnings.catch_warnings():  # read-only input is fine: never written to
                warnings.simplefilter("ignore", UserWarning)
                X = torch.from_numpy(np.ascontiguousarray(X))
        Z = X.double().sub_(self.mean).div_(self.std)
        return Z.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).float()

    def column_inputs(self, col: torch.Tensor | np.ndarray
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features and classes of grid columns, on the device."""
        col = torch.as_tensor(col).cpu()
        Z = self.normalised(self.rows.index_select(0, col))
        return Z.to(self.device), self.igbp[col.to(self.device) % self.n_cell]

    def cell_inputs(self, time_idx: np.ndarray, cell_idx: np.ndarray
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features and classes of (time, cell) pairs, on the device."""
        return self.column_inputs(self.columns(time_idx, cell_idx))

    def predict_cells(self, time_idx: np.ndarray, cell_idx: np.ndarray) -> torch.Tensor:
        """Model NEE [g m-2 d-1] at (time, cell) pairs (differentiable), the grid offset of
        the cells' regions included when the model has one."""
        return self.predict_columns(self.columns(time_idx, cell_idx))[0]

    def predict_columns(self, col: torch.Tensor | np.ndarray, offset: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model NEE at grid columns (with ``offset``, the grid offset included) and the
        network's inputs there."""
        x, c = self.column_inputs(col)
        pred = self.model(x, c)
        return (pred + self.column_offset(col) if offset else pred), x

    def column_offset(self, col: torch.Tensor | np.ndarray) -> torch.Tensor | float:
        """Grid offset of grid columns (0 when the model has none)."""
        if self.model.offset is None:
            return 0.0
        col = torch.as_tensor(col).to(self.device)
        return self.model.offset_at(self.region[col % self.n_cell],
                                    self.basis[col // self.n_cell])

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The network in eval mode within the block, then back in its mode. Only a network
        with dropout is switched (the switch walks every module)."""
        switch = self.model.training and self._has_dropout
        if switch:
            self.model.eval()
        try:
            yield
        finally:
            if switch:
                self.model.train()

    def predict(self, inputs: np.ndarray, igbp: np.ndarray, slope: bool = False,
                chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The network (no grid offset) at normalised inputs (n, f) of classes (n,): (n,), and
        with ``slope`` its gradient with respect to the inputs (n, f). ``chunk_rows`` rows go
        through the network at a time; by default 2^15 on a CPU, where a chunk's activations
        stay in the caches (the demo's cache refresh, 274k entries: 0.045 s against 0.105 s
        in chunks of 2^18), and 2^18 on an accelerator."""
        if chunk_rows is None:
            chunk_rows = 1 << 15 if self.device.type == "cpu" else 1 << 18
        out = np.empty(inputs.shape[0], dtype=np.float32)
        grad = np.empty(inputs.shape, dtype=np.float32) if slope else None
        codes = torch.as_tensor(igbp, dtype=torch.int64, device=self.device)
        with self.evaluating():
            for a in range(0, inputs.shape[0], chunk_rows):
                b = min(inputs.shape[0], a + chunk_rows)
                X = torch.from_numpy(np.ascontiguousarray(inputs[a:b])).to(self.device)
                X.requires_grad_(slope)
                with torch.set_grad_enabled(slope):
                    pred = self.model(X, codes[a:b]).float()
                    if slope:
                        (dx,) = torch.autograd.grad(pred.sum(), X)
                        grad[a:b] = dx.cpu().numpy()
                out[a:b] = pred.detach().cpu().numpy()
        return out, grad

    def predict_grid(self, chunk_days: int = 16, offset: bool = True) -> np.ndarray:
        """The model over every (time, cell) of the grid, with ``offset`` the grid offset
        included, (n_time, n_cell) [g m-2 d-1]."""
        values = self.grid.values
        n_time, n_cell, n_feat = values.shape
        out = np.empty((n_time, n_cell), dtype=np.float32)
        for t0 in range(0, n_time, chunk_days):
            t1 = min(n_time, t0 + chunk_days)
            Z = self.normalised(values[t0:t1].reshape(-1, n_feat)).numpy()
            out[t0:t1] = self.predict(Z, np.tile(self.grid.igbp_code, t1 - t0))[0].reshape(
                t1 - t0, n_cell)
        if offset and self.model.offset is not None:
            with torch.no_grad():
                out += self.model.offset_field(self.region, self.basis).cpu().numpy()
        return out
