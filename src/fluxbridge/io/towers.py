"""Tower observations for the footprint constraint: ObsPack mole fractions, their footprints,
background and prior enhancements, matched receptor by receptor and checked before training.

The observed enhancement of the land flux is

    Δc_obs = CO2 − background − fossil − ocean    [ppm]

with the background and the fossil-fuel and ocean enhancements given by the user, per
receptor, in a priors table (CSV: ``site``, ``time`` (UTC, ISO 8601), ``background_ppm``,
optional ``fossil_ppm`` and ``ocean_ppm``, 0 when absent; all recorded in
:attr:`TowerObservations.table`). A footprint's receptor (from its STILT simulation id) is
matched to the ObsPack value whose ``time`` (the beginning of the averaging hour) equals the
receptor time, whose position is within 0.01° of it and whose intake height is within 1 m of
the receptor height; a receptor whose value carries a NOAA rejection flag is skipped. Where a
site has receptors at several heights at one time, the priors table has an ``intake_height``
column [m] too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.footprints import read_stilt_footprint, receptor_from_name
from fluxbridge.io.obspack import read_obspack

log = logging.getLogger(__name__)

PRIOR_COLUMNS = ("background_ppm", "fossil_ppm", "ocean_ppm")
POSITION_TOLERANCE_DEG = 0.01
HEIGHT_TOLERANCE_M = 1.0
"""How far an ObsPack intake height may lie from a receptor's height (its STILT zagl) [m]."""


