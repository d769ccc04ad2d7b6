"""Configuration of the twin world, validated once at the edge (YAML → :class:`WorldConfig`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fluxbridge.yamlconfig import load_yaml, packaged_template, validate

TEMPLATE_NAME = "world.yaml"

DEFAULT_SITE_DENSITY: dict[str, float] = {
    "Europe": 12.0,
    "North American Temperate": 8.0,
    "North American Boreal": 1.5,
    "Eurasia Temperate": 1.5,
    "Eurasia Boreal": 0.6,
    "Australia": 2.0,
    "South American Tropical": 0.5,
    "South American Temperate": 0.7,
    "Northern Africa": 0.2,
    "Southern Africa": 0.5,
    "Tropical Asia": 0.5,
}
"""Relative tower density per unit land area by region: FLUXNET's clustering."""


class WorldConfig(BaseModel):
    """Everything that shapes a twin world; the standard world (the full experiment's) is the
    default.

    Units: fluxes in PgC yr-1 (global), noise in gC m-2 d-1.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    resolution_deg: float = Field(2.0, gt=0, le=30, description="grid cell size [degree]")
    start_year: int = Field(2010, ge=1950, le=2100)
    n_years: int = Field(5, ge=1, le=50)
    n_sites: int = Field(160, ge=1, le=5000)
    n_members: int = Field(8, ge=2, le=64)
    seed: int = Field(0, ge=0)
    site_years_min: int = Field(2, ge=1)
    site_years_max: int = Field(5, ge=1)
    site_density: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SITE_DENSITY))
    site_legacy_avoidance: float = Field(
        0.33, gt=0, description="scale [gC m-2 d-1] of exp(-L/scale) in the tower placement")
    legacy_strength: float = Field(1.3, ge=0, description="multiplier of the hidden legacy field")
    mature_sink_fraction: float = Field(
        0.05, ge=-0.5, le=0.5, description="annual (GPP - RECO) / GPP before the legacy")
    fire_pgc: float = Field(1.8, ge=0, description="global fire emissions [PgC yr-1]")
    river_pgc: float = Field(0.6, ge=0, description="inland-water outgassing [PgC yr-1]")
    trade_pgc: float = Field(0.5, ge=0,
                             description="crop and wood trade moved between regions [PgC yr-1]")
    nee_noise_a: float = Field(0.3, ge=0, description="tower noise sd intercept [gC m-2 d-1]")
    nee_noise_b: float = Field(0.15, ge=0, description="tower noise sd slope on |NEE| [1]")
    member_error: float = Field(
        0.12, ge=0, description="member-specific error sd, fraction of a region's seasonal scale")
    common_error: float = Field(
        0.04, ge=0, description="error shared by all members, fraction of the seasonal scale")

    n_towers: int = Field(0, ge=0, le=10, description="tall towers with CO2 mole fractions "
                          "and footprints (the first n of synthetic.towers.TOWERS)")
    tower_every_days: int = Field(7, ge=1, le=31, description="days between a tower's "
                                  "afternoon receptors")
    tower_noise_ppm: float = Field(1.0, ge=0, description="model-data mismatch noise sd of "
                                   "the towers' mole fractions [ppm]")

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if self.site_years_min > self.site_years_max:
            raise ValueError("site_years_min exceeds site_years_max")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the configuration."""
        return self.model_dump(mode="json")


def parse_world_config(data: dict[str, Any] | None, path: Path | None = None) -> WorldConfig:
    """Validate a mapping (from YAML) into :class:`WorldConfig`; errors name the key."""
    return validate(WorldConfig, data, path, "'resolution_deg', 'n_years'")


def load_world_config(path: str | Path) -> WorldConfig:
    """Read a world YAML file (``yaml.safe_load``) and validate it."""
    return load_yaml(path, "a YAML file like fluxbridge/templates/world.yaml",
                     parse_world_config)


def world_template_text() -> str:
    """The commented default world configuration shipped with the package."""
    return packaged_template(TEMPLATE_NAME)
