"""Region masks, site metadata tables and MODIS readers."""

from __future__ import annotations

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.grid import make_grid
from fluxbridge.io.modis import decode_band, open_modis, read_modis_points
from fluxbridge.io.regions import read_region_mask, region_fractions, regrid_mask
from fluxbridge.io.sitemeta import read_site_metadata
from fluxbridge.regions import TRANSCOM_NAMES, region_dataset, region_names


def test_transcom_real_mask(real_data):
    path = real_data / "regions" / "TRANSCOM_Map_MZT.nc"
    with netCDF4.Dataset(path) as nc:
        raw = np.asarray(nc["regions"][:])
        lat = np.asarray(nc["lat"][:])
        lon = np.asarray(nc["lon"][:])
    regions = read_region_mask(path)
    assert region_names(regions) == TRANSCOM_NAMES
    assert regions.sizes == {"lat": lat.size, "lon": lon.size}
    for rid in range(1, 12):  # reordering keeps every cell; oceans 12..22 become 0
        assert int((regions["region"] == rid).sum()) == int((raw == rid).sum())
    i = int(np.argmin(abs(lat - 50))), int(np.argmin(abs(lon - 10)))  # central Europe
    assert raw[i] == 11
    assert int(regions["region"].sel(lat=lat[i[0]], lon=lon[i[1]])) == 11
    # a mask on another grid: refused when regridding is off, majority when finer
    coarse = make_grid(10.0)
    with pytest.raises(GridMismatchError):
        read_region_mask(path, grid=coarse, regrid=False)
    out = read_region_mask(path, grid=coarse)
    assert out.attrs["regrid_method"] == "majority"
    assert set(region_names(out)) == set(TRANSCOM_NAMES)


def _halves(resolution):
    grid = make_grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    mask = np.where(lon[None, :] < 0, 1, 2) * np.ones((lat.size, 1), dtype=int)
    mask[np.abs(lat) > 60] = 0
    land = xr.DataArray(np.ones(mask.shape), dims=("lat", "lon"),
                        coords={"lat": lat, "lon": lon})
    return region_dataset(mask, {1: "West", 2: "East"}, lat, lon, land=land)


def test_majority_regrid_from_finer_mask():
    fine = _halves(1.0)
    target = make_grid(20.0).assign(land_fraction=xr.DataArray(
        np.ones((9, 18)), dims=("lat", "lon")))
    frac = region_fractions(fine, target)
    assert float(frac.sum("region").max()) <= 1.0 + 1e-12
    # the 50..70N target row is covered up to 60N (|lat| > 60 belongs to no region): a share
    # of its spherical area, not of its degrees
    sin = np.sin(np.deg2rad([50.0, 60.0, 70.0]))
    np.testing.assert_allclose(frac.sel(region=1, lat=60.0, lon=-170.0),
                               (sin[1] - sin[0]) / (sin[2] - sin[0]), rtol=1e-10)
    np.testing.assert_allclose(frac.sel(region=1, lat=0.0).values[:9], 1.0)
    out = regrid_mask(fine, target)
    assert out.attrs["regrid_method"] == "majority"
    np.testing.assert_array_equal(out["region"].sel(lat=0.0).values, [1] * 9 + [2] * 9)
    assert int(out["region"].sel(lat=-90 + 10, lon=10.0)) == 0
    nearest = regrid_mask(_halves(20.0), make_grid(10.0).assign(land_fraction=xr.DataArray(
        np.ones((18, 36)), dims=("lat", "lon"))))
    assert nearest.attrs["regrid_method"] == "nearest"


