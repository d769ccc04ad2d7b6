"""FLUXNET-family site files: real files pinned with plain pandas, synthetic bad variants."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from fluxbridge.constants import UMOL_M2_S_TO_GC_M2_D
from fluxbridge.errors import InputError
from fluxbridge.io.fluxnet import aggregate, read_site_file, read_sites
from fluxbridge.io.fluxnet_csv import parse_file_name
from fluxbridge.io.sitemeta import read_site_metadata


def _fullset(real_data):
    return real_data / "fluxnet2015" / "fullset"


@pytest.fixture(scope="module")
def metadata(real_data):
    sites = real_data / "sites"
    return read_site_metadata(sites / "FLX_AA-Flx_BIF_LATEST.csv",
                              sites / "fluxnet2015_site_list.csv")


def test_every_real_monthly_file_reads(real_data, metadata):
    files = sorted((real_data / "fluxnet2015" / "MM").glob("*.csv"))
    assert len(files) == 206
    sites = read_sites(files, metadata, time_step="MM", min_good_fraction=0.0)
    assert sites.sizes["site"] == 206
    assert sites.attrs["skipped_sites"] == ""
    # one file checked against plain pandas
    raw = pd.read_csv(files[0], dtype={"TIMESTAMP": str})
    site = parse_file_name(files[0]).site
    one = sites.sel(site=site)
    times = pd.to_datetime(raw["TIMESTAMP"], format="%Y%m")
    got = one["nee"].sel(time=times.values).values
    expected = raw["NEE_VUT_REF"].where(raw["NEE_VUT_REF"] != -9999).to_numpy()
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert one["lat"].item() == pytest.approx(float(metadata.loc[site, "lat"]))


def test_threshold_refuses_and_counts(real_data, metadata):
    files = sorted((real_data / "fluxnet2015" / "MM").glob("*.csv"))[:5]
    loose = read_sites(files, metadata, time_step="MM", min_good_fraction=0.0)
    strict = read_sites(files, metadata, time_step="MM", min_good_fraction=0.8)
    lost = loose["nee"].notnull().sum("time") - strict["nee"].notnull().sum("time")
    np.testing.assert_array_equal(lost.values, strict["refused_periods"].values)
    raw = [pd.read_csv(f) for f in files]  # QC -9999 (unknown) counts as too little
    raw_low = sum(int(((r["NEE_VUT_REF"] != -9999) & (r["NEE_VUT_REF_QC"] < 0.8)).sum())
                  for r in raw)
    assert raw_low > 0
    assert int(strict["refused_periods"].sum()) == raw_low


def test_missing_metadata_is_skipped_and_reported(real_data):
    bif = read_site_metadata(real_data / "sites" / "FLX_AA-Flx_BIF_LATEST.csv")
    files = sorted((real_data / "fluxnet2015" / "DD").glob("*.csv"))
    assert len(files) == 24
    with pytest.raises(InputError, match="GL-ZaF"):
        read_sites(files, bif, time_step="DD")
    sites = read_sites(files, bif, time_step="DD", on_missing_metadata="skip")
    assert sites.sizes["site"] == 23 and "GL-ZaF" in sites.attrs["skipped_sites"]


def test_real_daily_file_against_pandas(real_data):
    path = _fullset(real_data) / "FLX_US-Wi7_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv"
    raw = pd.read_csv(path, dtype={"TIMESTAMP": str})
    ds = read_site_file(path)
    assert ds.sizes["time"] == len(raw) == 365
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2005-01-01")
    qc = raw["NEE_VUT_REF_QC"].where(raw["NEE_VUT_REF_QC"] != -9999)
    np.testing.assert_allclose(ds["nee_weight"].values[0], qc.clip(0, 1), equal_nan=True)
    np.testing.assert_allclose(ds["ta"].values[0], raw["TA_F"].where(raw["TA_F"] != -9999))


def test_real_yearly_file_is_per_day(real_data):
    path = _fullset(real_data) / "FLX_FR-Pue_FLUXNET2015_FULLSET_YY_2007-2014_2-3.csv"
    raw = pd.read_csv(path, dtype={"TIMESTAMP": str})
    ds = read_site_file(path)
    assert ds.attrs["time_step"] == "YY" and ds.sizes["time"] == len(raw) == 8
    days = np.where(pd.to_datetime(raw["TIMESTAMP"], format="%Y").dt.is_leap_year, 366, 365)
    np.testing.assert_allclose(ds["nee"].values[0], raw["NEE_VUT_REF"] / days)


def test_erai_file_is_meteorology_trusting_content(real_data):
    path = _fullset(real_data) / "FLX_US-Wi7_FLUXNET2015_ERAI_HH_1989-2014_1-4.csv"
    raw = pd.read_csv(path, dtype={"TIMESTAMP_START": str})
    with pytest.raises(InputError, match="NEE_VUT_REF"):
        read_site_file(path)
    ds = read_site_file(path, require_nee=False)
    assert "nee" not in ds and ds.sizes["time"] == len(raw)
    first = pd.to_datetime(raw["TIMESTAMP_START"].iloc[[0, -1]], format="%Y%m%d%H%M")
    assert pd.Timestamp(ds["time"].values[0]) == first.iloc[0]
    assert pd.Timestamp(ds["time"].values[-1]) == first.iloc[1]
    assert ds["ta"].values[0, 0] == pytest.approx(raw["TA_ERA"].iloc[0])
    assert ds["precip"].values[0, 5] == pytest.approx(raw["P_ERA"].iloc[5] * 48)


def test_half_hourly_units_and_qc_aggregation(site_csv):
    n = 96  # two days
    qc = np.zeros(n)
    qc[48 + 10:] = 2  # day 2: 10 good half-hours of 48
    path = site_csv("HH", n, NEE_VUT_REF=np.full(n, 2.0), NEE_VUT_REF_QC=qc,
                    TA_F=np.full(n, 5.0), P_F=np.full(n, 0.1))
    ds = read_site_file(path)
    np.testing.assert_allclose(ds["nee"].values, 2.0 * UMOL_M2_S_TO_GC_M2_D)
    np.testing.assert_array_equal(ds["nee_weight"].values[0], (qc <= 1).astype(float))
    daily = aggregate(ds, "DD", min_good_fraction=0.5)
    assert daily.sizes["time"] == 2
    assert daily["nee"].values[0, 0] == pytest.approx(2.0 * UMOL_M2_S_TO_GC_M2_D)
    assert np.isnan(daily["nee"].values[0, 1])
    assert int(daily["refused_periods"].item()) == 1
    assert daily["precip"].values[0, 0] == pytest.approx(0.1 * 48)
    lenient = aggregate(ds, "DD", min_good_fraction=10 / 48 - 1e-9)
    assert lenient["nee_weight"].values[0, 1] == pytest.approx(10 / 48)


def test_daily_to_8day_and_monthly(site_csv):
    n = 40
    nee = np.arange(n, dtype=float)
    path = site_csv("DD", n, NEE_VUT_REF=nee, NEE_VUT_REF_QC=np.ones(n))
    ds = read_site_file(path)
    eight = aggregate(ds, "8D")
    np.testing.assert_allclose(eight["nee"].values[0, :5], [3.5, 11.5, 19.5, 27.5, 35.5])
    monthly = aggregate(ds, "MM")
    np.testing.assert_allclose(monthly["nee"].values[0], [15.0, 35.0])
    with pytest.raises(InputError, match="time_step"):
        aggregate(monthly, "DD")


def test_nee_variable_choice_and_cut_fallback(site_csv):
    n = 5
    path = site_csv("DD", n, NEE_CUT_REF=np.full(n, 3.0), NEE_CUT_REF_QC=np.full(n, 0.7),
                    NEE_VUT_REF=np.full(n, 1.0), NEE_VUT_REF_QC=np.ones(n))
    assert read_site_file(path, nee_variable="NEE_CUT_REF")["nee"].values[0, 0] == 3.0
    assert read_site_file(path)["nee"].values[0, 0] == 1.0
    cut_only = site_csv("DD", n, name="FLX_XX-Cut_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv",
                        NEE_CUT_REF=np.full(n, 3.0), NEE_CUT_REF_QC=np.full(n, 0.7))
    ds = read_site_file(cut_only)
    assert ds.attrs["nee_variable"] == "NEE_CUT_REF"
    np.testing.assert_allclose(ds["nee_weight"].values, 0.7)
    with pytest.raises(InputError, match="NEE_VUT_USTAR50"):
        read_site_file(cut_only, nee_variable="NEE_VUT_USTAR50")


def test_zip_as_downloaded(site_csv, tmp_path):
    dd = site_csv("DD", 10)
    mm = site_csv("MM", 3)
    archive = tmp_path / "FLX_XX-Tst_FLUXNET2015_FULLSET_2005-2005_1-4.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(dd, dd.name)
        zf.write(mm, mm.name)
        zf.writestr("FLX_XX-Tst_FLUXNET2015_BIF_2005-2005_1-4.csv", "SITE_ID;VARIABLE\n")
    from_zip = read_site_file(archive)
    assert from_zip.attrs["time_step"] == "DD"
    np.testing.assert_array_equal(from_zip["nee"].values, read_site_file(dd)["nee"].values)
    assert read_site_file(archive, resolution="MM").attrs["time_step"] == "MM"
    truncated = tmp_path / "FLX_XX-Cut_FLUXNET2015_FULLSET_2005-2005_1-4.zip"
    truncated.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(InputError, match="zip"):
        read_site_file(truncated)


@pytest.mark.parametrize(("change", "variable"), [
    ("drop_nee", "NEE_VUT_REF"),
    ("drop_time", "TIMESTAMP"),
    ("all_missing", "NEE_VUT_REF"),
    ("duplicate", "TIMESTAMP"),
    ("unordered", "TIMESTAMP"),
    ("wrong_resolution", "TIMESTAMP"),
    ("truncated", "truncated"),
    ("text_value", "NEE_VUT_REF"),
])
def test_bad_site_files(site_csv, change, variable):
    path = site_csv("DD", 10)
    df = pd.read_csv(path, dtype={"TIMESTAMP": str})
    if change == "drop_nee":
        df = df.drop(columns=["NEE_VUT_REF", "NEE_VUT_REF_QC"])
    elif change == "drop_time":
        df = df.drop(columns=["TIMESTAMP"])
    elif change == "all_missing":
        df["NEE_VUT_REF"] = -9999
    elif change == "duplicate":
        df.loc[3, "TIMESTAMP"] = df.loc[2, "TIMESTAMP"]
    elif change == "unordered":
        df = df.iloc[::-1]
    elif change == "text_value":
        df["NEE_VUT_REF"] = df["NEE_VUT_REF"].astype(str)
        df.loc[4, "NEE_VUT_REF"] = "n/a"
    if change == "wrong_resolution":
        path = path.rename(path.with_name(path.name.replace("_DD_", "_HH_")))
    if change == "truncated":
        text = path.read_text()
        path.write_text(text[: len(text) - 40])
    elif change != "wrong_resolution":
        df.to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_site_file(path)
    assert str(path) in str(err.value) and variable in str(err.value)


def test_empty_file(tmp_path):
    path = tmp_path / "FLX_XX-Tst_FLUXNET2015_FULLSET_DD_2005-2005_1-4.csv"
    path.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_site_file(path)


def test_half_hourly_daily_aggregation_equals_plain_pandas(site_csv):
    """aggregate(DD) of a half-hourly file: pandas daily means, refused by QC good fraction."""
    rng = np.random.default_rng(3)
    n = 48 * 6 + 17  # partial last day
    nee = rng.normal(-1, 2, n)
    nee[rng.random(n) < 0.1] = np.nan
    qc = rng.choice([0.0, 1.0, 2.0, 3.0], n, p=[0.4, 0.2, 0.2, 0.2])
    qc[:48] = 3.0  # day 1 entirely poor gap-fill: refused
    ta = rng.normal(10, 3, n)
    ta[rng.random(n) < 0.1] = np.nan
    path = site_csv("HH", n, NEE_VUT_REF=nee, NEE_VUT_REF_QC=qc, TA_F=ta,
                    P_F=rng.uniform(0, 0.5, n))
    daily = aggregate(read_site_file(path), "DD", min_good_fraction=0.5)
    raw = pd.read_csv(path, dtype={"TIMESTAMP_START": str})
    raw.index = pd.to_datetime(raw["TIMESTAMP_START"], format="%Y%m%d%H%M")
    raw = raw.drop(columns=["TIMESTAMP_START", "TIMESTAMP_END"]).replace(-9999, np.nan)
    good = ((raw["NEE_VUT_REF_QC"] <= 1) & raw["NEE_VUT_REF"].notna()).astype(float)
    fraction = good.resample("1D").mean()
    nee_daily = (raw["NEE_VUT_REF"] * UMOL_M2_S_TO_GC_M2_D).resample("1D").mean()
    expected = nee_daily.where(fraction >= 0.5)
    np.testing.assert_allclose(daily["nee"].values[0], expected.to_numpy(), rtol=1e-12,
                               equal_nan=True)
    assert np.isnan(daily["nee"].values[0, 0]) and expected.notna().sum() >= 3
    np.testing.assert_allclose(daily["nee_weight"].values[0],
                               fraction.where(expected.notna()).to_numpy(), equal_nan=True)
    assert int(daily["refused_periods"].item()) == int(
        (nee_daily.notna() & (fraction < 0.5)).sum())
    np.testing.assert_allclose(daily["ta"].values[0], raw["TA_F"].resample("1D").mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(daily["precip"].values[0],
                               (raw["P_F"] * 48).resample("1D").mean(), rtol=1e-12)
