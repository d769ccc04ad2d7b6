"""Gridded files of the twin world in the real layouts (docs/twin-world-files.md).

ERA5 (new CDS, daily), MODIS CMG-like VI / LST / land cover, region mask, truth. Files are
deterministic: same data, same bytes (no creation times inside).
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge import __version__
from fluxbridge.synthetic.geography import Geography
from fluxbridge.vocabulary import IGBP_CLASSES, attrs

ZLIB = {"zlib": True, "complevel": 1}
MODIS_EPOCH = "days since 2000-01-01"


def _global_attrs(title: str, **extra: str) -> dict[str, str]:
    return {"title": title, "source": f"fluxbridge {__version__} twin world (synthetic)",
            "Conventions": "CF-1.8", **extra}


def _lat_lon(geo: Geography, lat: str = "lat", lon: str = "lon") -> dict[str, tuple]:
    return {
        lat: (lat, geo.lat, {"units": "degrees_north", "standard_name": "latitude",
                             "long_name": "latitude"}),
        lon: (lon, geo.lon, {"units": "degrees_east", "standard_name": "longitude",
                             "long_name": "longitude"}),
    }


_ERA5_VARS = {
    # name: (paramId, shortName, long_name, units, stepType, standard_name)
    "t2m": (167, "2t", "2 metre temperature", "K", "instant", None),
    "d2m": (168, "2d", "2 metre dewpoint temperature", "K", "instant", None),
    "ssrd": (169, "ssrd", "Surface short-wave (solar) radiation downwards", "J m**-2", "accum",
             "surface_downwelling_shortwave_flux_in_air"),
    "tp": (228, "tp", "Total precipitation", "m", "accum", None),
}


def write_era5_year(path: Path, dates: np.ndarray, fields: dict[str, np.ndarray],
                    geo: Geography) -> Path:
    """ERA5 single levels, new CDS layout, daily: t2m, d2m [K]; ssrd [J m-2], tp [m] per day.

    Parameters
    ----------
    fields
        ``t2m``, ``d2m``, ``ssrd``, ``tp`` (time, lat, lon) on the canonical grid.
    """
    order = np.argsort(np.mod(geo.lon, 360.0))
    lon360 = np.mod(geo.lon, 360.0)[order]
    seconds = dates.astype("datetime64[s]").astype(np.int64)
    ds = xr.Dataset(coords={
        "number": ((), np.int64(0), {"long_name": "ensemble member numerical id",
                                     "units": "1", "standard_name": "realization"}),
        "valid_time": ("valid_time", seconds, {"long_name": "time", "standard_name": "time",
                                               "units": "seconds since 1970-01-01",
                                               "calendar": "proleptic_gregorian"}),
        "latitude": ("latitude", geo.lat, {"units": "degrees_north",
                                           "standard_name": "latitude", "long_name": "latitude",
                                           "stored_direction": "decreasing"}),
        "longitude": ("longitude", lon360, {"units": "degrees_east",
                                            "standard_name": "longitude",
                                            "long_name": "longitude"}),
        "expver": ("valid_time", np.array(["0001"] * dates.size, dtype=object),
                   {"long_name": "Experiment version"}),
    })
    encoding: dict[str, dict] = {"valid_time": {"dtype": "int64"}}
    for name, (pid, short, long_name, units, step, std) in _ERA5_VARS.items():
        meta = {"GRIB_paramId": pid, "GRIB_shortName": short, "GRIB_name": long_name,
                "GRIB_units": units, "GRIB_stepType": step, "GRIB_typeOfLevel": "surface",
                "long_name": long_name, "units": units}
        if std:
            meta["standard_name"] = std
        ds[name] = (("valid_time", "latitude", "longitude"),
                    fields[name][:, :, order].astype(np.float32), meta)
        encoding[name] = {"dtype": "float32", "_FillValue": np.float32(np.nan), **ZLIB}
    ds.attrs = {"GRIB_centre": "ecmf", "GRIB_centreDescription":
                "European Centre for Medium-Range Weather Forecasts",
                "institution": "European Centre for Medium-Range Weather Forecasts",
                "Conventions": "CF-1.7", "frequency": "day",
                "history": f"fluxbridge {__version__} twin world (synthetic ERA5-like daily)"}
    ds.to_netcdf(path, encoding=encoding)
    return path


def composite_starts(year: int, days: int) -> np.ndarray:
    """Start dates (datetime64[D]) of the MODIS composites of ``year``, every ``days``."""
    start = np.datetime64(f"{year}-01-01")
    n = int(np.ceil(365 / days))
    return start + np.arange(n) * days


def _composite(daily: np.ndarray, dates: np.ndarray, starts: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(starts, dates, side="right") - 1
    counts = np.bincount(idx, minlength=starts.size).astype(np.float32)
    out = np.zeros((starts.size, *daily.shape[1:]), dtype=np.float64)
    np.add.at(out, idx, daily)
    return (out / counts.reshape(-1, *([1] * (daily.ndim - 1)))).astype(np.float32)


def _scatter(values: np.ndarray, geo: Geography, land_idx: np.ndarray) -> np.ndarray:
    """(time, n_land) → (time, lat, lon) with NaN off land."""
    out = np.full((values.shape[0], geo.land.size), np.nan, dtype=np.float32)
    out[:, land_idx] = values
    return out.reshape(values.shape[0], *geo.land.shape)


def write_modis_year(folder: Path, year: int, dates: np.ndarray, veg: dict[str, np.ndarray],
                     cloud: np.ndarray, snow: np.ndarray, geo: Geography, land_idx: np.ndarray,
                     rng: np.random.Generator) -> list[Path]:
    """MOD13C1-like 16-day VI and MOD11C2-like 8-day LST for one year.

    Clouds leave fill values (SummaryQA 3), snow is flagged (SummaryQA 2).

    Parameters
    ----------
    veg
        Daily (time, n_land) ``ndvi``, ``evi``, ``nir``, ``lst_day``, ``lst_night``.
    cloud, snow
        Daily (time, n_land) cloud fraction [0..1] and snow flag (bool).
    """
    return [_write_vi_year(folder, year, dates, veg, cloud, snow, geo, land_idx, rng),
            _write_lst_year(folder, year, dates, veg, cloud, geo, land_idx, rng)]


def _composite_time(starts: np.ndarray) -> tuple[str, np.ndarray, dict[str, str]]:
    return ("time", (starts - np.datetime64("2000-01-01")).astype(int),
            {"units": MODIS_EPOCH, "calendar": "proleptic_gregorian",
             "long_name": "composite start", "standard_name": "time"})


def _write_vi_year(folder: Path, year: int, dates: np.ndarray, veg: dict[str, np.ndarray],
                   cloud: np.ndarray, snow: np.ndarray, geo: Geography, land_idx: np.ndarray,
                   rng: np.random.Generator) -> Path:
    """MOD13C1-like 16-day NDVI, EVI, NIR reflectance and SummaryQA of one year."""
    starts = composite_starts(year, 16)
    vi = {k: _scatter(_composite(veg[k], dates, starts), geo, land_idx)
          for k in ("ndvi", "evi", "nir")}
    cloud16 = _composite(cloud, dates, starts)
    snow16 = _composite(snow.astype(np.float32), dates, starts) > 0.5
    cloudy = rng.random(cloud16.shape) < np.clip((cloud16 - 0.55) * 1.5, 0, 0.8)
    qa = np.where(cloudy, 3, np.where(snow16, 2, np.where(cloud16 > 0.5, 1, 0))).astype(np.uint8)
    qa_grid = np.full((starts.size, geo.land.size), 255, dtype=np.uint8)
    qa_grid[:, land_idx] = qa
    qa_grid = qa_grid.reshape(starts.size, *geo.land.shape)
    cloudy_grid = qa_grid == 3
    ds = xr.Dataset(coords={"time": _composite_time(starts), **_lat_lon(geo)})
    packed = {"dtype": "int16", "scale_factor": 0.0001, "add_offset": 0.0, **ZLIB}
    for name, var, fill, long_name in [
        ("NDVI", "ndvi", -3000, "CMG 0.05 Deg 16 days NDVI"),
        ("EVI", "evi", -3000, "CMG 0.05 Deg 16 days EVI"),
        ("NIR_reflectance", "nir", -1000, "CMG 0.05 Deg 16 days NIR reflectance (band 2)"),
    ]:
        data = np.where(cloudy_grid, np.nan, vi[var])
        ds[name] = (("time", "lat", "lon"), data,
                    {"long_name": long_name, "units": "1",
                     "valid_range": np.array([-2000, 10000], dtype=np.int16)})
        ds[name].encoding = {**packed, "_FillValue": np.int16(fill)}
    ds["SummaryQA"] = (("time", "lat", "lon"), qa_grid,
                       {"long_name": "CMG 0.05 Deg 16 days pixel reliability",
                        "flag_values": np.array([0, 1, 2, 3], dtype=np.uint8),
                        "flag_meanings": "good marginal snow_ice cloudy", "units": "1"})
    ds["SummaryQA"].encoding = {"dtype": "uint8", "_FillValue": np.uint8(255), **ZLIB}
    ds.attrs = _global_attrs("MOD13C1-like vegetation indices (synthetic)",
                             ShortName="MOD13C1")
    path = folder / f"MOD13C1_{year}.nc"
    ds.to_netcdf(path)
    return path


def _write_lst_year(folder: Path, year: int, dates: np.ndarray, veg: dict[str, np.ndarray],
                    cloud: np.ndarray, geo: Geography, land_idx: np.ndarray,
                    rng: np.random.Generator) -> Path:
    """MOD11C2-like 8-day daytime and night-time land surface temperature of one year."""
    starts = composite_starts(year, 8)
    cloud8 = _composite(cloud, dates, starts)
    cloudy8 = rng.random(cloud8.shape) < np.clip((cloud8 - 0.6) * 1.5, 0, 0.7)
    ds = xr.Dataset(coords={"time": _composite_time(starts), **_lat_lon(geo)})
    for name, var, long_name in [("LST_Day_CMG", "lst_day", "Daily daytime 1km grid Land-surface "
                                  "Temperature"),
                                 ("LST_Night_CMG", "lst_night", "Daily nighttime 1km grid Land-"
                                  "surface Temperature")]:
        lst = _composite(veg[var], dates, starts)
        data = _scatter(np.where(cloudy8, np.nan, np.clip(lst, 150.0, 1310.0)), geo, land_idx)
        ds[name] = (("time", "lat", "lon"), data,
                    {"long_name": long_name, "units": "K",
                     "valid_range": np.array([7500, 65535], dtype=np.uint16)})
        ds[name].encoding = {"dtype": "uint16", "scale_factor": 0.02, "add_offset": 0.0,
                             "_FillValue": np.uint16(0), **ZLIB}
    ds.attrs = _global_attrs("MOD11C2-like land surface temperature (synthetic)",
                             ShortName="MOD11C2")
    path = folder / f"MOD11C2_{year}.nc"
    ds.to_netcdf(path)
    return path


def write_landcover(path: Path, codes: np.ndarray, geo: Geography) -> Path:
    """MCD12C1-like majority IGBP land cover (lat, lon) uint8, codes 0..16."""
    ds = xr.Dataset(coords=_lat_lon(geo))
    ds["Majority_Land_Cover_Type_1"] = (("lat", "lon"), codes.astype(np.uint8), {
        "long_name": "Majority Land Cover Type 1 (IGBP)", "units": "1",
        "flag_values": np.arange(len(IGBP_CLASSES), dtype=np.uint8),
        "flag_meanings": " ".join(IGBP_CLASSES),
        "valid_range": np.array([0, len(IGBP_CLASSES) - 1], dtype=np.uint8),
    })
    ds.attrs = _global_attrs("MCD12C1-like land cover (synthetic)", ShortName="MCD12C1")
    ds.to_netcdf(path, encoding={"Majority_Land_Cover_Type_1": {"dtype": "uint8", **ZLIB}})
    return path


def write_regions(path: Path, geo: Geography) -> Path:
    """The region mask with ``cell_area`` [m2] and ``land_fraction`` [1]."""
    ds = geo.regions.copy()
    ds.attrs = _global_attrs("twin-world region mask (TransCom-like land regions)",
                             region_set=str(geo.regions.attrs.get("region_set", "")))
    ds.to_netcdf(path, encoding={"region": {"dtype": "int16"}})
    return path


class TruthWriter:
    """The truth file ``nee_true.nc``, written year by year (daily ``nee``, monthly GPP/RECO).

    Parameters
    ----------
    path
        File to create.
    geo
        Static geography (grid).
    """

    def __init__(self, path: Path, geo: Geography) -> None:
        self.path = path
        nc = netCDF4.Dataset(path, "w", format="NETCDF4")
        nc.setncatts(_global_attrs("twin-world true net ecosystem exchange",
                                   comment="NEE = RECO - GPP + hidden disturbance/age legacy; "
                                           "per m2 of land in each cell"))
        nc.createDimension("time", None)
        nc.createDimension("time_month", None)
        nc.createDimension("lat", geo.lat.size)
        nc.createDimension("lon", geo.lon.size)
        for name, values, units in [("lat", geo.lat, "degrees_north"),
                                    ("lon", geo.lon, "degrees_east")]:
            v = nc.createVariable(name, "f8", (name,))
            v[:] = values
            v.setncatts({"units": units, "standard_name": "latitude" if name == "lat"
                         else "longitude", "long_name": "latitude" if name == "lat"
                         else "longitude"})
        for name in ("time", "time_month"):
            v = nc.createVariable(name, "i4", (name,))
            v.setncatts({"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                         "standard_name": "time",
                         "long_name": "day" if name == "time" else "month start"})
        chunk = (8, geo.lat.size, geo.lon.size)
        v = nc.createVariable("nee", "f4", ("time", "lat", "lon"), zlib=True, complevel=1,
                              chunksizes=chunk, fill_value=np.float32(np.nan))
        v.setncatts({**attrs("nee"), "cell_methods": "time: mean area: mean where land"})
        for name in ("gpp", "reco"):
            v = nc.createVariable(name, "f4", ("time_month", "lat", "lon"), zlib=True,
                                  complevel=1, fill_value=np.float32(np.nan))
            v.setncatts({**attrs(name), "cell_methods": "time: mean area: mean where land"})
        self.nc = nc

    def append(self, dates: np.ndarray, nee: np.ndarray, months: np.ndarray,
               gpp_monthly: np.ndarray, reco_monthly: np.ndarray) -> None:
        """Append a year: daily ``nee`` (time, lat, lon) and monthly means of GPP and RECO."""
        nc = self.nc
        n0, m0 = nc.dimensions["time"].size, nc.dimensions["time_month"].size
        nc["time"][n0:n0 + dates.size] = dates.astype("datetime64[D]").astype(int)
        nc["nee"][n0:n0 + dates.size] = nee
        nc["time_month"][m0:m0 + months.size] = months.astype("datetime64[D]").astype(int)
        nc["gpp"][m0:m0 + months.size] = gpp_monthly
        nc["reco"][m0:m0 + months.size] = reco_monthly

    def close(self) -> None:
        """Close the file."""
        self.nc.close()


def month_starts(dates: np.ndarray) -> np.ndarray:
    """Unique month starts (datetime64[D]) of daily ``dates``."""
    return np.unique(dates.astype("datetime64[M]")).astype("datetime64[D]")


def monthly_mean(daily: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Monthly means (month, ...) of a daily array (time, ...), float32."""
    months = dates.astype("datetime64[M]")
    idx = np.searchsorted(np.unique(months), months)
    return _composite(daily, idx.astype(float), np.arange(idx.max() + 1).astype(float))


def dates_of_year(year: int) -> np.ndarray:
    """Daily dates (datetime64[D]) of a calendar year."""
    return np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))


def days_in_months(months: np.ndarray) -> np.ndarray:
    """Days in each month of month-start dates."""
    return pd.DatetimeIndex(months).days_in_month.to_numpy()
