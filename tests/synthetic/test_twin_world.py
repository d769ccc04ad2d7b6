"""The twin world's files and properties, read back with plain pandas and xarray (tiny world)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxbridge.errors import ConfigError, InputError
from fluxbridge.io.inputs import open_inputs, open_world, resolve_inputs
from fluxbridge.synthetic import WorldConfig, load_world_config, synthesize
from fluxbridge.synthetic.config import world_template_text

TINY = {"resolution_deg": 5.0, "n_years": 2, "n_sites": 20, "n_members": 3,
        "site_years_min": 1, "site_years_max": 2, "start_year": 2012}
ROLES = ("sites", "site_table", "meteorology", "remote_sensing", "land_cover", "inversions",
         "corrections", "regions", "truth_grid", "truth_regional")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tw") / "world"
    return synthesize(out, config=TINY, seed=3, progress=False)


@pytest.fixture(scope="module")
def manifest(world) -> dict:
    return json.loads(world.read_text())


def _path(world: Path, rel: str) -> Path:
    return world.parent / rel


@pytest.fixture(scope="module")
def regions(world, manifest) -> xr.Dataset:
    return xr.load_dataset(_path(world, manifest["files"]["regions"]))


@pytest.fixture(scope="module")
def truth(world, manifest) -> xr.Dataset:
    return xr.load_dataset(_path(world, manifest["files"]["truth_grid"]))


def _monthly_region_totals(flux: np.ndarray, times: pd.DatetimeIndex, weights: np.ndarray
                           ) -> pd.DataFrame:
    """Σ flux × weight per (time) → monthly sums [Tg]; flux (time, lat, lon) g m-2 d-1."""
    per_day = np.einsum("tij,ij->t", np.nan_to_num(flux), weights) / 1e12
    return pd.Series(per_day, index=times).resample("MS").sum()


# --- manifest and files -------------------------------------------------------------------


def test_manifest_lists_every_role_with_existing_relative_paths(world, manifest):
    files = manifest["files"]
    for role in ROLES:
        assert role in files, role
        paths = files[role] if isinstance(files[role], list) else [files[role]]
        assert paths
        for rel in paths:
            assert not Path(rel).is_absolute()
            assert _path(world, rel).is_file(), rel
    assert len(files["sites"]) == TINY["n_sites"]
    assert len(files["inversions"]) == TINY["n_members"]
    assert len(files["meteorology"]) == TINY["n_years"]


def test_inputs_yaml_names_the_manifest_files_by_role(world, manifest):
    spec = yaml.safe_load((world.parent / "inputs.yaml").read_text())
    assert set(spec) == set(ROLES)
    resolved = resolve_inputs(spec, world.parent)
    for role in ROLES:
        listed = manifest["files"][role]
        expected = [listed] if isinstance(listed, str) else listed
        got = resolved[role] if isinstance(resolved[role], list) else [resolved[role]]
        assert sorted(got) == sorted(_path(world, p).resolve() for p in expected), role


def test_inputs_yaml_opens_the_datasets_of_the_manifest(world):
    by_manifest = open_world(world)
    by_inputs = open_inputs(world.parent / "inputs.yaml").check()
    xr.testing.assert_equal(by_inputs.regions, by_manifest.regions)
    xr.testing.assert_equal(by_inputs.sites.sortby("site"), by_manifest.sites.sortby("site"))
    xr.testing.assert_equal(by_inputs.predictors, by_manifest.predictors)
    xr.testing.assert_equal(by_inputs.targets.sortby("member"),
                            by_manifest.targets.sortby("member"))
    pd.testing.assert_frame_equal(by_inputs.truth_regional, by_manifest.truth_regional)


def test_existing_world_is_refused_unless_overwrite(world):
    with pytest.raises(InputError, match="not empty"):
        synthesize(world.parent, config=TINY, progress=False)


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("resolution_deg: -3\n")
    with pytest.raises(ConfigError, match="resolution_deg"):
        load_world_config(bad)
    bad.write_text("n_sitez: 3\n")
    with pytest.raises(ConfigError, match="n_sitez"):
        load_world_config(bad)


def test_template_is_the_demo_world(tmp_path):
    path = tmp_path / "world.yaml"
    path.write_text(world_template_text())
    assert load_world_config(path) == WorldConfig()
    assert yaml.safe_load(world_template_text())["n_sites"] >= 150


# --- formats --------------------------------------------------------------------------------


def test_site_files_follow_fluxnet2015_fullset_dd(world, manifest):
    pattern = re.compile(r"FLX_([A-Z]{2}-[A-Za-z0-9]{3})_FLUXNET2015_FULLSET_DD_(\d{4})-(\d{4})"
                         r"_\d-\d\.csv")
    required = ["TIMESTAMP", "TA_F", "TA_F_QC", "SW_IN_POT", "SW_IN_F", "SW_IN_F_QC", "VPD_F",
                "VPD_F_QC", "P_F", "P_F_QC", "NEE_VUT_REF", "NEE_VUT_REF_QC",
                "NEE_VUT_REF_RANDUNC", "NEE_CUT_REF", "NEE_CUT_REF_QC", "GPP_NT_VUT_REF",
                "RECO_NT_VUT_REF"]
    n_missing = 0
    for rel in manifest["files"]["sites"]:
        match = pattern.fullmatch(Path(rel).name)
        assert match, rel
        df = pd.read_csv(_path(world, rel), dtype={"TIMESTAMP": str})
        assert list(df.columns[: 1]) == ["TIMESTAMP"]
        assert set(required) <= set(df.columns)
        assert not df.isna().any().any()  # missing is -9999, never empty
        t = pd.to_datetime(df["TIMESTAMP"], format="%Y%m%d")
        fy, ly = int(match.group(2)), int(match.group(3))
        expected = pd.date_range(f"{fy}-01-01", f"{ly}-12-31", freq="D")
        assert t.equals(pd.Series(expected, name="TIMESTAMP"))
        qc = df["NEE_VUT_REF_QC"].replace(-9999, np.nan).dropna()
        assert qc.between(0, 1).all()
        assert (df["TA_F"].between(-70, 60)).all()
        n_missing += int((df["NEE_VUT_REF"] == -9999).sum())
    assert n_missing > 0  # record gaps exist


def test_site_table_is_bif_long_format(world, manifest):
    bif = pd.read_csv(_path(world, manifest["files"]["site_table"]), sep=";", dtype=str)
    assert list(bif.columns) == ["SITE_ID", "GROUP_ID", "VARIABLE_GROUP", "VARIABLE",
                                 "DATAVALUE"]
    wide = bif.pivot_table(index="SITE_ID", columns="VARIABLE", values="DATAVALUE",
                           aggfunc="first")
    assert {"LOCATION_LAT", "LOCATION_LONG", "IGBP", "UTC_OFFSET"} <= set(wide.columns)
    ids = {Path(p).name.split("_")[1] for p in manifest["files"]["sites"]}
    assert set(wide.index) == ids
    assert wide["LOCATION_LAT"].astype(float).abs().le(90).all()
    assert wide["IGBP"].isin(["ENF", "EBF", "DNF", "DBF", "MF", "CSH", "OSH", "WSA", "SAV",
                              "GRA", "WET", "CRO", "BSV"]).all()


def test_era5_files_use_the_new_cds_layout(world, manifest):
    ds = xr.open_dataset(_path(world, manifest["files"]["meteorology"][0]))
    assert ds["t2m"].dims == ("valid_time", "latitude", "longitude")
    lat, lon = ds["latitude"].values, ds["longitude"].values
    assert np.all(np.diff(lat) < 0) and np.all(np.diff(lon) > 0)
    assert lon.min() >= 0 and lon.max() < 360
    assert {"t2m": "K", "d2m": "K", "ssrd": "J m**-2", "tp": "m"} == {
        v: ds[v].attrs["units"] for v in ("t2m", "d2m", "ssrd", "tp")}
    assert ds["ssrd"].attrs["GRIB_stepType"] == "accum"
    assert ds["t2m"].attrs["GRIB_stepType"] == "instant"
    assert ds["expver"].dims == ("valid_time",)
    assert float(ds["t2m"].min()) > 180 and float(ds["t2m"].max()) < 340
    assert bool((ds["d2m"] <= ds["t2m"] + 1e-3).all())
    assert float(ds["tp"].min()) >= 0 and float(ds["ssrd"].min()) >= 0
    raw = xr.open_dataset(_path(world, manifest["files"]["meteorology"][0]), decode_times=False)
    assert raw["valid_time"].dtype == np.int64
    assert "seconds since 1970" in raw["valid_time"].attrs["units"]


def test_modis_files_are_packed_with_scale_and_fill(world, manifest):
    rs = [_path(world, p) for p in manifest["files"]["remote_sensing"]]
    vi = next(p for p in rs if p.name.startswith("MOD13C1"))
    raw = xr.open_dataset(vi, mask_and_scale=False)
    assert raw["NDVI"].dtype == np.int16
    assert raw["NDVI"].attrs["_FillValue"] == -3000
    assert raw["NDVI"].attrs["scale_factor"] == pytest.approx(1e-4)
    assert (raw["NDVI"].values == -3000).any()  # ocean and clouds
    ds = xr.open_dataset(vi)
    ndvi = ds["NDVI"].values
    assert np.nanmin(ndvi) >= -0.2 and np.nanmax(ndvi) <= 1.0
    assert np.nanmax(ndvi) > 0.6  # some dense vegetation
    lst_path = next(p for p in rs if p.name.startswith("MOD11C2"))
    lst_raw = xr.open_dataset(lst_path, mask_and_scale=False)
    assert lst_raw["LST_Day_CMG"].dtype == np.uint16
    assert lst_raw["LST_Day_CMG"].attrs["_FillValue"] == 0
    lst = xr.open_dataset(lst_path)["LST_Day_CMG"]
    assert lst.attrs["units"] == "K"
    assert 200 < float(lst.min()) and float(lst.max()) < 350


def test_regions_file_has_cf_flags_area_and_land_fraction(regions):
    region = regions["region"]
    assert np.issubdtype(region.dtype, np.integer)
    names = str(region.attrs["flag_meanings"]).split()
    assert len(np.atleast_1d(region.attrs["flag_values"])) == len(names) >= 10
    assert regions["cell_area"].attrs["units"] == "m2"
    assert float(regions["cell_area"].sum()) == pytest.approx(4 * np.pi * 6_371_000.0**2,
                                                              rel=1e-6)
    lf = regions["land_fraction"].values
    assert lf.min() >= 0 and lf.max() <= 1 and 0.2 < lf.mean() < 0.4  # real land mask


# --- conservation ---------------------------------------------------------------------------


def test_regional_truth_is_the_area_weighted_sum_of_the_grid(world, manifest, regions, truth):
    table = pd.read_csv(_path(world, manifest["files"]["truth_regional"]))
    assert {"region", "time", "nee_tgc"} <= set(table.columns)
    assert truth["nee"].attrs["units"] == "g m-2 d-1"
    times = pd.DatetimeIndex(truth["time"].values)
    land_area = (regions["cell_area"] * regions["land_fraction"]).values
    ids = np.atleast_1d(regions["region"].attrs["flag_values"])
    names = str(regions["region"].attrs["flag_meanings"]).split()
    for rid, name in zip(ids, names, strict=True):
        w = land_area * (regions["region"].values == rid)
        expected = _monthly_region_totals(truth["nee"].values, times, w)
        got = table[table["region"] == name.replace("_", " ")].set_index("time")["nee_tgc"]
        np.testing.assert_allclose(got.loc[expected.index.strftime("%Y-%m")].to_numpy(),
                                   expected.to_numpy(), rtol=1e-4, atol=1e-3)


def _member_totals(path: Path, regions: xr.Dataset) -> pd.DataFrame:
    """(region name, YYYY-MM) totals [Tg month-1] of an inversion file, per grid-cell area."""
    ds = xr.load_dataset(path)
    times = pd.DatetimeIndex(ds["time"].values)
    days_month = times.days_in_month.to_numpy()[:, None, None]
    if "land_flux_only_fossil_cement_adjusted" in ds:
        v = ds["land_flux_only_fossil_cement_adjusted"]
        assert v.attrs["units"] == "PgC m-2 yr-1"
        days_year = np.where(times.is_leap_year, 366, 365)[:, None, None]
        flux = v.values * 1e15 / days_year
    else:
        assert ds["bio_flux_opt"].attrs["units"] == "mol m-2 s-1"
        flux = (ds["bio_flux_opt"].values + ds["fire_flux_imp"].values) * 12.0107 * 86400
    rows = []
    ids = np.atleast_1d(regions["region"].attrs["flag_values"])
    names = str(regions["region"].attrs["flag_meanings"]).split()
    for rid, name in zip(ids, names, strict=True):
        w = regions["cell_area"].values * (regions["region"].values == rid)
        tot = np.einsum("tij,ij->t", flux * days_month, w) / 1e12
        rows += [(name.replace("_", " "), t.strftime("%Y-%m"), x)
                 for t, x in zip(times, tot, strict=True)]
    return pd.DataFrame(rows, columns=["region", "time", "nbe_tgc"])


def test_inversions_minus_corrections_match_truth_within_member_error(world, manifest, regions):
    files = manifest["files"]
    truth = pd.read_csv(_path(world, files["truth_regional"])).set_index(["region", "time"])
    corr = pd.read_csv(_path(world, files["corrections"])).set_index(["region", "time"])
    assert {"fire_tgc", "river_tgc", "trade_tgc"} <= set(corr.columns)
    assert (corr["fire_tgc"] >= 0).all() and (corr["river_tgc"] >= 0).all()
    assert corr.groupby("time")["trade_tgc"].sum().abs().max() < 1e-3 * corr["trade_tgc"].abs(
    ).max() + 1e-6  # trade moves carbon between regions
    members = [_member_totals(_path(world, p), regions).set_index(["region", "time"])["nbe_tgc"]
               for p in files["inversions"]]
    nbe = pd.concat(members, axis=1).loc[truth.index]
    lateral = corr.loc[truth.index, ["fire_tgc", "river_tgc", "trade_tgc"]].sum(axis=1)
    corrected = nbe.sub(lateral, axis=0)
    mean, spread = corrected.mean(axis=1), corrected.std(axis=1, ddof=1)
    err = (mean - truth["nee_tgc"]).abs()
    assert (err <= 3 * spread).mean() > 0.85
    # the correction matters: uncorrected NBE is further from the true NEE
    raw_err = (nbe.mean(axis=1) - truth["nee_tgc"]).abs()
    assert raw_err.mean() > err.mean()
    # global: NBE is less negative than NEE by the fire and lateral terms
    nee_g, nbe_g = truth["nee_tgc"].sum(), truth["nbe_tgc"].sum()
    np.testing.assert_allclose(nbe_g - nee_g, lateral.sum(), rtol=1e-3)
    assert nbe_g > nee_g


# --- properties -----------------------------------------------------------------------------


def test_global_magnitudes_are_realistic(manifest):
    g = manifest["properties"]["global_pgc_yr"]
    assert 100 <= g["gpp"] <= 130
    assert -6 <= g["nee"] <= -1
    assert g["nbe_regions"] > g["nee_regions"]
    assert 1.0 < g["fire"] < 2.5 and 0.3 < g["river"] < 0.9


def test_towers_sit_where_nee_is_more_negative_than_the_land_mean(world, manifest, regions,
                                                                  truth):
    bif = pd.read_csv(_path(world, manifest["files"]["site_table"]), sep=";", dtype=str)
    wide = bif.pivot_table(index="SITE_ID", columns="VARIABLE", values="DATAVALUE",
                           aggfunc="first")
    mean_nee = truth["nee"].mean("time")
    at_sites = mean_nee.sel(lat=xr.DataArray(wide["LOCATION_LAT"].astype(float).to_numpy()),
                            lon=xr.DataArray(wide["LOCATION_LONG"].astype(float).to_numpy()),
                            method="nearest")
    land_area = (regions["cell_area"] * regions["land_fraction"]).where(mean_nee.notnull())
    land_mean = float((mean_nee * land_area).sum() / land_area.sum())
    assert float(at_sites.mean()) < land_mean
    proxy = manifest["properties"]["site_bias_proxy"]
    assert proxy["legacy_blind_bias_pgc_yr"] < 0
    assert proxy["site_mean_nee"] < proxy["land_mean_nee"]


def test_site_noise_is_heteroscedastic_and_meteo_follows_the_grid(world, manifest, truth):
    files = manifest["files"]
    bif = pd.read_csv(_path(world, files["site_table"]), sep=";", dtype=str)
    wide = bif.pivot_table(index="SITE_ID", columns="VARIABLE", values="DATAVALUE",
                           aggfunc="first")
    era5 = xr.open_mfdataset([_path(world, p) for p in files["meteorology"]]).load()
    true_abs, resid, ta_site, ta_grid = [], [], [], []
    for rel in files["sites"]:
        sid = Path(rel).name.split("_")[1]
        lat, lon = float(wide.loc[sid, "LOCATION_LAT"]), float(wide.loc[sid, "LOCATION_LONG"])
        df = pd.read_csv(_path(world, rel), dtype={"TIMESTAMP": str}).replace(-9999, np.nan)
        t = pd.to_datetime(df["TIMESTAMP"], format="%Y%m%d").to_numpy()
        cell = truth["nee"].sel(lat=lat, lon=lon, method="nearest").sel(time=t).values
        ok = df["NEE_VUT_REF"].notna().to_numpy()
        true_abs.append(np.abs(cell[ok]))
        resid.append(np.abs(df["NEE_VUT_REF"].to_numpy()[ok] - cell[ok]))
        grid = era5["t2m"].sel(latitude=lat, longitude=lon % 360, method="nearest")
        ta_grid.append(grid.sel(valid_time=t).values - 273.15)
        ta_site.append(df["TA_F"].to_numpy())
    true_abs, resid = np.concatenate(true_abs), np.concatenate(resid)
    big = true_abs > np.quantile(true_abs, 0.75)
    small = true_abs < np.quantile(true_abs, 0.25)
    assert resid[big].mean() > 1.2 * resid[small].mean()
    ta_site, ta_grid = np.concatenate(ta_site), np.concatenate(ta_grid)
    assert np.corrcoef(ta_site, ta_grid)[0, 1] > 0.95
    assert 0 < np.abs(ta_site - ta_grid).mean() < 1.5


def test_inversion_spread_covers_the_truth_in_most_region_months(manifest):
    cov = manifest["properties"]["inversion_coverage"]
    assert 0.4 < cov["within_1_spread"] < cov["within_2_spread"] <= 1.0


# --- reproducibility ------------------------------------------------------------------------


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_different_seed_different_files(world, tmp_path):
    again = synthesize(tmp_path / "again", config=TINY, seed=3, progress=False)
    assert _hashes(again.parent) == _hashes(world.parent)
    other = synthesize(tmp_path / "other", config=TINY, seed=4, progress=False)
    a, b = _hashes(world.parent), _hashes(other.parent)
    assert a["truth/nee_true.nc"] != b["truth/nee_true.nc"]
    assert a["inversions/corrections.csv"] != b["inversions/corrections.csv"]
    assert set(a) != set(b)  # different site ids
