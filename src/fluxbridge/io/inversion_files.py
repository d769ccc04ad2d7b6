"""An inversion ensemble from whatever form each member comes in.

Gridded flux files are integrated over the region mask (:mod:`fluxbridge.io.inversions`);
pre-aggregated products, the Global Carbon Budget regional tables (``North_Land`` ...) and the
zonal integrals (``SFCO2_LND``), are already latitude-band totals
(:mod:`fluxbridge.io.inversion_bands`) and need the built-in ``latitude_bands`` regions. Each
file's form is told from its variables; an ensemble may mix the two pre-aggregated forms but not
gridded members with band members.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.inversion_bands import read_gcb_regional_file, read_zonal_inversion
from fluxbridge.io.inversions import open_flux_file, read_inversions
from fluxbridge.io.targets import ensemble_targets
from fluxbridge.regions import LATITUDE_BAND_NAMES, region_names

BandReader = Callable[[str | os.PathLike[str]], xr.DataArray]


def band_reader(path: str | os.PathLike[str]) -> BandReader | None:
    """The reader of a pre-aggregated band file (GCB regional table or zonal integral), or
    None for any other file (a gridded flux file)."""
    with open_flux_file(Path(path)) as ds:
        names = set(ds.variables)
    if "North_Land" in names:
        return read_gcb_regional_file
    if "SFCO2_LND" in names:
        return read_zonal_inversion
    return None


def read_inversion_files(paths: Sequence[str | os.PathLike[str]], regions: xr.Dataset,
                         corrections: str | os.PathLike[str] | None = None,
                         min_members: int = 2) -> xr.Dataset:
    """The canonical targets of an inversion ensemble, each member read in its own form.

    Parameters
    ----------
    paths
        One file per member: gridded flux NetCDF, GCB regional table or zonal integral.
    regions
        Canonical regions dataset; band members need ``builtin:latitude_bands``.
    corrections
        Correction table (:func:`fluxbridge.io.targets.read_corrections`); None = none.
    min_members
        Region-months with fewer finite members get NaN spread.

    Returns
    -------
    xr.Dataset
        Canonical targets [Tg month-1] (:func:`fluxbridge.io.targets.ensemble_targets`).

    Raises
    ------
    InputError
        Gridded members mixed with band members, or band members with another region set.
    """
    if not paths:
        raise InputError("no inversion files given", variable="inputs.inversions")
    readers = [band_reader(p) for p in paths]
    if all(r is None for r in readers):
        return read_inversions(paths, regions, corrections, min_members)
    if any(r is None for r in readers):
        gridded = paths[readers.index(None)]
        raise InputError("a gridded inversion among latitude-band tables", path=gridded,
                         variable="inputs.inversions",
                         expected="all members gridded, or all band tables (GCB, zonal)")
    if region_names(regions) != LATITUDE_BAND_NAMES:
        raise InputError(f"regions {sorted(region_names(regions).values())}",
                         path=paths[0], variable="inputs.regions",
                         expected="builtin:latitude_bands (North, Tropical, South) for "
                         "latitude-band inversion tables")
    members = [read(p) for read, p in zip(readers, paths, strict=True)]
    out = ensemble_targets(members, dict(LATITUDE_BAND_NAMES), corrections, min_members, paths)
    out.attrs["region_set"] = "latitude_bands"
    return out
