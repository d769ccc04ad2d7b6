"""Tall towers of the twin world: footprints, afternoon CO2 mole fractions and their priors.

The towers stand at the coordinates and intake heights of real NOAA and ICOS tall towers
(:data:`TOWERS`). The twin world has no winds, so each receptor's footprint comes from a
stated kernel, not from a transport model: a Gaussian puff advected back upwind in the
**prevailing westerlies** (a wind from the west, its direction drawn per receptor within ±40°
and its speed from 5 to 12 m s-1), its width growing with the distance travelled, and its
surface sensitivity that of a 1000 m mixed layer (:data:`SENSITIVITY_PPM`, ppm per
µmol m-2 s-1 for one hour of contact) decaying as the air leaves the boundary layer
(e-folding :data:`CONTACT_HOURS`). Footprints reach :data:`HOURS_BACK` hours back.

A receptor's mole fraction is

    CO2 = background + H·NEE_true + fossil + ocean + noise    [ppm]

with H the package's own footprint rows (:class:`fluxbridge.operators.FootprintOperator`,
applied to the true daily NEE as written), a smooth background (trend and season), fossil and
ocean enhancements from uniform fluxes through the same footprints, and Gaussian noise of the
world's ``tower_noise_ppm`` (the model–data mismatch). Fire and lateral fluxes are not in the
towers' signal. Files: one STILT-R footprint per receptor, one ObsPack file per tower, and
``tower_priors.csv`` with each receptor's background and fossil and ocean enhancements
(docs/footprints.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.io.footprints import FOOT_UNITS, read_stilt_footprint
from fluxbridge.operators.footprint import FootprintOperator
from fluxbridge.outputs.files import write_csv
from fluxbridge.synthetic.geography import Geography

TOWERS = pd.DataFrame(
    [("LEF", 45.945, -90.273, 396.0), ("WBI", 41.725, -91.353, 379.0),
     ("AMT", 45.035, -68.682, 107.0), ("SCT", 33.406, -81.833, 305.0),
     ("BAO", 40.050, -105.004, 300.0), ("CBW", 51.971, 4.927, 207.0),
     ("OPE", 48.562, 5.504, 120.0), ("TRN", 47.965, 2.113, 180.0),
     ("HTM", 56.098, 13.419, 150.0), ("ZOT", 60.800, 89.350, 301.0)],
    columns=["site", "lat", "lon", "intake_height"])
"""NOAA (LEF Park Falls, WBI West Branch, AMT Argyle, SCT Beech Island, BAO Boulder) and ICOS
(CBW Cabauw, OPE, TRN Trainou, HTM Hyltemossa) tall towers and ZOTTO (ZOT): position [degree]
and highest intake [m above ground]; the world uses the first ``n_towers``."""

HOURS_BACK = 72
SENSITIVITY_PPM = 0.0865
"""ppm per (µmol m-2 s-1) for one hour of surface contact: 3600 s / (41.6 mol m-3 × 1000 m)."""
CONTACT_HOURS = 36.0
RECEPTOR_SOLAR_HOUR = 13.0
"""Local solar hour of each receptor: the well-mixed afternoon."""
FOSSIL_UMOL = 0.2
OCEAN_UMOL = -0.05
"""Uniform fossil (on land) and ocean fluxes [µmol m-2 s-1] of the world's prior enhancements."""
MEASUREMENT_PPM = 0.2
KM_PER_DEG = 111.2


def receptor_times(site: pd.Series, dates: np.ndarray, every_days: int) -> pd.DatetimeIndex:
    """Afternoon receptor times (UTC, on the hour) every ``every_days`` days, from the first
    day whose footprint lies within ``dates``."""
    utc_hour = int(np.round(RECEPTOR_SOLAR_HOUR - site["lon"] / 15.0)) % 24
    first = int(np.ceil(HOURS_BACK / 24)) + 1
    days = pd.DatetimeIndex(dates[first::every_days])
    return days + pd.to_timedelta(utc_hour, "h")