@dataclass
class TowerObservations:
    """Matched tower observations.

    Attributes
    ----------
    paths
        Footprint file of each receptor, in table order.
    table
        One row per receptor: ``site``, ``time`` (UTC), ``lat``, ``lon`` [degree],
        ``intake_height`` [m above ground], ``co2``, ``co2_unc``, ``background_ppm``,
        ``fossil_ppm``, ``ocean_ppm`` and ``enhancement_ppm`` (CO2 minus the three) [ppm].
    """

    paths: list[Path]
    table: pd.DataFrame

    def footprints(self) -> Iterator[xr.DataArray]:
        """The footprints in table order, read one at a time."""
        return (read_stilt_footprint(p) for p in self.paths)

    def rows_of(self, sources: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
        """The table's rows of the receptors whose footprint files are ``sources`` (a
        footprint operator's ``obs_index["source"]``), in that order."""
        row = {str(p): k for k, p in enumerate(self.paths)}
        return self.table.iloc[[row[str(s)] for s in sources]]


def open_towers(footprints: Sequence[str | os.PathLike[str]],
                tower_co2: Sequence[str | os.PathLike[str]],
                priors: str | os.PathLike[str]) -> TowerObservations:
    """Match footprint files, ObsPack files and the priors table.

    Parameters
    ----------
    footprints
        STILT footprint files (``<simulation_id>_foot.nc``).
    tower_co2
        ObsPack CO2 files.
    priors
        The priors table (module docstring).

    Returns
    -------
    TowerObservations

    Raises
    ------
    InputError
        A footprint without an observation, or an observation without its priors, naming the
        file and the receptor; no receptor left after the rejection flags.
    """
    obs = pd.concat([read_obspack(p, qc=False).assign(file=str(p)) for p in tower_co2],
                    ignore_index=True)
    paths, matched = _match(sorted(Path(p) for p in footprints), obs)
    merged = _with_priors(matched, Path(priors))
    merged["enhancement_ppm"] = merged["co2"] - merged[list(PRIOR_COLUMNS)].sum(axis=1)
    keep = ["site", "time", "lat", "lon", "intake_height", "co2", "co2_unc", *PRIOR_COLUMNS,
            "enhancement_ppm"]
    return TowerObservations(paths, merged[keep])


TOWER_ROLES = ("footprints", "tower_co2", "tower_priors")
"""The input roles of the footprint constraint (:data:`fluxbridge.io.inputs.ROLES`)."""


def towers_of(files: Mapping[str, Path | list[Path]]) -> TowerObservations | None:
    """The tower observations of resolved inputs (``World.files``): None when none of the
    tower roles is given; all three are needed otherwise."""
    given = [r for r in TOWER_ROLES if r in files]
    if not given:
        return None
    missing = [r for r in TOWER_ROLES if r not in files]
    if missing:
        raise InputError(f"tower inputs {given} without {missing}", variable=f"inputs.{missing[0]}",
                         expected="footprints, tower_co2 and tower_priors together")
    feet, co2, priors = (files[r] for r in TOWER_ROLES)
    assert isinstance(feet, list) and isinstance(co2, list) and isinstance(priors, Path)
    return open_towers(feet, co2, priors)


def _read_priors(path: Path) -> pd.DataFrame:
    """The priors table with ``time`` parsed and absent enhancement columns as 0."""
    if not path.is_file():
        raise InputError("tower priors table not found", path=path)
    table = pd.read_csv(path)
    missing = [c for c in ("site", "time", "background_ppm") if c not in table]
    if missing:
        raise InputError("column missing", path=path, variable=missing[0],
                         expected="site, time, background_ppm[, fossil_ppm, ocean_ppm]")
    table["time"] = pd.to_datetime(table["time"], utc=True).dt.tz_localize(None)
    for column in PRIOR_COLUMNS[1:]:
        if column not in table:
            table[column] = 0.0
    bad = ~np.isfinite(table[list(PRIOR_COLUMNS)].to_numpy(float)).all(axis=1)
    if bad.any():
        raise InputError(f"{int(bad.sum())} rows with a missing prior value", path=path,
                         variable="background_ppm", expected="finite ppm values")
    height = ["intake_height"] if "intake_height" in table else []
    return table[["site", "time", *height, *PRIOR_COLUMNS]]


def _match(footprints: list[Path], obs: pd.DataFrame) -> tuple[list[Path], pd.DataFrame]:
    """Each footprint's ObsPack value (same time, position within
    :data:`POSITION_TOLERANCE_DEG`, intake within :data:`HEIGHT_TOLERANCE_M` of the receptor
    height); receptors whose value is rejected by its NOAA flag are skipped."""
    at_time = {t: group for t, group in obs.groupby("time")}  # one scan, not one per receptor
    rows, paths, rejected = [], [], 0
    for path in footprints:
        receptor = receptor_from_name(path)
        if receptor is None:
            raise InputError("no receptor in the footprint file name", path=path,
                             expected="<yyyymmddHHMM>_<long>_<lati>_<zagl>_foot.nc")
        same = at_time.get(pd.Timestamp(receptor.time), obs.iloc[:0])
        hit = same[(np.abs(same["lat"] - receptor.lat) <= POSITION_TOLERANCE_DEG)
                   & (np.abs(same["lon"] - receptor.lon) <= POSITION_TOLERANCE_DEG)]
        if hit.empty:
            raise InputError(f"no ObsPack value at the receptor ({receptor.time}, "
                             f"{receptor.lat}, {receptor.lon})", path=path, variable="time",
                             expected="an ObsPack value at the receptor's time and position")
        level = hit[np.abs(hit["intake_height"] - receptor.height) <= HEIGHT_TOLERANCE_M]
        if level.empty:
            raise InputError(f"ObsPack intakes at {sorted(set(hit['intake_height']))} m, none at "
                             f"the receptor's {receptor.height:g} m", path=path,
                             variable="intake_height", expected="the receptor height (zagl)")
        if level["qc_flag"].iloc[0][:1] != ".":
            rejected += 1
            continue
        rows.append(level.iloc[0])
        paths.append(path)
    if rejected:
        log.info("%d receptors skipped: their ObsPack value carries a rejection flag", rejected)
    if not rows:
        raise InputError("no receptor with an accepted ObsPack value", variable="qc_flag",
                         expected="values whose NOAA rejection flag is '.'")
    return paths, pd.DataFrame(rows).reset_index(drop=True)


def _with_priors(matched: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The matched receptors with their priors, by site and time (and intake height where the
    table has it: needed when a site has receptors at several heights)."""
    table = _read_priors(path)
    keys = ["site", "time", *(["intake_height"] if "intake_height" in table else [])]
    twice = matched.duplicated(keys)
    if twice.any():
        first = matched[twice].iloc[0]
        raise InputError(f"receptors at several intake heights at {first['site']} "
                         f"{first['time']}", path=path, variable="intake_height",
                         expected="an intake_height column [m] in the priors table")
    if "intake_height" in table:
        matched = matched.assign(intake_height=matched["intake_height"].round(1))
        table = table.assign(intake_height=table["intake_height"].round(1))
    merged = matched.merge(table, on=keys, how="left", validate="one_to_one")
    missing = merged["background_ppm"].isna()
    if missing.any():
        first = merged[missing].iloc[0]
        raise InputError(f"{int(missing.sum())} receptors without a background, first "
                         f"{first['site']} {first['time']}", path=path,
                         variable="background_ppm",
                         expected=f"a row per receptor ({', '.join(keys)})")
    return merged
