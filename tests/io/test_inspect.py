"""`fluxbridge inspect FILE`: real files are usable, bad variants exit 2 with one line."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.cli import main
from fluxbridge.io.inspect import inspect_file

REAL_USABLE = [
    ("fluxnet2015/fullset/FLX_US-Wi7_FLUXNET2015_ERAI_HH_1989-2014_1-4.csv",
     ["no NEE", "site meteorology", "2004-06-26", "name says 1989-2014"]),
    ("fluxnet2015/fullset/FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv",
     ["resolution: DD", "NEE_VUT_REF", "365 records"]),
    ("fluxnet2015/MM/FLX_AT-Neu_FLUXNET2015_SUBSET_MM_2002-2012_1-4.csv",
     ["resolution: MM", "2002-01 .. 2012-12"]),
    ("sites/FLX_AA-Flx_BIF_LATEST.csv", ["212 sites"]),
    ("regions/TRANSCOM_Map_MZT.nc", ["region mask", "Europe"]),
    ("inversions/zonal/CT2017_fluxes_za_ts_monthly.nc", ["member CT2017", "Tg month-1"]),
    ("inversions/gcb2018_regional/JAMSTEC_month.nc", ["member JAMSTEC", "1996-01"]),
    ("modis/CH-Oe2_modistools_06b1_lai_2004-2023.csv", ["lai [m2 m-2]"]),
]


@pytest.mark.parametrize(("relative", "phrases"), REAL_USABLE)
def test_real_files_usable(real_data, capsys, relative, phrases):
    assert main(["inspect", str(real_data / relative)]) == 0
    out = capsys.readouterr().out
    assert "usable:     yes" in out
    for phrase in phrases:
        assert phrase in out


def _bad_site_variants(real_data, tmp_path):
    dd = (real_data / "fluxnet2015" / "fullset"
          / "FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv")
    text = dd.read_text()
    variants = {}
    (p := tmp_path / "FLX_US-Wi7_FLUXNET2015_FULLSET_HH_2005-2005_1-4.csv").write_text(text)
    variants["content contradicts name"] = p
    (p := tmp_path / "FLX_US-Cut_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv").write_text(
        text[: len(text) // 2])
    variants["truncated csv"] = p
    (p := tmp_path / "FLX_US-Emp_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv").write_text("")
    variants["empty"] = p
    df = pd.read_csv(dd, dtype={"TIMESTAMP": str})
    p = tmp_path / "FLX_US-Nne_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv"
    df[["TIMESTAMP", "TA_F"]].to_csv(p, index=False)
    variants["no NEE, no meteorology"] = p
    df.assign(TIMESTAMP=df["TIMESTAMP"].iloc[::-1].to_numpy()).to_csv(
        p := tmp_path / "FLX_US-Rev_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv", index=False)
    variants["unordered"] = p
    return variants


def test_bad_files_exit_2_with_one_line(real_data, tmp_path, capsys):
    variants = _bad_site_variants(real_data, tmp_path)
    mask = real_data / "regions" / "TRANSCOM_Map_MZT.nc"
    (p := tmp_path / "mask_truncated.nc").write_bytes(mask.read_bytes()[:3000])
    variants["truncated netcdf"] = p
    zonal = xr.open_dataset(real_data / "inversions" / "zonal" / "CT2017_fluxes_za_ts_monthly.nc",
                            decode_times=False)
    zonal["SFCO2_LND"].attrs["units"] = "mol m-2 s-1"
    zonal.to_netcdf(p := tmp_path / "WRONG_fluxes_za_ts_monthly.nc")
    variants["wrong units"] = p
    (p := tmp_path / "notes.docx").write_bytes(b"PK")
    variants["unknown type"] = p
    variants["absent"] = tmp_path / "absent.csv"
    for what, path in variants.items():
        assert main(["inspect", str(path)]) == 2, what
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(path) in err, (what, err)
        assert not inspect_file(path).usable


def test_report_names_variables_and_coverage(tmp_path, real_data):
    src = real_data / "fluxnet2015" / "DD" / "FLX_AT-Neu_FLUXNET2015_SUBSET_DD_2002-2012_1-4.csv"
    df = pd.read_csv(src, dtype={"TIMESTAMP": str})
    half = len(df) // 2
    df.loc[: half - 1, "NEE_VUT_REF"] = -9999
    df.to_csv(path := tmp_path / src.name, index=False)
    report = inspect_file(path)
    assert report.usable and report.resolution == "DD"
    assert report.coverage["nee"] == pytest.approx((len(df) - half) / len(df))
    assert report.variables["nee"].startswith("g m-2 d-1")
    assert report.period == (pd.to_datetime(df["TIMESTAMP"].iloc[0]).strftime("%Y-%m-%d"),
                             pd.to_datetime(df["TIMESTAMP"].iloc[-1]).strftime("%Y-%m-%d"))


def test_zipped_site_file(real_data, tmp_path, capsys):
    src = real_data / "fluxnet2015" / "DD" / "FLX_AT-Neu_FLUXNET2015_SUBSET_DD_2002-2012_1-4.csv"
    folder = tmp_path / "zip"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    archive = shutil.make_archive(str(tmp_path / "FLX_AT-Neu_FLUXNET2015_SUBSET_2002-2012_1-4"),
                                  "zip", folder)
    assert main(["inspect", archive]) == 0
    assert "inside a zip" in capsys.readouterr().out
    assert np.isfinite(inspect_file(archive).coverage["nee"])
