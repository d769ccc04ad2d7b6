"""Scores of leave-region-out: each region judged from the run that never saw its constraint.

The series come from :mod:`fluxbridge.studies.leave_region_out`; scored against the inversion
mean (what real data allow) and, in the twin world, the truth, next to the dual model trained
with every region and the site-only model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.evaluation.regional import regional_metrics

log = logging.getLogger(__name__)

HELDOUT = "dual_without_region"
"""Model name of the leave-region-out result."""

ORACLE = "oracle_without_region"
"""Model name of the site-only model with the shared correction fitted to the other regions'
truth (twin world): what that correction could carry to a withheld region at best."""


def leave_region_out_scores(heldout_series: pd.DataFrame, reference: pd.DataFrame,
                            spread: pd.DataFrame | None = None, *,
                            name: str = "leave_region_out") -> pd.DataFrame:
    """Score each region only from the run that withheld that region's constraint.

    Parameters
    ----------
    heldout_series
        ``region, time, nee_tgc`` [Tg month-1] assembled from runs that each held out one region.
        With a column ``heldout`` (the region withheld in the run a row came from), rows of
        other regions are dropped; without it each region's rows must already come from its own
        held-out run.
    reference, spread
        As in :func:`regional_metrics`.
    name
        Model name in the result.

    Returns
    -------
    pd.DataFrame
        As :func:`regional_metrics`, for the one model ``name``.
    """
    df = heldout_series
    if "heldout" in df.columns:
        keep = df["region"].astype(str) == df["heldout"].astype(str)
        log.debug("leave-region-out: keeping %d of %d rows (each region from its held-out run)",
                  int(keep.sum()), len(df))
        df = df.loc[keep]
        if df.empty:
            raise InputError("no row's region equals its held-out region", variable="heldout",
                             expected="for each region, rows from the run that withheld it")
    return regional_metrics({name: df}, reference, spread)


def leave_region_out_table(
    heldout: pd.DataFrame,
    series: Mapping[str, pd.DataFrame],
    *,
    reference: pd.DataFrame,
    spread: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
    name: str = HELDOUT,
) -> pd.DataFrame:
    """Scores of the leave-region-out result next to other models, on the withheld regions.

    Parameters
    ----------
    heldout
        From :func:`leave_region_out` (column ``heldout``).
    series
        Other models (e.g. the dual model with every region, the site-only model):
        name → ``region, time, nee_tgc`` [Tg month-1]; only the withheld regions are scored.
    reference, spread
        Corrected inversion mean and spread [Tg month-1].
    truth
        True regional totals (twin world), or ``None`` on real data.
    name
        Model name of the leave-region-out result.

    Returns
    -------
    pd.DataFrame
        Long table ``against`` (``inversions`` or ``truth``), ``model``, ``region`` (and
        ``"all"``), then the columns of :func:`regional_metrics`.
    """
    regions = set(heldout["heldout"].astype(str))
    refs = [("inversions", reference, spread)]
    if truth is not None:
        refs.append(("truth", truth, None))
    parts = []
    for against, ref, sp in refs:
        lro = leave_region_out_scores(heldout, ref, sp, name=name)
        others = regional_metrics(
            {n: s[s["region"].astype(str).isin(regions)] for n, s in series.items()}, ref, sp)
        parts.append(pd.concat([others, lro], ignore_index=True).assign(against=against))
    out = pd.concat(parts, ignore_index=True)
    cols = ["against", "model", "region"]
    return out[cols + [c for c in out.columns if c not in cols]]
