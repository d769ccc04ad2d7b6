"""The experiment configuration: one typed schema, validated once at the edge.

One YAML file describes an experiment (``fluxbridge init`` writes a template). It is read with
``yaml.safe_load`` and validated into :class:`ExperimentConfig`; errors name the key, the value
and what is allowed. Relative paths resolve against the YAML file.

The sections hold what a scientist decides (inputs, features, network size, the constraint's
λ, estimator and K, validation, upscaling). Estimator and optimiser internals live in
:class:`Tuning` (the ``tuning:`` section), whose defaults the template does not list; each
knob is described in ``docs/method.md``. Library functions take these objects directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluxbridge.errors import ConfigError
from fluxbridge.features import DEFAULT_FEATURES
from fluxbridge.io.roles import BUILTIN
from fluxbridge.tuning import Tuning
from fluxbridge.yamlconfig import load_yaml, packaged_template, validate

TEMPLATE_NAME = "experiment.yaml"
DATA_DIR = "{data_dir}"
"""Placeholder of input paths for the experiment's ``data_dir``."""
Paths = str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorldSection(_Strict):
    """A twin world to synthesise (when absent) and run on."""

    dir: Path = Field(Path("world"), description="folder of the twin world")
    config: Path | None = Field(None, description="world YAML; None = the standard twin world "
                                "(fluxbridge/templates/world.yaml)")
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
    """The inversion constraint: the regional loss term and its observation-operator estimator."""

    lambda_regional: float = Field(1.0, ge=0.0, description="weight λ of the regional term")
    lambda_footprint: float = Field(
        1.0, ge=0.0, description="weight of the tower footprint term, used when tower "
        "observations are given (0: off); 1 weighs a receptor's misfit in units of its own σ² "
        "as a region-month's in its σ²")
    compare_tower_terms: bool = Field(
        True, description="with tower observations and both terms on, also train (once, on "
        "every site) a network with the footprint term alone and one with the regional term "
        "alone, and report what the footprints add; false: only the site-only and dual "
        "networks")
    estimator: Literal["exact", "fixed", "resampled", "control_variate"] = "control_variate"
    K: int = Field(64, ge=1, description="cell-days sampled per region-month")
    sampling: Literal["uniform", "area", "stratified"] = "area"
    correction: Literal["hierarchical", "region", "none"] = Field(
        "hierarchical", description="grid-cell correction for what towers in undisturbed "
        "stands cannot see: per-region offsets shrunk toward their shared mean, which also "
        "corrects regions without targets (hierarchical); per-region offsets only (region); "
        "none, the network alone takes the regional gradient")
    sigma_floor: float = Field(0.5, ge=0.0,
                               description="floor of σ as a fraction of the median spread")


class BaselineSection(_Strict):
    """The models the dual one is compared with: FLUXCOM-style trees on the towers alone
    (their hyperparameters: ``tuning.baselines``) and the published setting of the
    constraint."""

    random_forest: bool = True
    xgboost: bool = True
    published: bool = Field(
        True, description="the published constraint (Upton et al. 2024): the network itself "
        "constrained, no grid correction, one fixed draw of K cell-days per region-month; "
        "cross-validated, upscaled and scored beside the dual model (needs lambda_regional > 0)")


class ValidationSection(_Strict):
    """Cross-validation and the leave-region-out test."""

    folds: int = Field(5, ge=2, le=50)
    split: Literal["site", "spatial"] = "site"
    leave_region_out: bool = Field(
        True, description="withhold each region's constraint in turn and score that region "
        "(one dual-model training per region; needs lambda_regional > 0)")
    leave_region_out_regions: tuple[str, ...] | None = Field(
        None, description="names of the regions withheld, one at a time; None: every region "
        "with inversion targets")
    sparsity_study: bool = Field(False, description="train the dual model with every "
                                 "estimator and K (slow)")


class UpscalingSection(_Strict):
    """Gridded inference on dask."""

    scheduler: str | None = Field(None, description="dask scheduler address; None = LocalCluster")
    n_workers: int = Field(1, ge=1)
    time_chunk: int = Field(92, ge=1, description="days per chunk")
    format: Literal["netcdf", "zarr"] = "netcdf"


