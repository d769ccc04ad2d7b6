"""Input roles: what each accepts, and the files an experiment's ``inputs:`` mapping names.

Each role takes a path, a glob pattern, or a list of them, relative to the file naming them;
:func:`resolve_inputs` turns the mapping into absolute files and refuses unknown roles, missing
files and patterns that match nothing. The region role also accepts a built-in region set
(``builtin:latitude_bands``), which names no file.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fluxbridge.errors import ConfigError, InputError
from fluxbridge.io.safefiles import check_link
from fluxbridge.yamlconfig import read_yaml

BUILTIN = "builtin:"
"""Prefix of a built-in region set in the ``regions`` role."""
METEOROLOGY_ROLES = ("meteorology", "climatology")
"""Roles of which an experiment names exactly one: they fix the model grid and period."""

PathSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""A path, a glob pattern, or a list of them."""


@dataclass(frozen=True)
class Role:
    """One kind of input.

    Attributes
    ----------
    many
        Whether the role takes a list of files (else exactly one).
    required
        Whether every experiment must name it.
    accepts
        What the role accepts, for messages and docs.
    """

    many: bool
    required: bool
    accepts: str


ROLES: dict[str, Role] = {
    "sites": Role(True, True, "FLUXNET-family site CSV or zip files"),
    "site_table": Role(True, True, "site metadata tables (FLUXNET BIF or a site list)"),
    "meteorology": Role(True, False, "ERA5 single-level NetCDF files (or a CDS zip)"),
    "climatology": Role(True, False, "NOAA PSL monthly or long-term-mean NetCDF files (NCEP/NCAR "
                        "R1 air, CMAP precip, GHCN-CAMS air)"),
    "remote_sensing": Role(True, False, "MODIS composite NetCDF files (VI, LST)"),
    "vegetation_layers": Role(True, False, "static global GeoTIFF layers: NDVI_maximum, "
                              "NDVI_minimum, C4_fraction, Köppen-Geiger KG_*"),
    "land_cover": Role(False, True, "an IGBP land cover NetCDF or GeoTIFF (MCD12-like)"),
    "inversions": Role(True, True, "inversion files, one per member: gridded flux NetCDF, "
                       "GCB regional tables ({MODEL}_month.nc) or zonal integrals "
                       "({MODEL}_fluxes_za_ts_monthly.nc)"),
    "corrections": Role(False, False, "a CSV of correction terms (region, time, *_tgc)"),
    "regions": Role(False, True, f"a NetCDF integer region mask, or {BUILTIN}<set> with a set "
                    "among transcom_like, latitude_bands"),
    "truth_grid": Role(False, False, "the twin world's true NEE NetCDF"),
    "truth_regional": Role(False, False, "the twin world's true regional totals CSV"),
    "footprints": Role(True, False, "STILT footprint NetCDF files, one per tower receptor"),
    "tower_co2": Role(True, False, "NOAA ObsPack tower CO2 NetCDF files"),
    "tower_priors": Role(False, False, "a CSV of tower backgrounds and fossil and ocean "
                                       "enhancements (site, time, background_ppm, ...)"),
}
"""Input roles: whether each takes a list, whether it is required, what it accepts."""

_GLOB_CHARS = frozenset("*?[")


def _expand(role: str, pattern: str | os.PathLike[str], base: Path) -> list[Path]:
    """The files one path or glob pattern names, sorted; an error when there are none."""
    text = os.path.expanduser(os.fspath(pattern))
    full = Path(text) if Path(text).is_absolute() else base / text
    if _GLOB_CHARS & set(text):
        found = sorted(Path(p) for p in glob.glob(os.fspath(full), recursive=True))
        for path in found:
            check_link(path, f"inputs.{role}")
        files = [p for p in found if p.is_file()]
        if not files:
            folder = next((p for p in full.parents if not _GLOB_CHARS & set(p.name)), base)
            raise InputError(f"pattern {os.fspath(pattern)!r} matches no file in {folder}",
                             variable=f"inputs.{role}", expected=ROLES[role].accepts)
        return [p.resolve() for p in files]
    check_link(full, f"inputs.{role}")
    if not full.is_file():
        raise InputError("file not found", path=full, variable=f"inputs.{role}",
                         expected=ROLES[role].accepts)
    return [full.resolve()]


