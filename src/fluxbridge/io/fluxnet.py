"""Eddy-covariance site files of the FLUXNET2015 / ONEFlux family as canonical sites datasets.

The files (FLUXNET2015, AmeriFlux FLUXNET, ICOS, the FLUXNET Shuttle's FLUXMET; CSV or zip) are
read by :mod:`fluxbridge.io.fluxnet_csv`; this module converts units, turns QC into weights,
aggregates to the model time step and joins sites with their metadata.

Units on output: NEE, GPP and RECO in g m-2 d-1 of carbon (positive NEE = source), whatever the
resolution; the QC of NEE becomes a weight in 0..1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import UMOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.io.fluxnet_csv import parse_file_name, read_records
from fluxbridge.vocabulary import attrs as var_attrs

log = logging.getLogger(__name__)

NEE_VARIABLES = ("NEE_VUT_REF", "NEE_CUT_REF", "NEE_VUT_USTAR50", "NEE_CUT_USTAR50",
                 "NEE_VUT_MEAN", "NEE_CUT_MEAN", *(f"NEE_VUT_{p:02d}" for p in range(5, 100, 5)),
                 *(f"NEE_CUT_{p:02d}" for p in range(5, 100, 5)))

# canonical name -> (source columns in order of preference, kind); kind "carbon" follows NEE's
# unit rules. The *_ERA columns are ERA-Interim downscaled to the site (ERAI/ERA5 products).
METEO_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "ta": (("TA_F", "TA_ERA"), "mean"),
    "sw_in": (("SW_IN_F", "SW_IN_ERA"), "mean"),
    "sw_in_pot": (("SW_IN_POT",), "mean"),
    "vpd": (("VPD_F", "VPD_ERA"), "mean"),
    "precip": (("P_F", "P_ERA"), "precip"),
    "gpp": (("GPP_NT_VUT_REF", "GPP_NT_CUT_REF"), "carbon"),
    "reco": (("RECO_NT_VUT_REF", "RECO_NT_CUT_REF"), "carbon"),
}
SITE_METEOROLOGY = ("ta", "sw_in", "vpd", "precip")
"""Site meteorology a model needs from a site file (canonical names)."""


def _records_per_day(res: str) -> float:
    return {"HH": 48.0, "HR": 24.0}.get(res, 1.0)


def _carbon_to_gc_per_day(values: np.ndarray, res: str, times: pd.DatetimeIndex) -> np.ndarray:
    if res in ("HH", "HR"):
        return values * UMOL_M2_S_TO_GC_M2_D
    if res == "YY":
        return values / np.where(times.is_leap_year, 366.0, 365.0)
    return values  # DD, WW, MM: gC m-2 d-1 already


def _weight(qc: np.ndarray | None, res: str, n: int) -> np.ndarray:
    if qc is None:
        return np.ones(n)
    if res in ("HH", "HR"):  # 0 measured, 1 good gap-fill, 2 medium, 3 poor
        return np.where(np.isnan(qc), np.nan, (qc <= 1).astype(float))
    return np.clip(qc, 0.0, 1.0)


def read_site_file(
    path: str | os.PathLike[str],
    nee_variable: str = "NEE_VUT_REF",
    resolution: str | None = None,
    require_nee: bool = True,
) -> xr.Dataset:
    """One FLUXNET-family site file as a canonical sites dataset (one site).

    Parameters
    ----------
    path
        CSV (or zip of CSVs as downloaded) named as FLUXNET, AmeriFlux, ICOS or the FLUXNET
        Shuttle name them.
    nee_variable
        NEE column (``NEE_VUT_REF`` by default; ``NEE_CUT_REF``, ``NEE_VUT_USTAR50``,
        percentiles ``NEE_VUT_05``...). For the default, files without VUT (sites of two years or
        less) fall back to ``NEE_CUT_REF``.
    resolution
        Resolution to pick inside a zip; for a CSV, checked against the content.
    require_nee
        Refuse files without the NEE column (meteorology-only files such as ERAI).

    Returns
    -------
    xr.Dataset
        dims (site: 1, time); ``nee`` [g m-2 d-1], ``nee_weight`` [1], meteorology in canonical
        names; attrs ``time_step``, ``source``, ``nee_variable``, ``site_id``.
    """
    path = Path(path)
    parsed = parse_file_name(path)
    needed = [nee_variable, f"{nee_variable}_QC", "NEE_CUT_REF", "NEE_CUT_REF_QC",
              *(c for columns, _ in METEO_COLUMNS.values() for c in columns)]
    df, where, times, res = read_records(path, resolution or parsed.resolution, needed)
    site = parse_file_name(where.split("!")[-1]).site or parsed.site
    if site is None:
        raise InputError("no site id (like CH-Dav) in the file name", path=where,
                         expected="a FLUXNET-family file name")
    variable, data = _nee(df, res, times, nee_variable, require_nee, where)
    data.update(_meteorology(df, res, times))
    ds = xr.Dataset(
        {k: xr.Variable(*v) for k, v in data.items()},
        coords={"site": [site], "time": times.values.astype("datetime64[ns]")},
    )
    ds["time"].attrs.update(long_name="start of the averaging period")
    ds.attrs.update(time_step=res, source=where, nee_variable=variable, site_id=site,
                    product=parsed.product or "unknown")
    return ds


_Variables = dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, str]]]


def _nee(df: pd.DataFrame, res: str, times: pd.DatetimeIndex, nee_variable: str,
         require_nee: bool, where: str) -> tuple[str, _Variables]:
    """``nee`` [g m-2 d-1] and ``nee_weight`` [1] (none without NEE when not required), and
    the column they come from."""
    variable = nee_variable
    if variable not in df and nee_variable == "NEE_VUT_REF" and "NEE_CUT_REF" in df:
        variable = "NEE_CUT_REF"
        log.info("%s: no NEE_VUT_REF, using NEE_CUT_REF", where)
    if variable not in df:
        if require_nee:
            raise InputError("NEE column missing", path=where, variable=nee_variable,
                             expected=f"one of {[v for v in NEE_VARIABLES if v.endswith('REF')]}")
        return variable, {}
    nee = _carbon_to_gc_per_day(df[variable].to_numpy(dtype=float), res, times)
    if np.all(np.isnan(nee)):
        raise InputError("every NEE value is missing (-9999)", path=where,
                         variable=variable, expected="some measured NEE")
    qc_col = f"{variable}_QC"
    qc = df[qc_col].to_numpy(dtype=float) if qc_col in df else None
    weight = np.where(np.isnan(nee), np.nan, _weight(qc, res, nee.size))
    return variable, {
        "nee": (("site", "time"), nee[None], {**var_attrs("nee"), "source_variable": variable}),
        "nee_weight": (("site", "time"), weight[None], {
            **var_attrs("nee_weight"), "source_variable": qc_col if qc is not None else "none"}),
    }


def _meteorology(df: pd.DataFrame, res: str, times: pd.DatetimeIndex) -> _Variables:
    """Site meteorology, GPP and RECO in canonical names and units, per day."""
    data: _Variables = {}
    for name, (columns, kind) in METEO_COLUMNS.items():
        column = next((c for c in columns if c in df), None)
        if column is None:
            continue
        values = df[column].to_numpy(dtype=float)
        if kind == "carbon":
            values = _carbon_to_gc_per_day(values, res, times)
        elif kind == "precip" and res in ("HH", "HR"):
            values = values * _records_per_day(res)  # mm per record -> mm d-1
        elif kind == "precip" and res == "YY":
            values = values / np.where(times.is_leap_year, 366.0, 365.0)
        data[name] = (("site", "time"), values[None], {**var_attrs(name),
                                                       "source_variable": column})
    return data


_MODEL_STEPS = {"DD": "D", "8D": "8D", "MM": "MS"}


def _refused(refused: xr.DataArray, threshold: float) -> xr.DataArray:
    out = refused.sum("time").astype(np.int64)
    out.attrs = {"units": "1", "long_name": f"periods refused for QC (good fraction < "
                 f"{threshold})"}
    return out


def aggregate(ds: xr.Dataset, time_step: str, min_good_fraction: float = 0.5) -> xr.Dataset:
    """Aggregate a sites dataset to a coarser model time step, honouring QC.

    Each period's NEE is the mean of its records; its weight the mean record weight (the share of
    measured and good gap-filled data). Periods whose weight is below ``min_good_fraction`` are
    refused (NaN) and counted per site in ``refused_periods``. Records already at
    ``time_step`` (DD or MM files) are only thresholded: their QC is the good fraction.

    Parameters
    ----------
    ds
        Canonical sites dataset at ``time_step`` or finer (attribute ``time_step``).
    time_step
        ``DD`` (daily), ``8D`` (8-day from January 1 of each year) or ``MM`` (monthly).
    min_good_fraction
        Minimum weight of a period [0..1].
    """
    if time_step not in _MODEL_STEPS:
        raise InputError(f"unknown model time step {time_step!r}", variable="time_step",
                         expected=" or ".join(_MODEL_STEPS))
    src = ds.attrs.get("time_step")
    order = {"HH": 0, "HR": 0, "DD": 1, "8D": 2, "WW": 2, "MM": 3, "YY": 4}
    if not 0.0 <= min_good_fraction <= 1.0:
        raise InputError(f"min_good_fraction {min_good_fraction}", variable="min_good_fraction",
                         expected="a fraction in [0, 1]")
    if src == time_step:  # records are periods already: their QC is the good fraction
        out = ds.copy()
        if "nee" in ds:
            refused = (ds["nee_weight"].fillna(0.0) < min_good_fraction) & ds["nee"].notnull()
            out["nee"] = ds["nee"].where(~refused)
            out["nee_weight"] = ds["nee_weight"].where(~refused)
            out["refused_periods"] = _refused(refused, min_good_fraction)
        out.attrs["min_good_fraction"] = min_good_fraction
        return out
    if order.get(src, -1) > order[time_step]:
        raise InputError(f"cannot refine {src} records to {time_step}", path=ds.attrs.get(
            "source"), variable="time_step", expected=f"a step of at least {src}")
    if time_step == "8D":
        t = pd.DatetimeIndex(ds["time"].values)
        start = pd.to_datetime(t.year.astype(str) + "-01-01")
        periods = start + pd.to_timedelta(((t - start).days // 8) * 8, unit="D")
        grouped = ds.assign_coords(period=("time", periods)).groupby("period")
        out = grouped.mean("time", skipna=True).rename(period="time")
    else:
        out = ds.resample(time=_MODEL_STEPS[time_step]).mean(skipna=True)
    if "nee" in ds:
        weight = ds["nee_weight"].fillna(0.0)
        if time_step == "8D":
            w = weight.assign_coords(period=("time", periods)).groupby("period").mean(
                "time").rename(period="time")
        else:
            w = weight.resample(time=_MODEL_STEPS[time_step]).mean()
        refused = (w < min_good_fraction) & out["nee"].notnull()
        out["nee"] = out["nee"].where(~refused)
        out["nee_weight"] = w.where(out["nee"].notnull())
        out["refused_periods"] = _refused(refused, min_good_fraction)
    for name in ds.data_vars:
        if name in out:
            out[name].attrs = {**ds[name].attrs, **out[name].attrs}
    out.attrs = {**ds.attrs, "time_step": time_step, "aggregated_from": src,
                 "min_good_fraction": min_good_fraction}
    return out.transpose("site", "time", ...)


def find_site_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories into their FLUXNET-family CSV and zip files (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in (".csv", ".zip")
                              and parse_file_name(f).site and "BIF" not in f.name))
        else:
            out.append(p)
    return out


def find_site_files_at_step(directory: str | os.PathLike[str], time_step: str | None = None
                            ) -> tuple[list[Path], str]:
    """The monthly (MM) or daily (DD) site files of a directory, one per site.

    Files are found by :func:`find_site_files`; their resolution and site come from the file
    name. Where a site has several files of the resolution, the first in name order is kept.

    Parameters
    ----------
    directory
        Directory of FLUXNET2015 (or ONEFlux-style) site files.
    time_step
        ``"MM"`` or ``"DD"``; by default the one of the two present.

    Returns
    -------
    paths, time_step
        Sorted file paths (one per site) and their resolution.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError("not a directory", path=root, expected="a directory of FLUXNET CSV files")
    by_res: dict[str, dict[str, Path]] = {}
    for p in find_site_files([root]):
        parsed = parse_file_name(p)
        if parsed.resolution is not None:
            by_res.setdefault(parsed.resolution, {}).setdefault(str(parsed.site), p)
    usable = {r: v for r, v in by_res.items() if r in ("MM", "DD")}
    if time_step is None:
        if len(usable) != 1:
            found = ", ".join(f"{r} ({len(v)} sites)" for r, v in sorted(by_res.items()))
            raise InputError(f"found {found or 'no FLUXNET site files'}", path=root,
                             variable="time_step",
                             expected="FLUXNET files of exactly one of MM or DD resolution "
                                      "(or name the time step)")
        time_step = next(iter(usable))
    if time_step not in usable:
        raise InputError(f"no {time_step} site files", path=root, variable="time_step",
                         expected="FLX_<SITE>_FLUXNET2015_<SET>_MM_… or …_DD_… CSV files")
    return list(usable[time_step].values()), time_step


