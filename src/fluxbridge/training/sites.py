"""Site samples as training tensors: the feature columns, the rows that can be used, the scale.

Site rows with a missing feature are masked (left out of the loss and counted), never imputed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fluxbridge.errors import InputError
from fluxbridge.features import Normaliser

log = logging.getLogger(__name__)

RESERVED_COLUMNS = frozenset({"site", "time", "igbp", "igbp_code", "lat", "lon", "nee",
                              "weight", "fold"})


def feature_columns(samples: pd.DataFrame, features: Sequence[str] | None,
                    grid_features: Sequence[str] | None = None) -> list[str]:
    """The predictor columns a model trains on: ``features``, else those of the grid, else
    every non-reserved column of ``samples``.

    Raises
    ------
    InputError
        If ``samples`` lacks one, or the grid's features differ from them.
    """
    if features is not None:
        names = list(features)
    elif grid_features is not None:
        names = list(grid_features)
    else:
        names = [c for c in samples.columns if c not in RESERVED_COLUMNS]
    missing = [n for n in names if n not in samples.columns]
    if missing or not names:
        raise InputError("samples lack feature columns", variable=", ".join(missing) or "features",
                         expected="one column per feature (see fluxbridge.features.site_samples)")
    if grid_features is not None and list(grid_features) != names:
        raise InputError(f"grid features {list(grid_features)} differ from {names}",
                         variable="features", expected="the same features in the same order")
    return names


def check_samples(samples: pd.DataFrame) -> None:
    """Raise :class:`InputError` unless ``samples`` has the columns training needs."""
    for name in ("site", "nee", "weight", "igbp_code"):
        if name not in samples.columns:
            raise InputError("samples table lacks a column", variable=name,
                             expected="the table of fluxbridge.features.site_samples")


def usable_rows(samples: pd.DataFrame, sites: Sequence[str] | np.ndarray,
                features: Sequence[str]) -> tuple[np.ndarray, int]:
    """Rows of ``sites`` with finite NEE and every feature finite, and how many rows with
    finite NEE were masked for a missing feature."""
    mask = samples["site"].isin(list(np.asarray(sites).astype(str))).to_numpy() \
        & np.isfinite(samples["nee"].to_numpy(dtype=float))
    X = samples[list(features)].to_numpy(dtype=np.float64, na_value=np.nan)
    complete = np.isfinite(X).all(axis=1)
    n_masked = int(np.count_nonzero(mask & ~complete))
    if n_masked:
        log.info("%d site samples masked for a missing feature", n_masked)
    return np.flatnonzero(mask & complete), n_masked


@dataclass
class SiteTensors:
    """Normalised features ``x`` (n, f), classes ``c`` (n,), NEE ``y`` [g m-2 d-1] (n,) and
    quality weights ``w`` [1] (n,) of site rows, on one device."""

    x: torch.Tensor
    c: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor

    @classmethod
    def of(cls, samples: pd.DataFrame, rows: np.ndarray, features: Sequence[str],
           normaliser: Normaliser, device: torch.device) -> SiteTensors:
        """The tensors of ``rows`` of ``samples``."""
        df = samples.iloc[rows]
        X = df[list(features)].to_numpy(dtype=np.float32, na_value=np.nan)
        return cls(torch.from_numpy(normaliser.transform(X)).to(device),
                   torch.tensor(df["igbp_code"].to_numpy(dtype=np.int64), device=device),
                   torch.tensor(df["nee"].to_numpy(dtype=np.float32), device=device),
                   torch.tensor(np.nan_to_num(df["weight"].to_numpy(dtype=np.float32)),
                                device=device))

    def target_moments(self) -> tuple[float, float]:
        """Weighted mean and standard deviation of NEE [g m-2 d-1] (1 when it is 0): the
        network's output scaling and the site term's unit ``s_y``."""
        wy, yy = self.w.cpu().double(), self.y.cpu().double()
        total = wy.sum().clamp_min(1e-12)
        mean = float((wy * yy).sum() / total)
        scale = float(torch.sqrt((wy * (yy - mean) ** 2).sum() / total))
        return mean, (scale if scale > 0 else 1.0)

    def __len__(self) -> int:
        return int(self.x.shape[0])