def _resolve_role(role: str, value: PathSpec, base: Path) -> Path | list[Path]:
    patterns = [value] if isinstance(value, str | os.PathLike) else list(value)
    files = list(dict.fromkeys(f for p in patterns for f in _expand(role, p, base)))
    if ROLES[role].many:
        if not files and ROLES[role].required:
            raise InputError("no file given", variable=f"inputs.{role}",
                             expected=ROLES[role].accepts)
        return files
    if len(files) != 1:
        raise InputError(f"the role takes one file; {value!r} names {len(files)} in {base}",
                         variable=f"inputs.{role}", expected=ROLES[role].accepts)
    return files[0]


def resolve_inputs(spec: Mapping[str, PathSpec | None], base: str | os.PathLike[str]
                   ) -> dict[str, Path | list[Path]]:
    """The files of each input role: globs expanded and sorted, paths made absolute.

    Parameters
    ----------
    spec
        Role → a path, a glob pattern, or a list of them (see :data:`ROLES`); optional roles
        may be left out or null.
    base
        Folder that relative paths and patterns are relative to (that of the file naming them).

    Returns
    -------
    dict
        Role → absolute path (single roles) or list of absolute paths (list roles).

    Raises
    ------
    InputError
        An unknown or missing role (naming the known ones), a missing file, a pattern that
        matches nothing (naming the pattern and the folder), or several files for a single role.
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"inputs are a {type(spec).__name__}", variable="inputs",
                         expected="a mapping of input roles to paths or glob patterns")
    unknown = sorted(str(r) for r in spec if r not in ROLES)
    if unknown:
        raise InputError(f"unknown input role(s) {unknown}", variable=f"inputs.{unknown[0]}",
                         expected=f"roles among {', '.join(ROLES)}")
    missing = [r for r, role in ROLES.items() if role.required and spec.get(r) is None]
    if missing:
        raise InputError(f"no input for role(s) {missing}", variable=f"inputs.{missing[0]}",
                         expected=f"{missing[0]}: {ROLES[missing[0]].accepts}")
    given = [r for r in METEOROLOGY_ROLES if spec.get(r) is not None]
    if len(given) != 1:
        raise InputError(f"{len(given)} of the roles {list(METEOROLOGY_ROLES)} given",
                         variable=f"inputs.{(given or list(METEOROLOGY_ROLES))[-1]}",
                         expected="exactly one: ERA5 meteorology, or PSL climatologies")
    base, builtin = Path(base), builtin_region_set(spec)
    return {r: _resolve_role(r, v, base) for r, v in spec.items()
            if v is not None and not (r == "regions" and builtin is not None)}


def builtin_region_set(spec: Mapping[str, PathSpec | None]) -> str | None:
    """The built-in region set the ``regions`` role names (``builtin:<set>``), else None."""
    value = spec.get("regions")
    if isinstance(value, str) and value.startswith(BUILTIN):
        return value.removeprefix(BUILTIN)
    return None


def read_inputs_file(path: str | os.PathLike[str]) -> dict[str, PathSpec]:
    """The inputs mapping of a YAML file that holds just that mapping (role: path or glob).

    Raises
    ------
    ConfigError
        If the file is missing, not valid YAML, or not a mapping of roles to paths.
    """
    data = read_yaml(path, expected="a YAML mapping of input roles to paths or glob patterns")
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping of input roles", path=path,
                          expected=f"keys among {', '.join(ROLES)}")
    for role, value in data.items():
        items = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, str) for v in items):
            raise ConfigError(f"role {role!r} holds {value!r}", path=path,
                              variable=f"inputs.{role}",
                              expected="a path, a glob pattern, or a list of them")
    return data
