"""Typed experiment configuration, validated once at the edge.

One YAML file describes an experiment (``fluxbridge init`` writes a commented template). It is
read with ``yaml.safe_load`` and validated into :class:`ExperimentConfig`; errors name the key,
the value and what is allowed. Paths are resolved relative to the YAML file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluxbridge.errors import ConfigError
from fluxbridge.features import FEATURES
from fluxbridge.yamlconfig import read_yaml, validate

TEMPLATE_NAME = "experiment.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldSection(_Strict):
    """Where the data come from: a twin world (synthesised on demand) or files laid out alike."""

    manifest: Path = Field(Path("world/manifest.json"),
                           description="manifest.json of the world (relative to out_dir)")
    synthesize: bool = Field(True, description="write the twin world first if it is absent")
    config: Path | None = Field(None, description="world YAML; None = the demo world")
    seed: int = 0


class NetworkSection(_Strict):
    """The torch network and its optimisation."""

    width: int = Field(64, ge=4, le=4096)
    depth: int = Field(3, ge=1, le=16)
    activation: Literal["silu", "relu", "gelu", "tanh"] = "silu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    embed_dim: int = Field(4, ge=0, le=64)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(2048, ge=16)
    epochs: int = Field(30, ge=1)
    patience: int = Field(6, ge=1)
    n_ensemble: int = Field(1, ge=1, le=64)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ConstraintSection(_Strict):
    """The inversion constraint: the second loss term and its observation-operator estimator."""

    lambda_regional: float = Field(1.0, ge=0.0, description="weight λ of the regional term")
    estimator: Literal["exact", "fixed", "resampled", "control_variate"] = "control_variate"
    K: int = Field(64, ge=1, description="cell-days sampled per region-month")
    sampling: Literal["uniform", "area", "stratified"] = "area"
    refresh_every: int = Field(0, ge=0, description="epochs between control-variate "
                               "refreshes (0: refreshed only when refresh_std asks)")
    refresh_std: float = Field(
        0.1, ge=0.0, description="refresh the control-variate cache when the draws' own "
        "estimate of the regional estimates' standard deviation, averaged over the last 20 "
        "steps, exceeds this many σ (or this share of the rms regional misfit while that is "
        "larger) and sqrt(2) times the cache's own floor; 0: never within an epoch")
    cache_features: Literal["daily", "monthly"] = Field(
        "daily", description="control-variate cache entries made of cell-days (daily) or of "
        "cells' monthly means (monthly)")
    cache_group_size: int | None = Field(
        None, ge=1, description="cell-days (daily: of one vegetation class and month) or "
        "(month, cell) pairs (monthly: of one class) with similar predictors share one "
        "control-variate cache entry, at most this many (a k-d partition of the standardised "
        "predictors); 1: each its own (daily 1: the cache is the model itself); null: 64 at "
        "2 degrees, growing with the grid's linear resolution (256 at 0.5 degrees)")
    cache_linear: bool = Field(
        True, description="first-order control-variate cache: the group value plus the "
        "network's input gradient times each cell-day's departure from the group mean")
    cache_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="precision of the control-variate cache refresh: bfloat16 is about "
        "twice as fast where the device computes it natively and adds a spread of about "
        "0.2 % of the flux (the estimate stays unbiased whatever the cache); auto: bfloat16 "
        "there, float32 elsewhere")
    cache_drift: bool = Field(
        True, description="correct the control-variate cache for the network's drift since "
        "its refresh: a linear function of the inputs per vegetation class, fitted at every "
        "step to the network's change at fixed probe cell-days, its totals exact (the estimate "
        "stays unbiased; its spread falls, and the cache lasts longer)")
    grid_offset: bool = Field(True, description="learn a per-region offset of grid cells "
                              "(what towers in undisturbed stands cannot see)")
    offset_harmonics: int = Field(1, ge=0, le=4, description="seasonal harmonics of the grid "
                                  "offset (1: annual; 2: annual and semiannual)")
    offset_lr_factor: float = Field(5.0, gt=0, description="learning rate of the offsets "
                                    "relative to the network's")
    offset_fit_K: int = Field(512, ge=0, description="after training, fit the grid offsets by "
                              "σ-weighted least squares with the network held fixed, its regional "
                              "totals estimated by the training estimator with about this many "
                              "cell-days per region-month (0: keep the offsets of the last step)")
    offset_match_totals: bool = Field(True, description="the least-squares offset fit matches "
                                      "each region's total over its target months exactly (the "
                                      "σ-weighted fit shapes the season)")
    regional_to_network: float = Field(0.05, ge=0, le=1, description="share of the regional "
                                       "gradient reaching the network when offsets are learned")
    obs_per_step: int = Field(32, ge=1, description="region-months per training step")
    square: Literal["plain", "unbiased"] = "unbiased"
    sigma_floor: float = Field(0.5, ge=0.0,
                               description="floor of σ as a fraction of the median spread")


class BaselineSection(_Strict):
    """FLUXCOM-style site-only baselines."""

    random_forest: bool = True
    xgboost: bool = True
    rf_n_estimators: int = Field(100, ge=1)
    rf_min_samples_leaf: int = Field(5, ge=1)
    rf_max_features: float = Field(0.5, gt=0, le=1)
    rf_max_samples: float | None = Field(0.5, gt=0, le=1)
    xgb_n_estimators: int = Field(300, ge=1)
    xgb_max_depth: int = Field(6, ge=1)
    xgb_learning_rate: float = Field(0.05, gt=0)
    n_jobs: int = Field(-1, description="threads of the baselines; -1 = every core")


class ValidationSection(_Strict):
    """Cross-validation and the leave-region-out test."""

    folds: int = Field(5, ge=2, le=50)
    split: Literal["site", "spatial"] = "site"
    leave_region_out: bool = Field(
        True, description="withhold each region's constraint in turn and score that region "
        "(one dual-model training per region; needs lambda_regional > 0)")


class UpscalingSection(_Strict):
    """Gridded inference on dask."""

    scheduler: str | None = Field(None, description="dask scheduler address; None = LocalCluster")
    n_workers: int = Field(1, ge=1)
    time_chunk: int = Field(92, ge=1, description="days per chunk")
    format: Literal["netcdf", "zarr"] = "netcdf"


class ExperimentConfig(_Strict):
    """A whole experiment: data, features, models, constraint, validation, upscaling."""

    name: str = "twin-world"
    out_dir: Path = Field(Path("."), description="run directory (relative to the YAML file)")
    seed: int = 0
    world: WorldSection = WorldSection()
    features: tuple[str, ...] = FEATURES
    meteo_from: Literal["site", "grid"] = "site"
    network: NetworkSection = NetworkSection()
    constraint: ConstraintSection = ConstraintSection()
    baselines: BaselineSection = BaselineSection()
    validation: ValidationSection = ValidationSection()
    upscaling: UpscalingSection = UpscalingSection()
    sparsity_study: bool = Field(False, description="train the dual model with every estimator "
                                 "and K (slow); off: the report shows the committed result of "
                                 "benchmarks/sparsity.py when it is found")
    progress: bool = True

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from fluxbridge.vocabulary import VARIABLES

        unknown = [v for v in value if v not in VARIABLES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(VARIABLES)}")
        if not value:
            raise ValueError("at least one feature is needed")
        return value

    def resolve(self, base: Path) -> ExperimentConfig:
        """Return a copy with relative paths made absolute against ``base``."""
        out_dir = (base / self.out_dir).resolve()
        manifest = self.world.manifest
        world = self.world.model_copy(update={
            "manifest": manifest if manifest.is_absolute() else out_dir / manifest,
            "config": None if self.world.config is None
            else (self.world.config if self.world.config.is_absolute()
                  else (base / self.world.config).resolve()),
        })
        return self.model_copy(update={"out_dir": out_dir, "world": world})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the configuration."""
        return self.model_dump(mode="json")


def parse_config(data: dict[str, Any] | None, path: Path | None = None) -> ExperimentConfig:
    """Validate a configuration mapping (from YAML) into :class:`ExperimentConfig`.

    Parameters
    ----------
    data
        Parsed YAML; None or empty gives the defaults.
    path
        The YAML file, used in error messages and to resolve relative paths.
    """
    cfg = validate(ExperimentConfig, data, path, "'name', 'network'")
    base = path.parent if path is not None else Path.cwd()
    return cfg.resolve(base)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file (``yaml.safe_load``)."""
    path = Path(path)
    data = read_yaml(path, "a YAML file (write one with `fluxbridge init FILE`)")
    return parse_config(data, path)


def template_text() -> str:
    """The commented experiment template shipped with the package."""
    return resources.files("fluxbridge.templates").joinpath(TEMPLATE_NAME).read_text()


def write_template(path: str | Path, overwrite: bool = False) -> Path:
    """Write the commented twin-world experiment template to ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError("file exists; pass --overwrite to replace it", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template_text())
    return path
