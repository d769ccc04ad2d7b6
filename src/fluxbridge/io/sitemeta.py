"""Site metadata tables: FLUXNET BIF (long format, CSV or XLSX) and wide site lists."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from fluxbridge.errors import InputError
from fluxbridge.grid import normalise_longitude
from fluxbridge.vocabulary import IGBP_CODE

_WIDE_ALIASES = {
    "site": ("SITE_ID", "site_id", "sitename", "site", "id", "Site"),
    "lat": ("LOCATION_LAT", "location_lat", "lat", "latitude", "Latitude", "LAT"),
    "lon": ("LOCATION_LONG", "location_long", "lon", "longitude", "Longitude", "LON"),
    "igbp": ("IGBP", "igbp", "igbp_land_use", "classid", "IGBP_class", "IGBPname"),
}


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".xlsx", ".xls"):
        return pd.read_excel(path, dtype=str)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the FLUXNET2015 BIF is latin-1
        text = raw.decode("latin-1")
    if not text.strip():
        raise ValueError("the file is empty")
    head = text.splitlines()[0]
    sep = ";" if head.count(";") > head.count(",") else ","
    return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=True)


def read_site_metadata(*paths: str | os.PathLike[str]) -> pd.DataFrame:
    """Latitude, longitude and IGBP class of each site, from one or several tables.

    With several tables, a site takes its row from the first table that has it (e.g. the BIF
    first, then a wider site list for the sites the BIF lacks).

    Parameters
    ----------
    *paths
        Metadata files (see :func:`read_site_table`).

    Returns
    -------
    pd.DataFrame
        Index ``site``; columns ``lat`` [degrees_north], ``lon`` [degrees_east, -180..180),
        ``igbp``; ``attrs["source"]`` names the files, ``attrs["origin"]`` maps each site to
        the file it came from.
    """
    if not paths:
        raise InputError("no site metadata file given", variable="site_table")
    tables = [read_site_table(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    merged = pd.concat(tables)
    origin = pd.concat([pd.Series(t.attrs["source"], index=t.index) for t in tables])
    keep = ~merged.index.duplicated(keep="first")
    out = merged[keep].sort_index()
    out.attrs = {"source": " + ".join(str(p) for p in paths),
                 "origin": origin[keep].to_dict(),
                 "dropped": sorted({d for t in tables for d in t.attrs["dropped"]}
                                   - set(out.index)),
                 "unknown_igbp": sorted({u for t in tables for u in t.attrs["unknown_igbp"]})}
    return out


def read_site_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Latitude, longitude and IGBP class of each site.

    Reads the FLUXNET BIF long format (``SITE_ID, GROUP_ID, VARIABLE_GROUP, VARIABLE,
    DATAVALUE``; CSV with ``;`` or ``,``, or XLSX) and wide site lists (columns such as
    ``SITE_ID``/``sitename``, ``LOCATION_LAT``/``lat``, ``LOCATION_LONG``/``lon``, ``IGBP``).

    Parameters
    ----------
    path
        The metadata file.

    Returns
    -------
    pd.DataFrame
        Index ``site``; columns ``lat`` [degrees_north], ``lon`` [degrees_east, -180..180),
        ``igbp`` (IGBP class name). Sites lacking a coordinate are dropped (logged in
        ``attrs["dropped"]``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("site metadata file not found", path=path)
    try:
        df = _read_table(path)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise InputError(f"cannot read the table: {exc}", path=path) from None
    if {"SITE_ID", "VARIABLE", "DATAVALUE"} <= set(df.columns):
        wanted = df[df["VARIABLE"].isin(["LOCATION_LAT", "LOCATION_LONG", "IGBP"])]
        wide = wanted.drop_duplicates(["SITE_ID", "VARIABLE"]).pivot(
            index="SITE_ID", columns="VARIABLE", values="DATAVALUE")
        wide = wide.rename(columns={"LOCATION_LAT": "lat", "LOCATION_LONG": "lon",
                                    "IGBP": "igbp"})
    else:
        cols = {}
        for canon, aliases in _WIDE_ALIASES.items():
            found = next((a for a in aliases if a in df.columns), None)
            if found is None and canon != "igbp":
                raise InputError("site table lacks a column", path=path, variable=canon,
                                 expected=" or ".join(aliases))
            if found is not None:
                cols[found] = canon
        wide = df[list(cols)].rename(columns=cols).set_index("site")
    for col in ("lat", "lon"):
        if col not in wide:
            raise InputError("no site has this variable", path=path, variable=col)
        wide[col] = pd.to_numeric(wide[col], errors="coerce")
    if "igbp" not in wide:
        wide["igbp"] = "UNK"
    wide["igbp"] = wide["igbp"].fillna("UNK").astype(str).str.strip().str.upper()
    dropped = wide.index[wide["lat"].isna() | wide["lon"].isna()].tolist()
    wide = wide.dropna(subset=["lat", "lon"])
    bad = (wide["lat"].abs() > 90) | (wide["lon"] < -180) | (wide["lon"] > 360)
    if bad.any():
        first = wide[bad].iloc[0]
        raise InputError(f"coordinates out of range for {list(wide.index[bad])[:5]} (first: "
                         f"lat {first['lat']:g}, lon {first['lon']:g})",
                         path=path, variable="lat/lon",
                         expected="latitude in [-90, 90], longitude in [-180, 360]")
    wide["lon"] = normalise_longitude(wide["lon"].to_numpy())
    out = wide[["lat", "lon", "igbp"]].astype({"lat": float, "lon": float})
    out.index = out.index.astype(str).rename("site")
    out.attrs["dropped"] = dropped
    out.attrs["source"] = str(path)
    unknown = sorted(set(out["igbp"]) - set(IGBP_CODE) - {"UNK"})
    out.attrs["unknown_igbp"] = unknown
    return out.sort_index()