def puff_footprint(geo: Geography, site: pd.Series, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One receptor's footprint (hours back, lat, lon) [ppm (umol-1 m2 s)] on a window of the
    world's grid around the tower (lat, lon ascending), from the module's kernel."""
    lat, lon = geo.lat, geo.lon
    iy = np.flatnonzero(np.abs(lat - site["lat"]) <= 20.0)[::-1]
    ix = np.flatnonzero((lon >= site["lon"] - 60.0) & (lon <= site["lon"] + 16.0))
    wlat, wlon = lat[iy], lon[ix]
    speed = rng.uniform(5.0, 12.0) * 3.6  # [km h-1]
    angle = np.deg2rad(np.clip(rng.normal(0.0, 20.0), -40.0, 40.0))
    hours = np.arange(1, HOURS_BACK + 1, dtype=float)
    dist = speed * hours
    cy = site["lat"] - dist * np.sin(angle) / KM_PER_DEG
    cx = site["lon"] - dist * np.cos(angle) / (KM_PER_DEG * np.cos(np.deg2rad(site["lat"])))
    sigma = 40.0 + 0.3 * dist  # [km]
    dy = (wlat[None, :, None] - cy[:, None, None]) * KM_PER_DEG
    dx = ((wlon[None, None, :] - cx[:, None, None]) * KM_PER_DEG
          * np.cos(np.deg2rad(wlat))[None, :, None])
    res = abs(float(lat[0] - lat[1]))
    area = (res * KM_PER_DEG) ** 2 * np.cos(np.deg2rad(wlat))[None, :, None]  # [km2]
    density = np.exp(-(dx**2 + dy**2) / (2 * sigma[:, None, None] ** 2)) \
        / (2 * np.pi * sigma[:, None, None] ** 2)
    foot = SENSITIVITY_PPM * np.exp(-hours / CONTACT_HOURS)[:, None, None] * density * area
    foot[foot < 1e-3 * foot.max()] = 0.0  # STILT keeps no particle-free cells either
    return foot, wlat, wlon


def write_footprint(path: Path, foot: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                    receptor: pd.Timestamp) -> Path:
    """A STILT-R footprint file: foot (time, lat, lon) float32 with fill -1 for no
    influence, time the beginning of each hour back (most recent first)."""
    hours = receptor - pd.to_timedelta(np.arange(1, foot.shape[0] + 1), "h")
    seconds = ((hours - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(float)
    ds = xr.Dataset(
        {"foot": (("time", "lat", "lon"), np.where(foot > 0, foot, -1.0).astype("f4"),
                  {"units": FOOT_UNITS, "standard_name": "footprint",
                   "long_name": "stilt surface influence footprint"})},
        coords={"lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "time": ("time", seconds, {"units": "seconds since 1970-01-01 00:00:00Z",
                                           "standard_name": "time"})},
        attrs={"crs": "+proj=longlat", "crs_format": "PROJ.4", "title": "STILT Footprint",
               "documentation": "twin-world puff kernel in the STILT-R layout"})
    enc = {"foot": {"_FillValue": np.float32(-1.0), "zlib": True, "complevel": 6,
                    "significant_digits": 3}}
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, encoding=enc)
    tmp.replace(path)
    return path


def write_obspack(path: Path, site: pd.Series, table: pd.DataFrame) -> Path:
    """One tower's ObsPack file: ``value`` in mol mol-1 at the beginning of each hour."""
    n = len(table)
    seconds = ((pd.DatetimeIndex(table["time"]) - pd.Timestamp("1970-01-01"))
               / pd.Timedelta(seconds=1)).to_numpy(np.int64)
    ids = [f"obspack_co2_twin_world~co2_{site['site'].lower()}_tower-insitu_1_allvalid-"
           f"{site['intake_height']:.0f}magl~{i}" for i in range(n)]
    ds = xr.Dataset(
        {"time": ("obs", seconds, {"units": "seconds since 1970-01-01T00:00:00Z"}),
         "value": ("obs", table["co2"].to_numpy() * 1e-6,
                   {"units": "mol mol-1", "_FillValue": -999.999,
                    "long_name": "measured_mole_fraction_of_trace_gas_in_dry_air"}),
         "value_unc": ("obs", np.full(n, MEASUREMENT_PPM * 1e-6), {"units": "mol mol-1"}),
         "latitude": ("obs", np.full(n, site["lat"]), {"units": "degrees_north"}),
         "longitude": ("obs", np.full(n, site["lon"]), {"units": "degrees_east"}),
         "altitude": ("obs", np.full(n, site["intake_height"]), {"units": "m"}),
         "intake_height": ("obs", np.full(n, site["intake_height"]), {"units": "m"}),
         "qc_flag": ("obs", np.array(["..."] * n, dtype="S3")),
         "obs_flag": ("obs", np.ones(n, dtype=np.int32)),
         "obspack_id": ("obs", np.array(ids, dtype="S200"))},
        attrs={"site_code": site["site"], "dataset_parameter": "co2"})
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, encoding={v: {"dtype": "S1"} for v in ("qc_flag", "obspack_id")})
    tmp.replace(path)
    return path


