"""A fitted model with everything needed to use it, saved as one safe-to-load file.

The file is a ``torch.save`` dictionary of tensors, strings, numbers and bytes only, read back
with ``torch.load(weights_only=True)``: nothing in it can execute code. Networks store their
``state_dict``; XGBoost its booster as JSON bytes; random forests the node arrays of every tree
(no pickle), from which sklearn trees are rebuilt on load.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.features import Normaliser, feature_units
from fluxbridge.models.baselines import Baseline, predict_baseline
from fluxbridge.models.network import NEENet
from fluxbridge.models.predict import predict_grid
from fluxbridge.models.torchfile import read_torch_file
from fluxbridge.outputs.files import atomic_path
from fluxbridge.vocabulary import VARIABLES, igbp_codes

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the saved-model layout; files of another version are refused."""

KINDS = ("nn", "rf", "xgboost")


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class FittedModel:
    """A fitted NEE model with its feature list, normalisation, configuration and provenance.

    Attributes
    ----------
    kind
        ``"nn"`` (``estimator`` a :class:`NEENet`), ``"rf"`` or ``"xgboost"`` (``estimator`` a
        :class:`fluxbridge.models.baselines.Baseline`).
    feature_names
        Predictors in input order (canonical names).
    normaliser
        Feature standardisation (required for ``"nn"``; baselines use raw features).
    estimator
        The fitted network or baseline.
    config
        Training configuration (JSON-able).
    provenance
        How it was made: data, code version, seeds (JSON-able).
    name
        Label, e.g. ``"dual"`` or ``"site_only"``.
    batch_size
        Rows per forward pass in prediction (2^15: a pass's activations stay in a CPU's caches,
        twice as fast as 2^16 on the benchmark machine).
    """

    kind: str
    feature_names: list[str]
    normaliser: Normaliser | None
    estimator: Any
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    name: str = "model"
    batch_size: int = 32_768

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown model kind {self.kind!r}", variable="kind",
                             expected=" or ".join(KINDS))
        if self.kind == "nn" and self.normaliser is None:
            raise InputError("a network needs its normaliser", variable="normaliser",
                             expected="a Normaliser fitted on the training sites")
        self.feature_names = list(self.feature_names)

    @property
    def units(self) -> dict[str, str]:
        """Units of each feature and of the output ``nee``."""
        out = {f: feature_units(f) for f in self.feature_names}
        out["nee"] = VARIABLES["nee"].units
        return out

    @property
    def has_grid_offset(self) -> bool:
        """Whether grid cells get a learned offset by region and day of year (networks trained
        with one, :meth:`NEENet.grid_offset`)."""
        return self.kind == "nn" and self.estimator.offset is not None

    def predict_arrays(self, X_raw: np.ndarray, igbp: np.ndarray,
                       device: str | torch.device | None = None, *,
                       region: np.ndarray | None = None,
                       dayofyear: np.ndarray | None = None) -> np.ndarray:
        """NEE [g m-2 d-1] float32 (n,) from raw features (n, n_feature) and IGBP codes (n,).

        NaN features are replaced by the training mean (networks, random forests) or routed by
        the trees (XGBoost); mask rows yourself where that is not wanted. Rows of grid cells
        may pass their ``region`` id and ``dayofyear`` (n,): a network trained with a grid
        offset adds it (:meth:`NEENet.grid_offset`); tower rows pass neither.
        """
        X_raw = np.asarray(X_raw, dtype=np.float32)
        igbp = np.array(igbp, dtype=np.int64)  # a writable copy for torch.from_numpy
        if X_raw.ndim != 2 or X_raw.shape[1] != len(self.feature_names):
            raise InputError(f"feature array of shape {X_raw.shape}", variable="X",
                             expected=f"(n, {len(self.feature_names)}) columns "
                                      f"{', '.join(self.feature_names)}")
        if igbp.shape != (X_raw.shape[0],):
            raise InputError(f"igbp of shape {igbp.shape}", variable="igbp",
                             expected=f"({X_raw.shape[0]},)")
        if self.kind != "nn":
            return predict_baseline(self.estimator, X_raw, igbp)
        dev = torch.device(device) if device is not None else default_device()
        net: NEENet = self.estimator
        was_training = net.training
        net.eval()
        net.to(dev)
        out = np.empty(X_raw.shape[0], dtype=np.float32)
        try:
            with torch.no_grad():
                for start in range(0, X_raw.shape[0], self.batch_size):
                    stop = start + self.batch_size
                    x = torch.from_numpy(self.normaliser.transform(X_raw[start:stop])).to(dev)
                    c = torch.from_numpy(igbp[start:stop]).to(dev)
                    pred = net(x, c)
                    if region is not None and dayofyear is not None:
                        pred = pred + net.grid_offset(
                            torch.as_tensor(np.asarray(region[start:stop], dtype=np.int64),
                                            device=dev),
                            torch.as_tensor(np.asarray(dayofyear[start:stop]), device=dev))
                    out[start:stop] = pred.float().cpu().numpy()
        finally:
            net.train(was_training)
        return out

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """NEE [g m-2 d-1] float32 for each row of a samples table (see ``site_samples``)."""
        missing = [f for f in self.feature_names if f not in df.columns]
        if missing:
            raise InputError("samples lack feature columns", variable=", ".join(missing),
                             expected=f"columns {', '.join(self.feature_names)}")
        X = df[self.feature_names].to_numpy(dtype=np.float32, na_value=np.nan)
        if "igbp_code" in df.columns:
            igbp = df["igbp_code"].to_numpy(dtype=np.int64)
        elif "igbp" in df.columns:
            igbp = igbp_codes(df["igbp"], "samples table")
        else:
            raise InputError("samples lack the vegetation class", variable="igbp_code",
                             expected="an igbp_code or igbp column")
        return self.predict_arrays(X, igbp)

    def predict_dataset(self, ds: xr.Dataset) -> xr.DataArray:
        """Gridded NEE from a canonical predictors dataset or a chunk of it
        (:func:`fluxbridge.models.predict.predict_grid`).

        Parameters
        ----------
        ds
            Predictors (time, lat, lon) including static ``land_cover`` (lat, lon) and, for
            networks with a grid offset, ``region`` (lat, lon); ``sw_in_pot`` is computed when
            absent.

        Returns
        -------
        xr.DataArray
            ``nee`` (time, lat, lon) float32 [g m-2 d-1], positive upward; NaN where a
            predictor is NaN or the land cover is water (0).
        """
        nee = predict_grid(self, ds).isel(member=0)
        nee.attrs.update(model=self.name, model_kind=self.kind)
        return nee

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to one file (atomically); returns the path."""
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "name": self.name,
            "feature_names": list(self.feature_names),
            "units": self.units,
            "normaliser": None if self.normaliser is None else self.normaliser.to_dict(),
            "config": json.dumps(self.config, default=str, sort_keys=True),
            "provenance": json.dumps(self.provenance, default=str, sort_keys=True),
            "batch_size": int(self.batch_size),
        }
        if self.kind == "nn":
            payload["arch"] = dict(self.estimator.arch)
            payload["state_dict"] = {k: v.detach().cpu().clone()
                                     for k, v in self.estimator.state_dict().items()}
        else:
            payload["baseline"] = _baseline_state(self.estimator)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        logger.debug("saved %s model %r to %s", self.kind, self.name, path)
        return Path(path)


def load_model(path: str | os.PathLike[str]) -> FittedModel:
    """Read a model written by :meth:`FittedModel.save`.

    Loading runs no code from the file (``torch.load(weights_only=True)``). A file of another
    schema version, a corrupted or tampered file raises :class:`InputError`.
    """
    where = str(path)
    payload = read_torch_file(path, expected="a fluxbridge model file (FittedModel.save)")
    if not isinstance(payload, dict) or "schema_version" not in payload:
        raise InputError("not a fluxbridge model file", path=where, variable="schema_version",
                         expected="a file written by FittedModel.save")
    if payload["schema_version"] != SCHEMA_VERSION:
        raise InputError(f"model schema version {payload['schema_version']!r}", path=where,
                         variable="schema_version", expected=f"version {SCHEMA_VERSION}")
    try:
        kind = payload["kind"]
        normaliser = (None if payload["normaliser"] is None
                      else Normaliser.from_dict(payload["normaliser"]))
        if kind == "nn":
            net = NEENet(**payload["arch"])
            net.load_state_dict(payload["state_dict"])
            net.eval()
            estimator: Any = net
        elif kind in ("rf", "xgboost"):
            estimator = _baseline_from_state(payload["baseline"], kind)
        else:
            raise InputError(f"unknown model kind {kind!r}", path=where, variable="kind",
                             expected=" or ".join(KINDS))
        return FittedModel(
            kind=kind,
            feature_names=[str(f) for f in payload["feature_names"]],
            normaliser=normaliser,
            estimator=estimator,
            config=json.loads(payload["config"]),
            provenance=json.loads(payload["provenance"]),
            name=str(payload["name"]),
            batch_size=int(payload.get("batch_size", 32_768)),
        )
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.detail, path=where, variable=exc.variable,
                             expected=exc.expected) from exc
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"malformed model file ({type(exc).__name__}: {exc})", path=where,
                         expected="a complete file written by FittedModel.save") from exc


def _baseline_state(est: Baseline) -> dict[str, Any]:
    state: dict[str, Any] = {
        "n_features": int(est.n_features),
        "n_classes": int(est.n_classes),
        "impute_mean": None if est.impute_mean is None else torch.from_numpy(
            np.asarray(est.impute_mean, dtype=np.float32).copy()),
    }
    if est.kind == "xgboost":
        state["booster_json"] = bytes(est.model.get_booster().save_raw(raw_format="json"))
    else:
        state["trees"] = [_tree_state(t.tree_) for t in est.model.estimators_]
        state["n_design"] = int(est.model.n_features_in_)
    return state


def _tree_state(tree: Any) -> dict[str, Any]:
    s = tree.__getstate__()
    nodes = s["nodes"]
    return {
        "max_depth": int(s["max_depth"]),
        "node_count": int(s["node_count"]),
        "nodes": {name: torch.from_numpy(np.ascontiguousarray(nodes[name]))
                  for name in nodes.dtype.names},
        "values": torch.from_numpy(np.ascontiguousarray(s["values"])),
    }


def _baseline_from_state(state: dict[str, Any], kind: str) -> Baseline:
    mean = state["impute_mean"]
    impute = None if mean is None else mean.numpy().astype(np.float32)
    if kind == "xgboost":
        import xgboost

        model = xgboost.XGBRegressor()
        model.load_model(bytearray(state["booster_json"]))
    else:
        model = _rebuild_forest(state["trees"], int(state["n_design"]))
    return Baseline(kind, model, int(state["n_features"]), impute_mean=impute,
                    n_classes=int(state["n_classes"]))


def _rebuild_forest(trees: list[dict[str, Any]], n_design: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor
    from sklearn.tree._tree import NODE_DTYPE, Tree

    estimators = []
    for t in trees:
        count = int(t["node_count"])
        nodes = np.zeros(count, dtype=NODE_DTYPE)
        for name in NODE_DTYPE.names:
            if name not in t["nodes"]:
                raise ValueError(f"tree node field {name!r} missing (saved by another sklearn)")
            nodes[name] = t["nodes"][name].numpy()
        values = np.ascontiguousarray(t["values"].numpy(), dtype=np.float64)
        tree = Tree(n_design, np.array([1], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": int(t["max_depth"]), "node_count": count,
                           "nodes": nodes, "values": values})
        dt = DecisionTreeRegressor()
        dt.tree_ = tree
        dt.n_features_in_ = n_design
        dt.n_outputs_ = 1
        dt.max_features_ = n_design
        estimators.append(dt)
    forest = RandomForestRegressor(n_estimators=len(estimators), n_jobs=1)
    forest.estimators_ = estimators
    forest.estimator_ = DecisionTreeRegressor()
    forest.n_features_in_ = n_design
    forest.n_outputs_ = 1
    return forest
