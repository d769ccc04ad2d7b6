"""The canonical targets: an inversion ensemble's regional monthly NBE, corrected to NEE.

Correction terms (fire, rivers, trade) from a table turn NBE into NEE comparable with towers
(``NBE = NEE + Σ terms``); every correction is recorded in the attributes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.io.tables import read_csv_table
from fluxbridge.regions import region_names

log = logging.getLogger(__name__)

TARGET_UNITS = "Tg month-1"

def _months(text: pd.Series, path: Path) -> tuple[str, pd.Series]:
    """The months of a correction table: ``("time", month starts)`` from ``YYYY-MM``, or
    ``("month", 1..12)`` when every row says ``--MM`` (a month of every year)."""
    if text.str.fullmatch(r"--(0[1-9]|1[0-2])").all():
        return "month", text.str[2:].astype(int)
    time = pd.to_datetime(text, format="%Y-%m", errors="coerce")
    if time.isna().any():
        raise InputError(f"invalid month {text[time.isna()].iloc[0]!r}", path=path,
                         variable="time", expected="YYYY-MM, or --MM on every row (a month "
                         "of every year)")
    return "time", time


def read_corrections(path: str | os.PathLike[str],
                     regions: xr.Dataset | dict[int, str]) -> xr.Dataset:
    """Per-region monthly correction terms from a table.

    The table has columns ``region`` (name as in the region mask), ``time`` (YYYY-MM, or
    ``--MM`` on every row for a term that is the same in every year) and one column per term
    ending in ``_tgc`` [Tg month-1]; each term is part of NBE and not of NEE:
    ``NBE = NEE + Σ terms``.

    Parameters
    ----------
    path
        CSV table.
    regions
        Canonical regions dataset, or its region id → name mapping.

    Returns
    -------
    xr.Dataset
        One variable per term (region, time) [Tg month-1]; (region, month) with ``month``
        1..12 for a table of ``--MM`` rows.
    """
    path = Path(path)
    df = read_csv_table(path, "corrections table",
                        expected="a CSV with columns region, time, <term>_tgc")
    for col in ("region", "time"):
        if col not in df:
            raise InputError("column missing", path=path, variable=col,
                             expected="columns region, time and <term>_tgc")
    terms = [c for c in df.columns if c.endswith("_tgc")]
    if not terms:
        raise InputError("no correction column", path=path, variable="<term>_tgc",
                         expected="columns like fire_tgc, river_tgc, trade_tgc [TgC/month]")
    names = regions if isinstance(regions, dict) else region_names(regions)
    ids = {v: k for k, v in names.items()}
    unknown = sorted(set(df["region"].astype(str)) - set(ids))
    if unknown:
        raise InputError(f"unknown region names {unknown[:5]}", path=path, variable="region",
                         expected=f"names of the region mask: {sorted(ids)}")
    dim, time = _months(df["time"].astype(str), path)
    df = df.assign(region=df["region"].astype(str).map(ids), **{dim: time})
    if df.duplicated(["region", dim]).any():
        raise InputError("a (region, month) appears twice", path=path, variable="region/time",
                         expected="one row per region and month")
    for t in terms:
        values = pd.to_numeric(df[t], errors="coerce")
        bad = df[t][values.isna() & df[t].notna()]
        if len(bad):
            raise InputError(f"non-numeric value {bad.iloc[0]!r} in row {bad.index[0] + 2}",
                             path=path, variable=t, expected="numbers [Tg month-1]")
        df[t] = values
    out = df.set_index(["region", dim])[terms].astype(float).to_xarray()
    if dim == "time":
        out = out.assign_coords(time=out["time"].values.astype("datetime64[ns]"))
    for t in terms:
        out[t].attrs = {"units": TARGET_UNITS, "long_name": f"{t[:-4]} term of NBE",
                        "source": str(path)}
    return out


def _member_names(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        return [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def ensemble_targets(
    members: Sequence[xr.DataArray],
    names: dict[int, str],
    corrections: str | os.PathLike[str] | None = None,
    min_members: int = 2,
    source_files: Sequence[str | os.PathLike[str]] = (),
) -> xr.Dataset:
    """Assemble per-member regional NBE series into the canonical targets dataset.

    Parameters
    ----------
    members
        ``nbe`` (region, time) [Tg month-1] of each member, attribute ``member`` (its name).
    names
        Region id → name.
    corrections
        Table of correction terms (see :func:`read_corrections`); None = no correction (NBE
        compared as it is, recorded so in the attributes).
    min_members
        Region-months with fewer finite members get NaN spread.
    source_files
        Recorded in the attributes.

    Returns
    -------
    xr.Dataset
        ``nbe`` (member, region, time), ``correction`` (region, time), ``nee`` (member, region,
        time), ``nee_mean`` and ``nee_spread`` (region, time), all [Tg month-1]; attribute
        ``corrections`` (JSON list of the terms removed, with sign, source and global size).
    """
    labels = _member_names([str(m.attrs.get("member", i)) for i, m in enumerate(members)])
    nbe = xr.concat(list(members), dim=xr.DataArray(np.array(labels, dtype=str), dims="member",
                                                     name="member"), join="outer")
    nbe.attrs = {"units": TARGET_UNITS, "long_name": "regional net biome exchange of carbon "
                 "per month, positive to the atmosphere"}
    correction = xr.zeros_like(nbe.isel(member=0, drop=True))
    record: list[dict[str, object]] = []
    if corrections is not None:
        terms = read_corrections(corrections, names)
        if "month" in terms.dims:  # a month of every year
            terms = terms.reindex(month=range(1, 13)).sel(
                month=nbe["time"].dt.month).drop_vars("month")
        aligned = terms.reindex(region=nbe["region"], time=nbe["time"])
        for term in terms.data_vars:
            values = aligned[term]
            covered = float(values.notnull().mean())
            if covered < 1.0:
                log.warning("correction %s covers %.0f%% of region-months; the rest is taken "
                            "as zero", term, 100 * covered)
            correction = correction + values.fillna(0.0)
            years = nbe.sizes["time"] / 12
            record.append({"term": term[:-4], "sign": -1, "source": str(corrections),
                           "global_pgc_yr": round(float(values.sum()) / 1000 / years, 4),
                           "coverage": round(covered, 4)})
    else:
        record.append({"term": "none", "note": "NBE used as NEE without correction"})
    nee = nbe - correction
    finite = nee.notnull().sum("member")
    mean = nee.mean("member", skipna=True).where(finite >= 1)
    spread = nee.std("member", ddof=1, skipna=True).where(finite >= min_members)
    dropped = [n for n in labels if bool(nbe.sel(member=n).isnull().all())]
    if dropped:
        log.warning("inversion member(s) without any value: %s", dropped)
    out = xr.Dataset({
        "nbe": nbe,
        "correction": correction.assign_attrs(units=TARGET_UNITS, long_name="sum of the "
                                              "correction terms removed from NBE"),
        "nee": nee.assign_attrs(units=TARGET_UNITS, long_name="corrected inversion NEE"),
        "nee_mean": mean.assign_attrs(units=TARGET_UNITS, long_name="ensemble mean NEE"),
        "nee_spread": spread.assign_attrs(units=TARGET_UNITS, long_name="ensemble spread "
                                          "(standard deviation across members) of NEE"),
    })
    out["time"].attrs.update(long_name="start of the month")
    out.attrs = {"corrections": json.dumps(record), "members": " ".join(labels),
                 "members_all_missing": " ".join(dropped),
                 "sign_convention": "positive to the atmosphere",
                 "source_files": "\n".join(str(p) for p in source_files)}
    return out