def footprint_name(receptor: pd.Timestamp, site: pd.Series) -> str:
    """STILT simulation id file name ``yyyymmddHHMM_<lon>_<lat>_<zagl>_foot.nc``."""
    return (f"{receptor:%Y%m%d%H%M}_{site['lon']:.4f}_{site['lat']:.4f}_"
            f"{site['intake_height']:.0f}_foot.nc")


def background_ppm(times: pd.DatetimeIndex, lat: np.ndarray) -> np.ndarray:
    """The world's background [ppm]: 389 ppm in 2010, +2 ppm yr-1, a 4 ppm seasonal cycle
    (drawdown in the hemisphere's summer)."""
    years = (times - pd.Timestamp("2010-01-01")) / pd.Timedelta(days=365.25)
    doy = times.day_of_year.to_numpy(float)
    return 389.0 + 2.0 * years.to_numpy(float) \
        + 4.0 * np.sign(lat) * np.cos(2 * np.pi * (doy - 110.0) / 365.25)


def write_towers(root: Path, geo: Geography, dates: np.ndarray, n_towers: int,
                 every_days: int, noise_ppm: float, rng: np.random.Generator
                 ) -> dict[str, list[Path] | Path]:
    """The world's towers under ``root/towers``: footprints, ObsPack files and priors.

    Parameters
    ----------
    root
        The world folder, with ``truth/nee_true.nc`` written.
    geo
        The world's geography.
    dates
        Its days.
    n_towers
        The first ``n_towers`` of :data:`TOWERS`.
    every_days
        Days between a tower's receptors.
    noise_ppm
        Standard deviation of the model–data mismatch [ppm].
    rng
        The towers' random stream.

    Returns
    -------
    dict
        ``footprints``, ``tower_co2`` (lists of paths) and ``tower_priors`` (a path).
    """
    feet_dir, obs_dir = root / "towers" / "footprints", root / "towers" / "obspack"
    feet_dir.mkdir(parents=True)
    obs_dir.mkdir(parents=True)
    lf2d = geo.regions["land_fraction"].values
    rows, paths = [], []
    for _, site in TOWERS.head(n_towers).iterrows():
        for receptor in receptor_times(site, dates, every_days):
            foot, wlat, wlon = puff_footprint(geo, site, rng)
            lf = lf2d[np.searchsorted(-geo.lat, -wlat)][:, np.searchsorted(geo.lon, wlon)]
            paths.append(write_footprint(feet_dir / footprint_name(receptor, site), foot,
                                         wlat, wlon, receptor))
            rows.append({"site": site["site"], "time": receptor,
                         "fossil_ppm": FOSSIL_UMOL * float((foot * lf).sum()),
                         "ocean_ppm": OCEAN_UMOL * float((foot * (1 - lf)).sum())})
    table = pd.DataFrame(rows)
    table["bio_ppm"] = _true_enhancements(root, geo, paths)
    lat = TOWERS.set_index("site").loc[table["site"], "lat"].to_numpy()
    table["background_ppm"] = background_ppm(pd.DatetimeIndex(table["time"]), lat)
    table["co2"] = (table["background_ppm"] + table["bio_ppm"] + table["fossil_ppm"]
                    + table["ocean_ppm"] + rng.normal(0.0, noise_ppm, len(table)))
    obs = [write_obspack(obs_dir / f"co2_{s['site'].lower()}_tower-insitu_1_allvalid-"
                                   f"{s['intake_height']:.0f}magl.nc", s,
                         table[table["site"] == s["site"]])
           for _, s in TOWERS.head(n_towers).iterrows()]
    priors = table[["site", "time", "background_ppm", "fossil_ppm", "ocean_ppm"]].assign(
        time=pd.DatetimeIndex(table["time"]).strftime("%Y-%m-%dT%H:%M:%S"))
    return {"footprints": paths, "tower_co2": obs,
            "tower_priors": write_csv(priors, root / "towers" / "tower_priors.csv",
                                      float_format="%.5f")}


def _true_enhancements(root: Path, geo: Geography, paths: list[Path]) -> np.ndarray:
    """H·NEE_true [ppm] of each written footprint, read back, over every land cell."""
    with xr.open_dataset(root / "truth" / "nee_true.nc") as ds:
        nee = ds["nee"].load()
    land_y, land_x = np.nonzero(geo.land)
    lf = geo.regions["land_fraction"].values[land_y, land_x]
    feet = (read_stilt_footprint(p) for p in paths)  # one at a time: a few hundred kB each
    op = FootprintOperator(feet, pd.DatetimeIndex(nee["time"].values), geo.lat, geo.lon,
                           land_y, land_x, lf)
    if len(op.obs_index) != len(paths):
        raise RuntimeError("a twin-world footprint left the world's days")
    return op.exact(np.nan_to_num(nee.values[:, land_y, land_x]))
