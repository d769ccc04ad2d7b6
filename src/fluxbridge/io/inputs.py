"""Every input of an experiment named by role, opened through the format readers and checked.

An experiment names each input by role (:data:`ROLES`) as a path, a glob pattern, or a list of
them, relative to the file that names them (the experiment YAML, or a separate inputs YAML such
as the twin world's ``inputs.yaml``). :func:`resolve_inputs` turns that mapping into files,
:func:`open_inputs` into a :class:`World` whose canonical datasets are read on first use, and
:meth:`World.check` opens and checks them all before any training. One code path for synthetic
and real files; docs/inputs.md describes what each role accepts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import xarray as xr

from fluxbridge.climatology import is_climatology, sites_seasonal_cycle, targets_seasonal_cycle
from fluxbridge.errors import InputError, InputProblems
from fluxbridge.grid import check_same_grid, make_grid
from fluxbridge.io.era5 import open_era5
from fluxbridge.io.fluxnet import read_sites
from fluxbridge.io.inversion_files import read_inversion_files
from fluxbridge.io.land_cover import read_land_cover
from fluxbridge.io.layer_predictors import monthly_predictors
from fluxbridge.io.modis import open_modis
from fluxbridge.io.overlap import check_site_years, check_target_months
from fluxbridge.io.plausible import check_meteorology, check_site_values
from fluxbridge.io.region_masks import read_region_mask
from fluxbridge.io.roles import (
    BUILTIN,
    ROLES,
    PathSpec,
    builtin_region_set,
    read_inputs_file,
    resolve_inputs,
)
from fluxbridge.io.sitemeta import read_site_metadata
from fluxbridge.location import with_location_layers
from fluxbridge.regions import builtin_regions, region_names, regrid_mask
from fluxbridge.schema import check_predictors, check_regions, check_sites, check_targets

log = logging.getLogger(__name__)

ROLE_DATASETS = ("regions", "sites", "predictors", "targets")
"""The datasets every experiment reads (the truth only where it is given)."""

_DEPENDS = {"meteorology_values": ("meteorology",), "regions": ("meteorology",),
            "predictors": ("regions",), "targets": ("regions",),
            "truth_grid": ("regions",), "truth_regional": ("regions",),
            "overlap": ("sites", "predictors", "targets")}
"""The checks each check of :meth:`World.problems` needs to have passed."""


def open_inputs(spec: Mapping[str, PathSpec | None] | str | os.PathLike[str],
                base: str | os.PathLike[str] | None = None, time_step: str = "DD",
                resolution_deg: float = 2.0, targets_years: tuple[int, int] | None = None,
                features: Sequence[str] = ()) -> World:
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
        Model time step of the sites: ``DD``, ``8D`` or ``MM`` (monthly predictors need
        ``MM``).
    resolution_deg
        Model grid spacing [degree] where no ERA5 meteorology fixes the grid.
    targets_years
        First and last year of the inversions averaged into a mean seasonal cycle when the
        predictors are a climatology; None = every year all members cover.
    features
        The experiment's features: the layers of its location features
        (:mod:`fluxbridge.location`) are added to the predictors.
    """
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        spec = read_inputs_file(path)
        base = path.parent if base is None else base
    base = Path.cwd() if base is None else Path(base)
    files = resolve_inputs(spec, base)
    _check_kinds(files, time_step)
    return World(files=files, base=base, time_step=time_step,
                 region_set=builtin_region_set(spec), resolution_deg=resolution_deg,
                 targets_years=targets_years, features=tuple(features))


