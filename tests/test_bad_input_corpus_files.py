"""The bad-input corpus, continued: files that are damaged, duplicated, linked in loops, too
large to read, in another encoding, or out of step with the others; each refused by
``fluxbridge validate`` with one line naming file, variable, found and expected."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus_world import Case, assert_refused_in_one_line, edit_nc, make_world

from fluxbridge.io.safefiles import MAX_MEMBER_BYTES


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("corpus-files"))


def era5_years_not_overlapping_the_sites(w: Path, f: dict):
    def edit(ds: xr.Dataset) -> xr.Dataset:
        dim = next(d for d in ("valid_time", "time") if d in ds.dims)
        times = pd.DatetimeIndex(ds[dim].values)
        return ds.assign_coords({dim: times - pd.DateOffset(years=8)})  # leap years kept
    for rel in f["meteorology"]:
        edit_nc(w / rel, edit)
    return f["meteorology"], "time", "years 2002-2003"


def site_file_in_utf16(w: Path, f: dict):
    p = w / f["sites"][0]
    p.write_bytes(p.read_text().encode("utf-16"))
    return f["sites"][0], "encoding", "UTF-16"


def site_file_given_twice(w: Path, f: dict):
    p = w / f["sites"][0]
    twin = p.with_name(p.name.replace("_1-4.csv", "_1-3.csv"))
    twin.write_bytes(p.read_bytes())
    return [f["sites"][0], str(twin.relative_to(w))], "site", "given by 2 files"


def site_links_in_a_loop(w: Path, f: dict):
    folder = w / f["sites"][0].rsplit("/", 1)[0]
    a, b = (f"FLX_ZZ-Lp{i}_FLUXNET2015_FULLSET_DD_2010-2011_1-4.csv" for i in (1, 2))
    os.symlink(b, folder / a)
    os.symlink(a, folder / b)
    return str((folder / a).relative_to(w)), "inputs.sites", "loop of symbolic links"


def _declare_size(path: Path, member: str, size: int) -> None:
    """Make a zip's headers declare ``size`` bytes for ``member`` (its data unchanged)."""
    raw = bytearray(path.read_bytes())
    name = member.encode()
    local = raw.index(b"PK\x03\x04")  # the one member's local header
    central = raw.index(b"PK\x01\x02")
    assert raw[local + 30: local + 30 + len(name)] == name
    struct.pack_into("<I", raw, local + 22, size)
    struct.pack_into("<I", raw, central + 24, size)
    path.write_bytes(bytes(raw))


def site_zip_member_larger_than_the_limit(w: Path, f: dict):
    p = w / f["sites"][0]
    member = p.name.replace(p.name[4:10], "ZZ-Zip")
    archive = p.with_name(member.replace("_DD_", "_").replace(".csv", ".zip"))
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, p.read_text().replace(p.name[4:10], "ZZ-Zip"))
    size = MAX_MEMBER_BYTES + MAX_MEMBER_BYTES // 2  # 1.5 GiB, as in the issue
    _declare_size(archive, member, size)
    inputs = w / "inputs.yaml"
    text = inputs.read_text()
    pattern = next(line for line in text.splitlines() if line.startswith("sites:"))
    inputs.write_text(text.replace(pattern, f"sites: [{pattern[7:]}, "
                                   f"{archive.relative_to(w)}]"))
    return str(archive.relative_to(w)), member, f"{size} bytes"


def land_cover_codes_outside_igbp(w: Path, f: dict):
    def edit(ds: xr.Dataset) -> None:
        codes = ds["Majority_Land_Cover_Type_1"].values
        codes[0, :3] = [17, 42, 17]
    edit_nc(w / f["land_cover"], edit)
    return f["land_cover"], "Majority_Land_Cover_Type_1", "[17, 42]"


def land_cover_too_large_to_read(w: Path, f: dict):
    """A 0.025° global land cover: 1 GiB of classes, a file of a few kB (nothing written)."""
    p = w / f["land_cover"]
    p.unlink()
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("lat", 7200)
        nc.createDimension("lon", 14400)
        nc.createVariable("lat", "f8", ("lat",))[:] = 90 - 0.025 * (np.arange(7200) + 0.5)
        nc.createVariable("lon", "f8", ("lon",))[:] = -180 + 0.025 * (np.arange(14400) + 0.5)
        nc.createVariable("LC_Type1", "u1", ("lat", "lon"), zlib=True, chunksizes=(720, 1440),
                          fill_value=255)
    return f["land_cover"], "LC_Type1", "7200 x 14400 cells"


def modis_year_all_fill(w: Path, f: dict):
    rel = next(r for r in f["remote_sensing"] if "MOD13C1" in r and r.endswith("2011.nc"))
    edit_nc(w / rel, lambda ds: ds["NDVI"].values.fill(np.nan))
    return rel, "NDVI", "no usable value in its 23 composites"


CASES: list[Case] = [
    era5_years_not_overlapping_the_sites, site_file_in_utf16, site_file_given_twice,
    site_links_in_a_loop, site_zip_member_larger_than_the_limit,
    land_cover_codes_outside_igbp, land_cover_too_large_to_read, modis_year_all_fill,
]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_bad_file_is_refused_in_one_line(world, tmp_path, capsys, corrupt):
    assert_refused_in_one_line(world, tmp_path, capsys, corrupt)