def test_bad_region_masks(tmp_path):
    ds = xr.Dataset({"regions": (("lat", "lon"), np.ones((3, 4)))},
                    coords={"lat": [-95.0, 0.0, 95.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    ds.to_netcdf(path := tmp_path / "mask.nc")
    with pytest.raises(InputError) as err:
        read_region_mask(path)
    assert str(path) in str(err.value) and "lat" in str(err.value)
    two = xr.Dataset({"a": (("lat", "lon"), np.ones((2, 2), dtype=np.int16)),
                      "b": (("lat", "lon"), np.ones((2, 2), dtype=np.int16))},
                     coords={"lat": [45.0, -45.0], "lon": [-90.0, 90.0]})
    two.to_netcdf(path2 := tmp_path / "two.nc")
    with pytest.raises(InputError, match="variable"):
        read_region_mask(path2)


def test_site_metadata_bif_and_fallback(real_data):
    sites = real_data / "sites"
    bif = read_site_metadata(sites / "FLX_AA-Flx_BIF_LATEST.csv")
    raw = pd.read_csv(sites / "FLX_AA-Flx_BIF_LATEST.csv", sep=";", encoding="latin-1",
                      dtype=str)
    assert len(bif) == raw["SITE_ID"].nunique() == 212
    lat = raw[(raw["SITE_ID"] == "CH-Dav") & (raw["VARIABLE"] == "LOCATION_LAT")]
    assert bif.loc["CH-Dav", "lat"] == pytest.approx(float(lat["DATAVALUE"].iloc[0]))
    merged = read_site_metadata(sites / "FLX_AA-Flx_BIF_LATEST.csv",
                                sites / "fluxnet2015_site_list.csv")
    assert "GL-ZaF" not in bif.index and "GL-ZaF" in merged.index
    assert merged.attrs["origin"]["GL-ZaF"].endswith("fluxnet2015_site_list.csv")
    assert merged.attrs["origin"]["CH-Dav"].endswith("FLX_AA-Flx_BIF_LATEST.csv")


def test_site_metadata_bad(tmp_path):
    (bad := tmp_path / "sites.csv").write_text("site,lat,lon,igbp\nXX-Abc,95,10,ENF\n")
    with pytest.raises(InputError) as err:
        read_site_metadata(bad)
    assert str(bad) in str(err.value) and "lat" in str(err.value)
    (nolon := tmp_path / "nolon.csv").write_text("site,lat,igbp\nXX-Abc,45,ENF\n")
    with pytest.raises(InputError, match="lon"):
        read_site_metadata(nolon)


def test_modis_point_tables(real_data):
    folder = real_data / "modis"
    fapar = folder / "CH-Oe2_modistools_06a1_fapar_2004-2023.csv"
    raw = pd.read_csv(fapar)
    points = read_modis_points(fapar)
    assert len(points) == len(raw) and set(points["site"]) == {"CH-Oe2"}
    np.testing.assert_allclose(points["fpar"], raw["fapar"])
    vi = folder / "MOD13A1_phenofit_10sites.csv"
    raw = pd.read_csv(vi)
    points = read_modis_points(vi)
    assert len(points) == len(raw) and points["site"].nunique() == 10
    assert points["ndvi"].iloc[0] == pytest.approx(raw["NDVI"].iloc[0] * 1e-4)
    assert points["ndvi"].max() <= 1.0 and points["evi"].min() >= -0.2


def test_modis_composites_gap_filled(tmp_path):
    lat, lon = np.array([10.0, -10.0]), np.array([-10.0, 10.0])
    times = pd.date_range("2010-01-01", periods=4, freq="16D")
    raw = np.full((4, 2, 2), 5000, dtype=np.int16)
    raw[1] = -3000  # a cloudy composite: fill value
    raw[2] = 7000
    ds = xr.Dataset({"NDVI": (("time", "lat", "lon"), raw,
                              {"scale_factor": 0.0001, "add_offset": 0.0, "_FillValue": -3000,
                               "valid_range": [-2000, 10000]})},
                    coords={"time": times, "lat": lat, "lon": lon})
    ds.to_netcdf(path := tmp_path / "MOD13C1_2010.nc")
    daily = open_modis([path])
    assert daily["ndvi"].attrs["gap_filled_fraction"] == pytest.approx(0.25)
    day16 = daily["ndvi"].sel(time=times[1]).values
    np.testing.assert_allclose(day16, 0.6, rtol=1e-5)  # between 0.5 and 0.7
    decoded = decode_band(ds["NDVI"], str(path))
    assert bool(decoded.isel(time=1).isnull().all())
    cycle = open_modis([path], seasonal_cycle=True)
    assert cycle.sizes == daily.sizes