class ExperimentConfig(_Strict):
    """A whole experiment: inputs, features, models, constraint, validation, upscaling."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100,
                      description="name of the experiment (a folder name)")
    out_dir: Path | None = Field(None, description="run directory (relative to the YAML file); "
                                 "None = runs/<name> beside it")
    seed: int = 0
    world: WorldSection | None = Field(None, description="synthesise this twin world first")
    data_dir: Path | None = Field(
        None, description="a data folder (relative to the YAML file) that input paths name "
        "as {data_dir}, so that one experiment runs on copies of the data anywhere")
    inputs: dict[str, Paths] | Path | None = Field(
        None, description="every input by role (paths or globs), or a YAML file holding that "
        "mapping; None with a world: the world's inputs.yaml")
    time_step: Literal["DD", "MM"] = Field(
        "DD", description="model time step: daily, or monthly (needed by climatologies)")
    resolution_deg: float = Field(
        2.0, gt=0, le=10, description="model grid spacing [degree] where no ERA5 meteorology "
        "fixes the grid (PSL climatologies, built-in regions); must divide 180")
    targets_years: tuple[int, int] | None = Field(
        None, description="first and last year of the inversions averaged into a mean "
        "seasonal cycle when the predictors are a climatology; None: every year all members "
        "cover")
    features: tuple[str, ...] = DEFAULT_FEATURES
    meteo_from: Literal["site", "grid"] = Field(
        "site", description="site meteorology from the tower files (site), or the gridded "
        "predictors at the towers (grid), so that training and upscaling see the same inputs")
    network: NetworkSection = NetworkSection()
    constraint: ConstraintSection = ConstraintSection()
    baselines: BaselineSection = BaselineSection()
    validation: ValidationSection = ValidationSection()
    upscaling: UpscalingSection = UpscalingSection()
    tuning: Tuning = Tuning()
    progress: bool = True

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from fluxbridge.location import location_source
        from fluxbridge.vocabulary import VARIABLES

        unknown = [v for v in value if (location_source(v) or (v,))[0] not in VARIABLES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(VARIABLES)}, and "
                             "<name>_site_mean or <name>_msc of any of them")
        if not value:
            raise ValueError("at least one feature is needed")
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"feature(s) listed twice: {twice}")
        return value

    @property
    def constrained(self) -> bool:
        """Whether the regional term is on (λ > 0)."""
        return self.constraint.lambda_regional > 0

    def with_lambda(self, lambda_regional: float) -> ExperimentConfig:
        """A copy with the regional term's weight λ replaced (0: the site-only model)."""
        return self.model_copy(update={"constraint": self.constraint.model_copy(
            update={"lambda_regional": lambda_regional})})

    def with_seed(self, seed: int) -> ExperimentConfig:
        """A copy with another seed (ensemble members, folds)."""
        return self.model_copy(update={"seed": seed})

    def training_key(self) -> str:
        """JSON of everything that decides how a model trains (checkpoints must match it)."""
        return json.dumps(self.model_dump(mode="json", include={
            "seed", "features", "meteo_from", "network", "constraint", "tuning"},
            exclude={"constraint": {"compare_tower_terms"}}),
            sort_keys=True)

    def input_options(self) -> dict[str, Any]:
        """The settings :func:`fluxbridge.io.inputs.open_inputs` reads the inputs with."""
        return {"time_step": self.time_step, "resolution_deg": self.resolution_deg,
                "targets_years": self.targets_years, "features": self.features}

    def input_spec(self) -> tuple[dict[str, Paths] | Path, Path]:
        """The inputs mapping (or the YAML file holding it) and the folder its relative
        paths resolve against."""
        if isinstance(self.inputs, dict):  # made absolute by resolve()
            return self.inputs, Path.cwd()
        if self.inputs is not None:
            return self.inputs, self.inputs.parent
        if self.world is not None:
            return self.world.dir / "inputs.yaml", self.world.dir
        raise ConfigError("the experiment names no inputs", variable="inputs",
                          expected="an inputs: section (role: path or glob) or a world: section")

    def resolve(self, base: Path) -> ExperimentConfig:
        """A copy with relative paths made absolute against ``base`` (an inputs mapping's
        paths stay relative, and are resolved against ``base`` when opened)."""
        def absolute(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else (base / p).resolve())

        update: dict[str, Any] = {"out_dir": absolute(self.out_dir or Path("runs", self.name))}
        if self.world is not None:
            update["world"] = self.world.model_copy(update={
                "dir": absolute(self.world.dir), "config": absolute(self.world.config)})
        data_dir = absolute(self.data_dir)
        if isinstance(self.inputs, dict):
            update["inputs"] = {role: _absolute_patterns(v, base, data_dir)
                                for role, v in self.inputs.items()}
            update["data_dir"] = data_dir
        elif self.inputs is not None:
            update["inputs"] = absolute(self.inputs)
        return self.model_copy(update=update)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the configuration."""
        return self.model_dump(mode="json")


def _absolute_patterns(value: Paths, base: Path, data_dir: Path | None) -> Paths:
    """Path or glob pattern(s) made absolute against ``base``, ``{data_dir}`` replaced."""
    if isinstance(value, list):
        return [_absolute_patterns(p, base, data_dir) for p in value]
    if DATA_DIR in value:
        if data_dir is None:
            raise ConfigError(f"{value!r} names {DATA_DIR} but no data_dir is set",
                              variable="data_dir", expected="a data_dir: folder")
        value = value.replace(DATA_DIR, str(data_dir))
    if Path(value).is_absolute() or value.startswith(BUILTIN):
        return value
    return str(base / value)


def parse_config(data: dict[str, Any] | None, path: Path | None = None) -> ExperimentConfig:
    """Validate a configuration mapping (from YAML) into :class:`ExperimentConfig`.

    Parameters
    ----------
    data
        Parsed YAML; None or empty gives the defaults.
    path
        The YAML file, used in error messages and to resolve relative paths.
    """
    cfg = validate(ExperimentConfig, data, path, "'name', 'inputs', 'network'")
    base = path.parent.resolve() if path is not None else Path.cwd()
    return cfg.resolve(base)


def load_config(path: str | Path, data_dir: str | Path | None = None) -> ExperimentConfig:
    """Read and validate an experiment YAML file (``yaml.safe_load``).

    Parameters
    ----------
    path
        The experiment YAML.
    data_dir
        Replaces the file's ``data_dir`` (relative to the current directory), e.g. a copy of
        the data elsewhere.
    """
    def parse(data: Any, where: Path) -> ExperimentConfig:
        if data_dir is not None and isinstance(data, dict):
            data = {**data, "data_dir": str(Path(data_dir).resolve())}
        return parse_config(data, where)

    return load_yaml(path, "a YAML file (write one with `fluxbridge init FILE`)", parse)


def template_text() -> str:
    """The experiment template shipped with the package."""
    return packaged_template(TEMPLATE_NAME)


def write_template(path: str | Path, overwrite: bool = False) -> Path:
    """Write the twin-world experiment template to ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError("file exists; pass --overwrite to replace it", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template_text())
    return path