def _check_kinds(files: Mapping[str, Path | list[Path]], time_step: str) -> None:
    """Refuse roles that the chosen meteorology cannot use: daily MODIS composites with
    monthly climatologies, static layers with ERA5, a daily step with climatologies."""
    monthly = "climatology" in files
    for role, needs in (("remote_sensing", "meteorology"), ("vegetation_layers", "climatology")):
        if files.get(role) and needs not in files:
            raise InputError(f"{role} given without {needs}", path=files[role][0],
                             variable=f"inputs.{role}",
                             expected=f"{role} only beside the {needs} role")
    if monthly and time_step != "MM":
        raise InputError(f"time step {time_step!r} with monthly predictors",
                         path=files["climatology"][0], variable="time_step",
                         expected="time_step: MM with the climatology role")


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

    The model grid is that of the ERA5 meteorology, or else a regular grid of
    ``resolution_deg``: the region mask is carried onto it when it differs, a finer land cover
    is aggregated to it by majority, remote sensing must share it, PSL climatologies and
    static layers are averaged onto it by area. Climatological predictors make the sites and
    the targets mean seasonal cycles too (:mod:`fluxbridge.climatology`).

    Attributes
    ----------
    files
        Role → absolute path (single roles) or list of paths (list roles).
    base
        Folder the inputs were named relative to.
    time_step
        Model time step of the sites (``DD``, ``8D``, ``MM``).
    region_set
        Built-in region set named by the ``regions`` role, or None (a mask file).
    resolution_deg
        Model grid spacing [degree] without ERA5 meteorology.
    targets_years
        Years of the inversions' mean seasonal cycle (climatological predictors).
    features
        Features whose location layers the predictors carry.
    """

    files: dict[str, Path | list[Path]]
    base: Path
    time_step: str = "DD"
    region_set: str | None = None
    resolution_deg: float = 2.0
    targets_years: tuple[int, int] | None = None
    features: tuple[str, ...] = ()

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

    @property
    def meteorology_files(self) -> list[Path]:
        """The files that fix the model's period: ERA5, or the PSL climatologies."""
        return self.files.get("meteorology") or self.files["climatology"]

    @cached_property
    def regions(self) -> xr.Dataset:
        """Canonical regions dataset on the model grid."""
        era5 = "meteorology" in self.files
        if self.region_set is not None:
            regions = builtin_regions(self.region_set, self.resolution_deg)
            regions = regrid_mask(regions, self.meteorology) if era5 else regions
            return check_regions(regions, where=f"{BUILTIN}{self.region_set}")
        path = self.files["regions"]
        grid = self.meteorology if era5 else make_grid(self.resolution_deg)
        return check_regions(read_region_mask(path, grid=grid), where=str(path))

    @cached_property
    def sites(self) -> xr.Dataset:
        """Canonical sites dataset at the model time step (each site's mean seasonal cycle
        when the predictors are a climatology)."""
        meta = read_site_metadata(*self.files["site_table"])
        sites = check_sites(read_sites(self.files["sites"], meta, time_step=self.time_step))
        check_site_values(sites)
        return sites_seasonal_cycle(sites) if is_climatology(self.predictors) else sites

    @cached_property
    def predictors(self) -> xr.Dataset:
        """Canonical predictors on the model grid (daily ERA5 and MODIS, or monthly PSL
        meteorology and static layers), with static ``land_cover``."""
        if "climatology" in self.files:
            regions = self.regions
            lc = read_land_cover(self.files["land_cover"], grid=regions)
            out = monthly_predictors(self.files["climatology"],
                                     self.files.get("vegetation_layers", []), lc, regions)
            out = check_predictors(out, regions, where=str(self.base))
            return with_location_layers(out, self.features)
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
        out = check_predictors(out, regions, where=str(self.base))
        return with_location_layers(out, self.features)

    @cached_property
    def targets(self) -> xr.Dataset:
        """Corrected inversion ensemble (canonical targets); their mean seasonal cycle when
        the predictors are a climatology."""
        targets = read_inversion_files(self.files["inversions"], self.regions,
                                       corrections=self.files.get("corrections"))
        if is_climatology(self.predictors):
            targets = targets_seasonal_cycle(targets, self.targets_years)
        return check_targets(targets)

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
        check_site_years(self.sites, times, self.meteorology_files)
        check_target_months(self.targets, times, self.files["inversions"])

    def problems(self) -> list[InputError]:
        """Every problem of the inputs: each check runs unless one it depends on failed (a
        problem that several checks meet is listed once).

        Opens the meteorology (its values within plausible ranges), regions, sites,
        predictors (lazily, but every file opened and its variables, units and grid
        checked), targets and, when given, the truth; checks that the sites and the targets
        overlap the predictors' period.
        """
        era5: dict[str, Callable[[], object]] = {
            "meteorology": lambda: self.meteorology,
            "meteorology_values": lambda: check_meteorology(self.meteorology,
                                                            self.files["meteorology"])}
        checks: dict[str, Callable[[], object]] = {
            **(era5 if "meteorology" in self.files else {}),
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
