"""A world described by a ``manifest.json``: the twin world, or real data laid out alike.

The manifest's key ``files`` maps roles to paths relative to the manifest: ``sites`` (list),
``site_table``, ``meteorology`` (list), ``remote_sensing`` (list), ``inversions`` (list),
``corrections``, ``regions``, and for the twin world ``truth_grid`` and ``truth_regional``.
Everything is read through the format readers of :mod:`fluxbridge.io`: one code path for
synthetic and real files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.grid import check_same_grid
from fluxbridge.schema import check_predictors, check_regions, check_sites, check_targets

log = logging.getLogger(__name__)

REQUIRED_ROLES = ("sites", "site_table", "meteorology", "remote_sensing", "inversions",
                  "regions")


@dataclass
class World:
    """The canonical datasets of a world, each read on first use.

    Attributes
    ----------
    root
        Directory of the manifest.
    manifest
        The parsed manifest.
    files
        Role → absolute path(s).
    """

    root: Path
    manifest: dict[str, Any]
    files: dict[str, Any] = field(default_factory=dict)
    time_step: str = "DD"

    def files_list(self) -> list[Path]:
        """Every input file of the world."""
        out: list[Path] = []
        for value in self.files.values():
            out.extend(value if isinstance(value, list) else [value])
        return out

    @cached_property
    def regions(self) -> xr.Dataset:
        """Canonical regions dataset."""
        from fluxbridge.io.regions import read_region_mask

        return check_regions(read_region_mask(self.files["regions"]),
                             where=str(self.files["regions"]))

    @cached_property
    def sites(self) -> xr.Dataset:
        """Canonical sites dataset at the model step (daily)."""
        from fluxbridge.io.fluxnet import read_sites
        from fluxbridge.io.sitemeta import read_site_metadata

        meta = read_site_metadata(self.files["site_table"])
        return check_sites(read_sites(self.files["sites"], meta, time_step=self.time_step))

    @cached_property
    def predictors(self) -> xr.Dataset:
        """Canonical daily predictors on the region grid, with static ``land_cover``."""
        from fluxbridge.io.era5 import open_era5
        from fluxbridge.io.modis import LAND_COVER_NAMES, open_modis, read_land_cover

        met = open_era5(self.files["meteorology"], grid=self.regions)
        rs_files = list(self.files["remote_sensing"])
        land_cover = None
        composites = []
        if "land_cover" in self.files:
            rs_files.append(self.files["land_cover"])
        for f in rs_files:
            with xr.open_dataset(f, decode_times=False) as probe:
                is_lc = any(n in probe for n in LAND_COVER_NAMES)
            if is_lc:
                land_cover = read_land_cover(f, grid=self.regions)
            else:
                composites.append(f)
        times = pd.DatetimeIndex(met["time"].values)
        out = met
        if composites:
            rs = open_modis(composites, times=times, grid=self.regions)
            out = xr.merge([met, rs.assign_coords(time=met["time"])], join="left",
                           compat="override")
        if land_cover is None:
            raise InputError("no land cover file among the remote-sensing files",
                             path=self.root / "manifest.json", variable="remote_sensing",
                             expected="an MCD12-like land cover NetCDF")
        out["land_cover"] = land_cover
        out["land_fraction"] = self.regions["land_fraction"]
        out["region"] = self.regions["region"].assign_attrs(units="1")
        return check_predictors(out, self.regions, where=str(self.root))

    @cached_property
    def targets(self) -> xr.Dataset:
        """Corrected inversion ensemble (canonical targets)."""
        from fluxbridge.io.inversions import read_inversions

        return check_targets(read_inversions(self.files["inversions"], self.regions,
                                             corrections=self.files.get("corrections")))

    @cached_property
    def truth_grid(self) -> xr.DataArray:
        """True daily NEE (time, lat, lon) [g m-2 d-1], lazily (twin world only)."""
        path = self._optional("truth_grid")
        ds = xr.open_dataset(path, chunks={})
        da = ds["nee"]
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
        return df[["region", "time", "nee_tgc"]]

    def _optional(self, role: str) -> Path:
        if role not in self.files:
            raise InputError(f"the world has no {role} (real data have no truth)",
                             path=self.root / "manifest.json", variable=role)
        return self.files[role]


def open_world(manifest_path: str | os.PathLike[str], time_step: str = "DD") -> World:
    """Open a world from its ``manifest.json`` (nothing is read until used).

    Raises
    ------
    InputError
        If the manifest is unreadable, lacks a role, or names a file that does not exist.
    """
    path = Path(manifest_path)
    if not path.is_file():
        raise InputError("world manifest not found", path=path,
                         expected="manifest.json written by `fluxbridge synth`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", path=path) from None
    rel = manifest.get("files")
    if not isinstance(rel, dict):
        raise InputError("no 'files' mapping", path=path, variable="files",
                         expected="role → relative path(s)")
    root = path.parent
    files: dict[str, Any] = {}
    for role, value in rel.items():
        items = value if isinstance(value, list) else [value]
        resolved = [(root / v).resolve() for v in items]
        for f in resolved:
            if not f.exists():
                raise InputError(f"file of role {role!r} not found", path=f, variable=role)
        files[role] = resolved if isinstance(value, list) else resolved[0]
    missing = [r for r in REQUIRED_ROLES if r not in files]
    if missing:
        raise InputError(f"manifest lacks role(s) {missing}", path=path, variable="files",
                         expected=", ".join(REQUIRED_ROLES))
    return World(root=root, manifest=manifest, files=files, time_step=time_step)