def _refuse_duplicates(sites: list[str], sources: list[str]) -> None:
    """Refuse a site id given by several files, naming the files (the first site's in
    full)."""
    dup = sorted({s for s in sites if sites.count(s) > 1})
    if not dup:
        return
    files = [f for f, s in zip(sources, sites, strict=True) if s == dup[0]]
    more = f"; also given twice: {dup[1:6]}" if len(dup) > 1 else ""
    raise InputError(f"site {dup[0]} given by {len(files)} files: {', '.join(files)}{more}",
                     path=files[-1], variable="site",
                     expected="one file per site id and resolution (leave the others out)")


def read_sites(
    paths: Sequence[str | os.PathLike[str]],
    metadata: pd.DataFrame,
    time_step: str = "DD",
    nee_variable: str = "NEE_VUT_REF",
    min_good_fraction: float = 0.5,
    on_missing_metadata: str = "raise",
) -> xr.Dataset:
    """Many site files as one canonical sites dataset at the model time step.

    Parameters
    ----------
    paths
        Site files (or directories of them).
    metadata
        :func:`fluxbridge.io.sitemeta.read_site_metadata` table (lat, lon, igbp by site).
    time_step
        Model step: ``DD``, ``8D`` or ``MM``; finer records are aggregated with QC.
    nee_variable
        NEE column (see :func:`read_site_file`).
    min_good_fraction
        QC threshold of :func:`aggregate`.
    on_missing_metadata
        ``"raise"`` (default) or ``"skip"``: leave out site files absent from ``metadata``,
        listing them in ``attrs["skipped_sites"]`` and the log.

    Returns
    -------
    xr.Dataset
        dims (site, time) with coordinates ``lat``, ``lon``, ``igbp``; ``refused_periods``
        (site) counts periods refused for QC.
    """
    files = find_site_files(paths)
    if not files:
        raise InputError("no site files given", variable="sites", expected="FLUXNET CSV files")
    pieces = []
    for f in files:
        ds = aggregate(read_site_file(f, nee_variable=nee_variable), time_step,
                       min_good_fraction)
        if "refused_periods" not in ds:
            ds["refused_periods"] = ("site", [0])
        pieces.append(ds)
    sites = [str(p["site"].values[0]) for p in pieces]
    missing = sorted(set(sites) - set(metadata.index))
    if missing and on_missing_metadata == "skip":
        log.warning("%d site(s) without metadata left out: %s", len(missing), missing)
        pieces = [p for p, s in zip(pieces, sites, strict=True) if s not in missing]
        sites = [s for s in sites if s not in missing]
    elif missing:
        raise InputError(f"{len(missing)} site(s) absent from the metadata table: {missing[:10]}",
                         path=metadata.attrs.get("source"), variable="SITE_ID",
                         expected="a row (latitude, longitude, IGBP) for every site file")
    _refuse_duplicates(sites, [str(p.attrs["source"]) for p in pieces])
    attrs = [dict(p.attrs) for p in pieces]
    out = xr.concat([p.drop_attrs() if hasattr(p, "drop_attrs") else p for p in pieces],
                    dim="site", join="outer", data_vars="all", coords="different",
                    compat="equals", combine_attrs="drop")
    for name in out.data_vars:
        if name in pieces[0]:
            out[name].attrs = dict(pieces[0][name].attrs)
    meta = metadata.loc[sites]
    out = out.assign_coords(
        lat=("site", meta["lat"].to_numpy(float), {"units": "degrees_north"}),
        lon=("site", meta["lon"].to_numpy(float), {"units": "degrees_east"}),
        igbp=("site", meta["igbp"].astype(str).to_numpy()),
    )
    out["refused_periods"] = out["refused_periods"].fillna(0).astype(np.int64)
    out["refused_periods"].attrs = {"units": "1", "long_name": "periods refused for QC"}
    out.attrs = {"time_step": time_step, "nee_variable": nee_variable,
                 "min_good_fraction": min_good_fraction,
                 "source_files": "\n".join(a["source"] for a in attrs),
                 "skipped_sites": " ".join(missing) if on_missing_metadata == "skip" else ""}
    n_refused = int(out["refused_periods"].sum())
    if n_refused:
        log.info("%d site-periods refused for QC (< %.2f good data)", n_refused,
                 min_good_fraction)
    return out
