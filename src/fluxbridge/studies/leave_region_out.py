"""Leave-region-out: judge the inversion constraint where no truth exists.

The dual model is trained again once per region with that region's inversion targets removed,
and that region's regional totals are taken from the run that never saw its constraint. Scored
against the inversion mean (what real data allow) and, in the twin world, the truth, next to the
dual model trained with every region and the site-only model
(:mod:`fluxbridge.evaluation.leave_region_out`), it tells how much of the dual model's regional
skill comes from fitting a region's own targets and how much carries over to a region the
constraint did not see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge import training
from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import ConfigError, InputError
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.towers import TowerObservations
from fluxbridge.outputs.files import write_csv
from fluxbridge.studies.grid_totals import regional_series

log = logging.getLogger(__name__)

SERIES_COLUMNS = ["heldout", "region", "time", "nee_tgc"]


def target_regions(targets: xr.Dataset) -> dict[int, str]:
    """Region id → name of the regions with at least one finite target."""
    finite = np.isfinite(targets["nee_mean"]).any("time").values
    ids = targets["region"].values.astype(int)
    names = (targets["region_name"].values if "region_name" in targets.coords
             else ids.astype(str))
    return {int(i): str(n) for i, n, f in zip(ids, names, finite) if f}


def region_ids(regions: dict[int, str], wanted: Sequence[str]) -> list[int]:
    """Ids of the regions named ``wanted`` among ``regions`` (id → name of the regions with
    targets); a name without targets is refused."""
    ids = {name: rid for rid, name in regions.items()}
    unknown = [w for w in wanted if w not in ids]
    if unknown:
        raise ConfigError(f"no inversion targets for region(s) {unknown}",
                          variable="validation.leave_region_out_regions",
                          expected=f"names among {sorted(ids)}")
    return [ids[w] for w in wanted]


def withhold_region(targets: xr.Dataset, region: int) -> xr.Dataset:
    """The targets without one region (every variable, every member)."""
    ids = targets["region"].values.astype(int)
    if region not in set(ids):
        raise InputError(f"region {region} has no targets", variable="region",
                         expected=f"one of {sorted(ids.tolist())}")
    return targets.isel(region=np.flatnonzero(ids != region))


def leave_region_out(
    samples: pd.DataFrame,
    cfg: ExperimentConfig,
    *,
    grid: GridFeatures,
    targets: xr.Dataset,
    regions: xr.Dataset,
    train_sites: Sequence[str] | np.ndarray,
    towers: TowerObservations | None = None,
    withhold: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train the dual model once per region without that region's targets; its totals there.

    Parameters
    ----------
    samples
        Site samples (:func:`fluxbridge.features.site_samples`).
    cfg
        The experiment (λ > 0); each run is the final dual model's (same seeds, same
        validation sites), so a run differs from it only by the missing region.
    grid, targets, regions
        Gridded features, inversion targets and regions.
    train_sites
        Sites of the final model (split into fit and validation sites as it is).
    towers
        Tower observations of the final model's footprint term (kept in every run).
    withhold
        Region ids to withhold one at a time (default: those named in
        ``validation.leave_region_out_regions``, or every region with targets).
    cache_dir
        Each region's result is kept in ``cache_dir/region{id}.csv`` and its training
        checkpoints under ``cache_dir/checkpoints/region{id}``; a rerun reuses them.
    progress
        Show progress bars.

    Returns
    -------
    pd.DataFrame
        ``heldout, region, time (YYYY-MM), nee_tgc`` [Tg month-1]: for each withheld region,
        its monthly totals from the run that withheld it (``heldout`` = ``region``, the name).
    """
    if not cfg.constrained:
        raise InputError("leave-region-out needs the dual model", variable="lambda_regional",
                         expected="lambda_regional > 0")
    names = target_regions(targets)
    chosen = cfg.validation.leave_region_out_regions
    if withhold is None and chosen is not None:
        withhold = region_ids(names, chosen)
    ids = list(names) if withhold is None else [int(r) for r in withhold]
    cache = None if cache_dir is None else Path(cache_dir)
    frames = []
    for rid in ids:
        path = None if cache is None else cache / f"region{rid}.csv"
        if path is not None and path.exists():
            frames.append(pd.read_csv(path, dtype={"heldout": str, "region": str,
                                                   "time": str}))
            continue
        reduced = withhold_region(targets, rid)
        members = training.train_ensemble(
            samples, cfg, train_sites=train_sites, grid=grid, targets=reduced,
            regions=regions, towers=towers, progress=progress, name=f"dual_without_{rid}",
            checkpoint_dir=None if cache is None else cache / "checkpoints" / f"region{rid}")
        series = regional_series(members, grid, regions, only=[rid])
        frame = series.assign(heldout=names.get(rid, str(rid)))[SERIES_COLUMNS]
        if path is not None:
            write_csv(frame, path)
        frames.append(frame)
        log.info("leave-region-out: %s withheld, done", names.get(rid, rid))
    if not frames:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    return pd.concat(frames, ignore_index=True)
