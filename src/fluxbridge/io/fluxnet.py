"""Eddy-covariance site files of the FLUXNET2015 / ONEFlux family.

FLUXNET2015 FULLSET and SUBSET, AmeriFlux FLUXNET, ICOS (Warm Winter 2020, ETC L2) and the
FLUXNET Shuttle's FLUXMET files share one layout: a CSV with one header row, timestamps first
(``TIMESTAMP`` or ``TIMESTAMP_START``/``TIMESTAMP_END``), -9999 for missing values, variables
selected by name. Files may come zipped as downloaded.

Units on output: NEE, GPP and RECO in g m-2 d-1 of carbon (positive NEE = source), whatever the
resolution; the QC of NEE becomes a weight in 0..1.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import MISSING_FLUXNET, UMOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.vocabulary import attrs as var_attrs

log = logging.getLogger(__name__)

RESOLUTIONS = ("HH", "HR", "DD", "WW", "MM", "YY")
PRODUCTS = ("FULLSET", "SUBSET", "ERAI", "ERA5", "AUXMETEO", "AUXNEE", "FLUXMET")
NEE_VARIABLES = ("NEE_VUT_REF", "NEE_CUT_REF", "NEE_VUT_USTAR50", "NEE_CUT_USTAR50",
                 "NEE_VUT_MEAN", "NEE_CUT_MEAN", *(f"NEE_VUT_{p:02d}" for p in range(5, 100, 5)),
                 *(f"NEE_CUT_{p:02d}" for p in range(5, 100, 5)))

_SITE_RE = re.compile(r"(?<![A-Za-z])([A-Z]{2}-[A-Za-z0-9]{3})(?![A-Za-z0-9])")
_YEARS_RE = re.compile(r"_(\d{4})-(\d{4})")

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

_STEP_SECONDS = {"HH": 1800, "HR": 3600, "DD": 86400, "WW": 7 * 86400}


@dataclass(frozen=True)
class SiteFileName:
    """What a FLUXNET-family file name says (each part may be unknown)."""

    site: str | None
    product: str | None
    resolution: str | None
    first_year: int | None
    last_year: int | None


def parse_file_name(path: str | os.PathLike[str]) -> SiteFileName:
    """Site id, product, resolution and years from a FLUXNET-family file name."""
    name = Path(path).name
    tokens = re.split(r"[_.]", name)
    site = _SITE_RE.search(name)
    years = _YEARS_RE.search(name)
    return SiteFileName(
        site=site.group(1) if site else None,
        product=next((t for t in tokens if t in PRODUCTS), None),
        resolution=next((t for t in tokens if t in RESOLUTIONS), None),
        first_year=int(years.group(1)) if years else None,
        last_year=int(years.group(2)) if years else None,
    )


_MEMBER_PREFERENCE = ("DD", "HH", "HR", "WW", "MM", "YY")
_PRODUCT_PREFERENCE = ("FULLSET", "FLUXMET", None, "SUBSET")


def _choose_member(members: list[str], resolution: str | None) -> str | None:
    """The flux CSV of a zip: the requested resolution, else daily, else the finest."""
    ranked = []
    for m in members:
        parsed = parse_file_name(m)
        if parsed.resolution is None or parsed.product not in _PRODUCT_PREFERENCE:
            continue  # BIF, SITEINFO, ERA/AUX products
        if resolution is not None and parsed.resolution != resolution:
            continue
        ranked.append((_MEMBER_PREFERENCE.index(parsed.resolution),
                       _PRODUCT_PREFERENCE.index(parsed.product), m))
    return min(ranked)[2] if ranked else None


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _open_text(path: Path, resolution: str | None) -> tuple[str, str]:
    """CSV text and its display name; for a zip, the member of the wanted resolution."""
    if path.suffix.lower() != ".zip":
        return _decode(path.read_bytes()), str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(".csv")]
            member = _choose_member(members, resolution)
            if member is None:
                raise InputError(f"no flux CSV at resolution {resolution or 'any'} inside the "
                                 f"zip (members: {members[:8]})", path=path,
                                 expected="a FLUXNET/FLUXMET CSV member")
            return _decode(zf.read(member)), f"{path}!{member}"
    except zipfile.BadZipFile:
        raise InputError("not a valid zip file (truncated download?)", path=path) from None


def _head_and_tail(path: Path) -> tuple[str, str, str]:
    """First and last lines of a text file without reading it all, and its encoding."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(min(size, 1 << 16))
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    try:
        head.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError as exc:  # a character cut at the 64 kB boundary is still UTF-8
        encoding = "utf-8" if exc.start >= len(head) - 3 else "latin-1"
    first = head.decode(encoding, errors="replace").splitlines()
    last = tail.decode(encoding, errors="replace").rstrip("\r\n").splitlines()
    return (first[0] if first else ""), (last[-1] if last else ""), encoding


