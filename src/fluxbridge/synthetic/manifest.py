"""What a twin world says about itself: ``inputs.yaml`` (its inputs by role) and
``manifest.json`` (provenance, the files by role, measured properties, checksums)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from fluxbridge import __version__
from fluxbridge.outputs.files import write_json
from fluxbridge.synthetic import properties as props
from fluxbridge.synthetic.config import WorldConfig

MANIFEST_VERSION = 2
"""Version 2 adds ``inputs.yaml`` beside the manifest."""

INPUTS: dict[str, str | list[str]] = {
    "sites": "sites/FLX_*_FLUXNET2015_FULLSET_DD_*.csv",
    "site_table": "sites/FLX_AA-Flx_BIF_LATEST.csv",
    "meteorology": "meteorology/era5_daily_*.nc",
    "remote_sensing": ["remote_sensing/MOD13C1_*.nc", "remote_sensing/MOD11C2_*.nc"],
    "land_cover": "remote_sensing/MCD12C1_landcover.nc",
    "inversions": "inversions/*.nc",
    "corrections": "inversions/corrections.csv",
    "regions": "regions/regions.nc",
    "truth_grid": "truth/nee_true.nc",
    "truth_regional": "truth/regional_monthly.csv",
}
"""The twin world's inputs by role, relative to the world folder (docs/inputs.md)."""

TOWER_INPUTS: dict[str, str | list[str]] = {
    "footprints": "towers/footprints/*_foot.nc",
    "tower_co2": "towers/obspack/co2_*.nc",
    "tower_priors": "towers/tower_priors.csv",
}
"""The inputs of a world with tall towers (``n_towers`` > 0), beside :data:`INPUTS`."""

_INPUTS_HEADER = """\
# Inputs of this twin world by role: paths and glob patterns relative to this file.
# Open them with fluxbridge.io.inputs.open_inputs("inputs.yaml"); see docs/inputs.md.
"""


def write_inputs(root: Path) -> Path:
    """Write ``inputs.yaml``: the world's inputs by role (:data:`INPUTS`, and
    :data:`TOWER_INPUTS` where the world has towers)."""
    path = root / "inputs.yaml"
    inputs = {**INPUTS, **(TOWER_INPUTS if (root / "towers").is_dir() else {})}
    path.write_text(_INPUTS_HEADER + yaml.safe_dump(inputs, sort_keys=False))
    return path


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rel(root: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [_rel(root, v) for v in value]
    return Path(value).relative_to(root).as_posix()


def write_manifest(root: Path, cfg: WorldConfig, files: dict[str, Any],
                   properties: dict[str, Any], n_sites: int, years: list[int]) -> Path:
    """Write ``manifest.json``: provenance, the files by role, properties and checksums.

    Parameters
    ----------
    root
        The world folder; every file below it gets a SHA-256 checksum.
    cfg
        The world's configuration.
    files
        Role → absolute path(s) of the files written.
    properties
        Measured properties (:func:`fluxbridge.synthetic.properties.world_properties`).
    n_sites
        Number of towers.
    years
        Simulated calendar years.
    """
    checksums = {p.relative_to(root).as_posix(): _digest(p)
                 for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = {
        "fluxbridge_twin_world": MANIFEST_VERSION,
        "fluxbridge_version": __version__,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "grid": {"resolution_deg": cfg.resolution_deg, "n_lat": round(180 / cfg.resolution_deg),
                 "n_lon": round(360 / cfg.resolution_deg)},
        "period": {"start": f"{years[0]}-01-01", "end": f"{years[-1]}-12-31",
                   "time_step": "day", "calendar": "proleptic_gregorian"},
        "sizes": {"n_sites": n_sites, "n_members": cfg.n_members, "n_years": cfg.n_years,
                  "n_regions": int(properties["n_regions"])},
        "inputs": "inputs.yaml",
        "files": {k: _rel(root, v) for k, v in files.items()},
        "variables": props.VARIABLES,
        "sign_convention": "positive = source to the atmosphere; NBE = NEE + fire + river + trade",
        "properties": properties,
        "checksums_sha256": checksums,
    }
    return write_json(manifest, root / "manifest.json")
