"""Every input of an experiment named by role, opened through the format readers and checked.

An experiment names each input by role (:data:`ROLES`) as a path, a glob pattern, or a list of
them, relative to the file that names them (the experiment YAML, or a separate inputs YAML such
as the twin world's ``inputs.yaml``). :func:`resolve_inputs` turns that mapping into files,
:func:`open_inputs` into a :class:`World` whose canonical datasets are read on first use, and
:meth:`World.check` opens and checks them all before any training. One code path for synthetic
and real files; docs/inputs.md describes what each role accepts.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import xarray as xr

from fluxbridge.errors import ConfigError, InputError, InputProblems
from fluxbridge.grid import check_same_grid
from fluxbridge.io.era5 import open_era5
from fluxbridge.io.fluxnet import read_sites
from fluxbridge.io.inversions import read_inversions
from fluxbridge.io.land_cover import read_land_cover
from fluxbridge.io.modis import open_modis
from fluxbridge.io.overlap import check_site_years, check_target_months
from fluxbridge.io.plausible import check_meteorology, check_site_values
from fluxbridge.io.region_masks import read_region_mask
from fluxbridge.io.safefiles import check_link
from fluxbridge.io.sitemeta import read_site_metadata
from fluxbridge.regions import region_names
from fluxbridge.schema import check_predictors, check_regions, check_sites, check_targets
from fluxbridge.yamlconfig import read_yaml

log = logging.getLogger(__name__)

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
    "meteorology": Role(True, True, "ERA5 single-level NetCDF files (or a CDS zip)"),
    "remote_sensing": Role(True, False, "MODIS composite NetCDF files (VI, LST)"),
    "land_cover": Role(False, True, "an IGBP land cover NetCDF or GeoTIFF (MCD12-like)"),
    "inversions": Role(True, True, "gridded inversion flux NetCDF files, one per member"),
    "corrections": Role(False, False, "a CSV of correction terms (region, time, *_tgc)"),
    "regions": Role(False, True, "a NetCDF integer region mask"),
    "truth_grid": Role(False, False, "the twin world's true NEE NetCDF"),
    "truth_regional": Role(False, False, "the twin world's true regional totals CSV"),
    "footprints": Role(True, False, "STILT footprint NetCDF files, one per tower receptor"),
    "tower_co2": Role(True, False, "NOAA ObsPack tower CO2 NetCDF files"),
    "tower_priors": Role(False, False, "a CSV of tower backgrounds and fossil and ocean "
                                       "enhancements (site, time, background_ppm, ...)"),
}
"""Input roles: whether each takes a list, whether it is required, what it accepts."""

ROLE_DATASETS = ("regions", "sites", "predictors", "targets")
"""The datasets every experiment reads (the truth only where it is given)."""

_DEPENDS = {"meteorology_values": ("meteorology",), "regions": ("meteorology",),
            "predictors": ("regions",), "targets": ("regions",),
            "truth_grid": ("regions",), "truth_regional": ("regions",),
            "overlap": ("sites", "predictors", "targets")}
"""The checks each check of :meth:`World.problems` needs to have passed."""

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
    base = Path(base)
    return {r: _resolve_role(r, v, base) for r, v in spec.items() if v is not None}


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


def open_inputs(spec: Mapping[str, PathSpec | None] | str | os.PathLike[str],
                base: str | os.PathLike[str] | None = None, time_step: str = "DD") -> World:
    """Open the inputs of an experiment (nothing is read until used; see :meth:`World.check`).

    Parameters
    ----------
    spec
        Role → path(s) or glob(s) (see :func:`resolve_inputs`), or a YAML file holding that
        mapping (:func:`read_inputs_file`).
    base
        Folder relative paths are relative to; by default the YAML file's folder, or the
        current directory for a mapping.
    time_step
        Model time step of the sites: ``DD``, ``8D`` or ``MM``.
    """
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        spec = read_inputs_file(path)
        base = path.parent if base is None else base
    base = Path.cwd() if base is None else Path(base)
    return World(files=resolve_inputs(spec, base), base=base, time_step=time_step)


def open_world(manifest_path: str | os.PathLike[str], time_step: str = "DD") -> World:
    """A twin world's inputs from its ``manifest.json`` (the files it wrote, by role).

    Raises
    ------
    InputError
        If the manifest is unreadable or names a file that does not exist.
    """
    path = Path(manifest_path)
    if not path.is_file():
        raise InputError("world manifest not found", path=path,
                         expected="manifest.json written by `fluxbridge synth`")
    try:
        files = json.loads(path.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"not a world manifest ({type(exc).__name__}: {exc})", path=path,
                         variable="files", expected="role → relative path(s)") from None
    return open_inputs(files, base=path.parent, time_step=time_step)


@dataclass
class World:
    """The canonical datasets of an experiment's inputs, each read on first use.

    The model grid is that of the meteorology: the region mask is carried onto it when it
    differs, a finer land cover is aggregated to it by majority, remote sensing must share it.

    Attributes
    ----------
    files
        Role → absolute path (single roles) or list of paths (list roles).
    base
        Folder the inputs were named relative to.
    time_step
        Model time step of the sites (``DD``, ``8D``, ``MM``).
    """

    files: dict[str, Path | list[Path]]
    base: Path
    time_step: str = "DD"

    def files_list(self) -> list[Path]:
        """Every input file."""
        out: list[Path] = []
        for value in self.files.values():
            out.extend(value if isinstance(value, list) else [value])
        return out

    @cached_property
    def meteorology(self) -> xr.Dataset:
        """Daily ERA5 predictors on their own grid (lazy), which is the model grid."""
        return open_era5(self.files["meteorology"])

    @cached_property
    def regions(self) -> xr.Dataset:
        """Canonical regions dataset on the model grid."""
        path = self.files["regions"]
        return check_regions(read_region_mask(path, grid=self.meteorology), where=str(path))

    @cached_property
    def sites(self) -> xr.Dataset:
        """Canonical sites dataset at the model time step."""
        meta = read_site_metadata(*self.files["site_table"])
        sites = check_sites(read_sites(self.files["sites"], meta, time_step=self.time_step))
        check_site_values(sites)
        return sites

    @cached_property
    def predictors(self) -> xr.Dataset:
        """Canonical daily predictors on the model grid, with static ``land_cover``."""
        regions = self.regions
        met = self.meteorology
        check_same_grid(met, regions, what="ERA5 grid and model grid",
                        path=met.attrs.get("source"))
        out = met.assign_coords(lat=regions["lat"].values, lon=regions["lon"].values)
        if self.files.get("remote_sensing"):
            rs = open_modis(self.files["remote_sensing"], times=pd.DatetimeIndex(
                out["time"].values), grid=regions)
            out = xr.merge([out, rs.assign_coords(time=out["time"])], join="left",
                           compat="override")
        out["land_cover"] = read_land_cover(self.files["land_cover"], grid=regions)
        out["land_fraction"] = regions["land_fraction"]
        out["region"] = regions["region"].assign_attrs(units="1")
        return check_predictors(out, regions, where=str(self.base))

    @cached_property
    def targets(self) -> xr.Dataset:
        """Corrected inversion ensemble (canonical targets)."""
        return check_targets(read_inversions(self.files["inversions"], self.regions,
                                             corrections=self.files.get("corrections")))

    @cached_property
    def truth_grid(self) -> xr.DataArray:
        """True daily NEE (time, lat, lon) [g m-2 d-1], lazily (twin world only)."""
        path = self._optional("truth_grid")
        try:
            da = xr.open_dataset(path, chunks={})["nee"]
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot open as NetCDF ({type(exc).__name__}); truncated?",
                             path=path, variable="nee", expected=ROLES["truth_grid"].accepts
                             ) from None
        except KeyError:
            raise InputError("variable missing", path=path, variable="nee",
                             expected="true NEE (time, lat, lon) [g m-2 d-1]") from None
        check_same_grid(da, self.regions, what="truth grid and region grid", path=str(path))
        return da

    @cached_property
    def truth_regional(self) -> pd.DataFrame:
        """True regional monthly totals: ``region, time (YYYY-MM), nee_tgc`` [Tg month-1]."""
        path = self._optional("truth_regional")
        df = pd.read_csv(path)
        for col in ("region", "time", "nee_tgc"):
            if col not in df:
                raise InputError("column missing", path=path, variable=col,
                                 expected="region, time, nee_tgc")
        unknown = sorted(set(df["region"].astype(str)) - set(region_names(self.regions).values()))
        if unknown:
            raise InputError(f"unknown region names {unknown[:5]}", path=path, variable="region",
                             expected="names of the region mask")
        return df[["region", "time", "nee_tgc"]]

    def _optional(self, role: str) -> Path:
        if role not in self.files:
            raise InputError(f"no {role} among the inputs (real data have no truth)",
                             variable=f"inputs.{role}", expected=ROLES[role].accepts)
        return self.files[role]

    def _check_overlap(self) -> None:
        """Refuse meteorology without a year of measured site NEE, or inversions outside
        its period."""
        times = pd.DatetimeIndex(self.predictors["time"].values)
        check_site_years(self.sites, times, self.files["meteorology"])
        check_target_months(self.targets, times, self.files["inversions"])

    def problems(self) -> list[InputError]:
        """Every problem of the inputs: each check runs unless one it depends on failed (a
        problem that several checks meet is listed once).

        Opens the meteorology (its values within plausible ranges), regions, sites,
        predictors (lazily, but every file opened and its variables, units and grid
        checked), targets and, when given, the truth; checks that the sites and the targets
        overlap the predictors' period.
        """
        checks: dict[str, Callable[[], object]] = {
            "meteorology": lambda: self.meteorology,
            "meteorology_values": lambda: check_meteorology(self.meteorology,
                                                            self.files["meteorology"]),
            **{n: lambda n=n: getattr(self, n) for n in (*ROLE_DATASETS, *(
                r for r in ("truth_grid", "truth_regional") if r in self.files))},
            "overlap": self._check_overlap}
        found: dict[str, InputError] = {}
        failed: set[str] = set()
        for name, check in checks.items():
            if failed & set(_DEPENDS.get(name, ())):
                failed.add(name)
                continue
            try:
                check()
            except InputError as exc:
                found.setdefault(str(exc), exc)
                failed.add(name)
        return list(found.values())

    def check(self) -> World:
        """Open and check every input (:meth:`problems`), so that errors come before any
        training.

        Returns
        -------
        World
            ``self``, every dataset cached.

        Raises
        ------
        InputError
            The one problem found, or :class:`~fluxbridge.errors.InputProblems` listing them
            all; each names the file, the variable, what was found and what was expected.
        """
        problems = self.problems()
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise InputProblems(problems)
        log.info("inputs checked: %d sites, %d inversion members, predictors %s",
                 self.sites.sizes["site"], self.targets.sizes["member"],
                 dict(self.predictors.sizes))
        return self