_NA_VALUES = [MISSING_FLUXNET, str(MISSING_FLUXNET), "-9999.0"]


@dataclass(frozen=True)
class _Csv:
    """A site CSV checked for its header, timestamps column and last record."""

    where: str
    names: list[str]
    time_cols: list[str]
    encoding: str
    path: Path | None = None  # a plain CSV file
    text: str | None = None  # a zip member, decoded

    def source(self) -> io.StringIO | Path:
        return io.StringIO(self.text) if self.text is not None else self.path


def _check_csv(path: Path, resolution: str | None) -> _Csv:
    if not path.is_file():
        raise InputError("file not found", path=path)
    text = None
    if path.suffix.lower() == ".zip":
        text, where = _open_text(path, resolution)
        lines = text.rstrip("\r\n").splitlines()
        header, last = (lines[0], lines[-1]) if lines else ("", "")
        encoding = "utf-8"
    else:
        header, last, encoding = _head_and_tail(path)
        where = str(path)
    if not header.strip():
        raise InputError("file is empty", path=where, expected="a CSV with a header row")
    names = header.split(",")
    time_cols = [c for c in ("TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END") if c in names]
    if not time_cols:
        raise InputError("no TIMESTAMP or TIMESTAMP_START column", path=where,
                         variable="TIMESTAMP", expected="a FLUXNET-family CSV header")
    fields = last.split(",")
    if len(fields) != len(names):
        stop = names[min(len(fields), len(names)) - 1]
        raise InputError(f"the last record has {len(fields)} of {len(names)} fields; "
                         "truncated file?", path=where, variable=stop,
                         expected="complete records")
    return _Csv(where, names, time_cols, encoding, path=None if text else path, text=text)


def _read_numeric(csv: _Csv, columns: Sequence[str]) -> pd.DataFrame | None:
    """The wanted columns parsed straight to numbers (timestamps int64, values float64).

    The fast path for well-formed files: one pass of the C parser over the columns asked for,
    no string columns. ``None`` where the file needs :func:`read_table`'s checks (text in a
    number column, a missing or malformed timestamp, duplicated or quoted names...), which then
    say what is wrong.
    """
    if len(set(csv.names)) != len(csv.names):
        return None
    wanted = set(columns) | set(csv.time_cols)
    use = [c for c in csv.names if c in wanted]
    dtype = {c: "int64" if c in csv.time_cols else "float64" for c in use}
    try:
        df = pd.read_csv(csv.source(), usecols=use, dtype=dtype, encoding=csv.encoding,
                         na_values=_NA_VALUES, keep_default_na=False)
    except (pd.errors.ParserError, ValueError, TypeError, OverflowError):
        return None
    return None if df.empty else df


def read_table(path: str | os.PathLike[str], resolution: str | None = None,
               columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, str]:
    """The raw CSV of a site file (timestamps as strings, -9999 as NaN) and its display name.

    Parameters
    ----------
    path
        CSV, or zip of CSVs as downloaded.
    resolution
        Resolution of the member to pick inside a zip.
    columns
        Read only these columns (those absent are ignored) besides the timestamps; all by
        default.
    """
    csv = _check_csv(Path(path), resolution)
    return _read_strings(csv, columns), csv.where


