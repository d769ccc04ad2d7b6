"""File names, CSV tables and timestamps of the FLUXNET2015 / ONEFlux family of site files.

FLUXNET2015 FULLSET and SUBSET, AmeriFlux FLUXNET, ICOS (Warm Winter 2020, ETC L2) and the
FLUXNET Shuttle's FLUXMET files share one layout: a CSV with one header row, timestamps first
(``TIMESTAMP`` or ``TIMESTAMP_START``/``TIMESTAMP_END``), -9999 for missing values, variables
selected by name. Files may come zipped as downloaded. :mod:`fluxbridge.io.fluxnet` turns them
into canonical sites datasets.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fluxbridge.constants import MISSING_FLUXNET
from fluxbridge.errors import InputError
from fluxbridge.io.safefiles import check_link, read_member, text_encoding

RESOLUTIONS = ("HH", "HR", "DD", "WW", "MM", "YY")
PRODUCTS = ("FULLSET", "SUBSET", "ERAI", "ERA5", "AUXMETEO", "AUXNEE", "FLUXMET")

_SITE_RE = re.compile(r"(?<![A-Za-z])([A-Z]{2}-[A-Za-z0-9]{3})(?![A-Za-z0-9])")
_YEARS_RE = re.compile(r"_(\d{4})-(\d{4})")

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


def _open_text(path: Path, resolution: str | None) -> tuple[str, str]:
    """CSV text of a zip's member of the wanted resolution, and its display name
    (``zip!member``); the member refused by its declared size before it is read."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(".csv")]
            member = _choose_member(members, resolution)
            if member is None:
                raise InputError(f"no flux CSV at resolution {resolution or 'any'} inside the "
                                 f"zip (members: {members[:8]})", path=path,
                                 expected="a FLUXNET/FLUXMET CSV member")
            where = f"{path}!{member}"
            raw = read_member(zf, member, path)
            return raw.decode(text_encoding(raw[: 1 << 16], where), errors="replace"), where
    except zipfile.BadZipFile:
        raise InputError("not a valid zip file (truncated download?)", path=path) from None


def _head_and_tail(path: Path) -> tuple[str, str, str]:
    """First and last lines of a text file without reading it all, and its encoding."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(min(size, 1 << 16))
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    encoding = text_encoding(head, str(path))
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
    check_link(path, "sites")
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
        raise InputError(f"no TIMESTAMP or TIMESTAMP_START column (header starts "
                         f"{names[:3]})", path=where, variable="TIMESTAMP",
                         expected="a FLUXNET-family CSV header")
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




def read_records(path: Path, resolution: str | None, columns: Sequence[str]
                 ) -> tuple[pd.DataFrame, str, pd.DatetimeIndex, str]:
    """A site file's timestamps and the wanted columns, as numbers.

    ``path`` is a CSV or a zip of CSVs (``resolution`` picks the member); ``columns`` absent
    from the file are ignored.

    Returns
    -------
    tuple
        The table (-9999 as NaN), the file's display name (``zip!member`` inside a zip), the
        period starts and the resolution the content shows.

    Raises
    ------
    InputError
        A truncated or malformed file, text in a number column, bad timestamps, or a
        resolution other than the name's.
    """
    csv = _check_csv(path, resolution)
    df = _read_numeric(csv, columns)
    if df is None:  # something to report: the string read says what
        df = _read_strings(csv, columns)
    where = csv.where
    times, res = _parse_times(df, where)
    named = parse_file_name(where.split("!")[-1]).resolution or parse_file_name(path).resolution
    if named is not None and named != res and not (named == "HR" and res == "HH"
                                                   and times.size < 3):
        raise InputError(f"content has {res} records but the name says {named}", path=where,
                         variable="TIMESTAMP", expected=f"{named} records")
    for column in df.columns:
        if column not in ("TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END") \
                and not pd.api.types.is_numeric_dtype(df[column]):
            bad = df[column][pd.to_numeric(df[column], errors="coerce").isna()
                             & df[column].notna()]
            raise InputError(f"non-numeric value {bad.iloc[0]!r} at row {bad.index[0] + 2}",
                             path=where, variable=column, expected="numbers, -9999 if missing")
    return df, where, times, res