def _read_strings(csv: _Csv, columns: Sequence[str] | None) -> pd.DataFrame:
    where, time_cols = csv.where, csv.time_cols
    wanted = None if columns is None else set(columns) | set(time_cols)
    try:
        df = pd.read_csv(csv.source(), dtype={c: str for c in time_cols},
                         encoding=csv.encoding, na_values=_NA_VALUES,
                         usecols=None if wanted is None else (lambda c: c in wanted),
                         keep_default_na=False, low_memory=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"cannot parse the CSV: {exc}".replace("\n", " "), path=where) from None
    if df.empty:
        raise InputError("file has a header but no records", path=where)
    ragged = df[time_cols[0]].isna() | ~df[time_cols[0]].str.fullmatch(r"\d{4,12}")
    if ragged.any():
        raise InputError(f"{int(ragged.sum())} records with a malformed timestamp (first at row "
                         f"{int(np.flatnonzero(ragged)[0]) + 2}); truncated file?", path=where,
                         variable=time_cols[0], expected="digits YYYY[MM[DD[HHMM]]]")
    return df


_TIME_FORMATS = {12: "%Y%m%d%H%M", 8: "%Y%m%d", 6: "%Y%m", 4: "%Y"}


def _integer_times(values: np.ndarray) -> tuple[pd.DatetimeIndex, int] | None:
    """Timestamps read as integers (YYYY[MM[DD[HHMM]]]) to dates by integer arithmetic.

    ``None`` unless every stamp has the same number of digits and is a valid date and time
    within pandas' nanosecond range; :func:`_parse_times` then parses the digits as text and
    says what is wrong.
    """
    if values.size == 0 or values.min() <= 0:
        return None
    n = len(str(values.min()))
    if len(str(values.max())) != n or n not in _TIME_FORMATS:  # digits grow with the value
        return None
    year = values // 10 ** (n - 4)
    month = values // 10 ** (n - 6) % 100 if n >= 6 else np.ones_like(values)
    day = values // 10 ** (n - 8) % 100 if n >= 8 else np.ones_like(values)
    minutes = (values // 100 % 100) * 60 + values % 100 if n == 12 else np.zeros_like(values)
    if (year.min() < 1678 or year.max() > 2261 or month.min() < 1 or month.max() > 12
            or day.min() < 1 or (n == 12 and ((values // 100 % 100).max() > 23
                                              or (values % 100).max() > 59))):
        return None
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1)
    if np.any(days.astype("datetime64[M]") != months):  # a day beyond the month's end
        return None
    times = (days.astype("datetime64[m]") + minutes).astype("datetime64[ns]")
    return pd.DatetimeIndex(times), n


def _parse_times(df: pd.DataFrame, where: str) -> tuple[pd.DatetimeIndex, str]:
    """Period starts and the resolution the content shows."""
    col = "TIMESTAMP_START" if "TIMESTAMP_START" in df else "TIMESTAMP"
    parsed = (_integer_times(df[col].to_numpy())
              if pd.api.types.is_integer_dtype(df[col]) else None)
    if parsed is not None:
        times, n = parsed
    else:
        raw = df[col].astype(str)
        lengths = set(raw.str.len())
        if len(lengths) != 1:
            raise InputError(f"timestamps of mixed lengths {sorted(lengths)}", path=where,
                             variable=col, expected="one timestamp format")
        n = lengths.pop()
        fmt = _TIME_FORMATS.get(n)
        if fmt is None:
            raise InputError(f"timestamp of {n} digits", path=where, variable=col,
                             expected="YYYY, YYYYMM, YYYYMMDD or YYYYMMDDHHMM")
        try:
            times = pd.DatetimeIndex(pd.to_datetime(raw, format=fmt))
        except ValueError as exc:
            raise InputError(f"invalid timestamp: {exc}", path=where, variable=col) from None
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise InputError(f"duplicated timestamp {dup}", path=where, variable=col,
                         expected="unique timestamps")
    if not times.is_monotonic_increasing:
        raise InputError("timestamps are not in increasing order", path=where, variable=col,
                         expected="records sorted in time")
    if n == 4:
        return times, "YY"
    if n == 6:
        return times, "MM"
    if times.size < 2:
        return times, "HH" if n == 12 else "DD"
    step = float(np.median(np.diff(times.values).astype("timedelta64[s]").astype(float)))
    res = min(_STEP_SECONDS, key=lambda k: abs(_STEP_SECONDS[k] - step))
    if n == 8 and res not in ("DD", "WW"):
        res = "DD"
    return times, res


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
    csv = _check_csv(path, resolution or parsed.resolution)
    df = _read_numeric(csv, needed)
    if df is None:  # something to report: the string read says what
        df = _read_strings(csv, needed)
    where = csv.where
    times, res = _parse_times(df, where)
    named = parse_file_name(where.split("!")[-1]).resolution or parsed.resolution
    if named is not None and named != res and not (named == "HR" and res == "HH"
                                                   and times.size < 3):
        raise InputError(f"content has {res} records but the name says {named}", path=where,
                         variable="TIMESTAMP", expected=f"{named} records")
    site = parse_file_name(where.split("!")[-1]).site or parsed.site
    if site is None:
        raise InputError("no site id (like CH-Dav) in the file name", path=where,
                         expected="a FLUXNET-family file name")
    for column in df.columns:
        if column not in ("TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END") \
                and not pd.api.types.is_numeric_dtype(df[column]):
            bad = df[column][pd.to_numeric(df[column], errors="coerce").isna()
                             & df[column].notna()]
            raise InputError(f"non-numeric value {bad.iloc[0]!r} at row {bad.index[0] + 2}",
                             path=where, variable=column, expected="numbers, -9999 if missing")
    variable = nee_variable
    if variable not in df and nee_variable == "NEE_VUT_REF" and "NEE_CUT_REF" in df:
        variable = "NEE_CUT_REF"
        log.info("%s: no NEE_VUT_REF, using NEE_CUT_REF", where)
    data: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, str]]] = {}
    if variable in df:
        nee = _carbon_to_gc_per_day(df[variable].to_numpy(dtype=float), res, times)
        if np.all(np.isnan(nee)):
            raise InputError("every NEE value is missing (-9999)", path=where,
                             variable=variable, expected="some measured NEE")
        qc_col = f"{variable}_QC"
        qc = df[qc_col].to_numpy(dtype=float) if qc_col in df else None
        weight = np.where(np.isnan(nee), np.nan, _weight(qc, res, nee.size))
        data["nee"] = (("site", "time"), nee[None], {**var_attrs("nee"),
                                                     "source_variable": variable})
        data["nee_weight"] = (("site", "time"), weight[None], {
            **var_attrs("nee_weight"), "source_variable": qc_col if qc is not None else "none"})
    elif require_nee:
        raise InputError("NEE column missing", path=where, variable=nee_variable,
                         expected=f"one of {[v for v in NEE_VARIABLES if v.endswith('REF')]}")
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
    ds = xr.Dataset(
        {k: xr.Variable(*v) for k, v in data.items()},
        coords={"site": [site], "time": times.values.astype("datetime64[ns]")},
    )
    ds["time"].attrs.update(long_name="start of the averaging period")
    ds.attrs.update(time_step=res, source=where, nee_variable=variable, site_id=site,
                    product=parsed.product or "unknown")
    return ds


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
    dup = sorted({s for s in sites if sites.count(s) > 1})
    if dup:
        raise InputError(f"site(s) given twice: {dup}", variable="site",
                         expected="one file per site and resolution")
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
