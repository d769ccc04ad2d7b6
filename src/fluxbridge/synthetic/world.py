"""Orchestration of the twin world: simulate year by year, write every file, inputs.yaml and
the manifest."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluxbridge.constants import G_PER_PG
from fluxbridge.errors import InputError
from fluxbridge.operators import totals_frame
from fluxbridge.operators.operator import regional_totals
from fluxbridge.outputs.files import atomic_path, write_csv
from fluxbridge.progress import Progress
from fluxbridge.synthetic import inversions as inv
from fluxbridge.synthetic import properties as props
from fluxbridge.synthetic import sites as st
from fluxbridge.synthetic import writers as wr
from fluxbridge.synthetic.climate import ClimateGenerator, climatology, enso_index
from fluxbridge.synthetic.config import WorldConfig, load_world_config, parse_world_config
from fluxbridge.synthetic.geography import Geography, build_geography
from fluxbridge.synthetic.manifest import write_inputs, write_manifest
from fluxbridge.synthetic.towers import write_towers
from fluxbridge.synthetic.vegetation import VegetationModel, classify, legacy_field
from fluxbridge.vocabulary import IGBP_CODE

logger = logging.getLogger(__name__)

_STREAMS = ("geography", "climate", "enso", "legacy", "sites", "site_noise", "modis",
            "inversions", "towers")


def _resolve_config(config: WorldConfig | str | Path | dict | None, seed: int | None
                    ) -> WorldConfig:
    if config is None:
        cfg = WorldConfig()
    elif isinstance(config, WorldConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_world_config(config)
    else:
        cfg = load_world_config(config)
    return cfg if seed is None else cfg.model_copy(update={"seed": int(seed)})


def synthesize(out: str | Path, config: WorldConfig | str | Path | dict | None = None,
               seed: int | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write a reproducible twin world (synthetic Earth in real file formats).

    Parameters
    ----------
    out
        Output directory; an existing non-empty one is refused unless ``overwrite``.
    config
        None (the standard world), a YAML path, a mapping or a :class:`WorldConfig`.
    seed
        Random seed; overrides the configuration's.
    overwrite
        Replace an existing world.
    progress
        Show the progress (a bar on a terminal, log lines otherwise).

    Returns
    -------
    Path
        The world's ``manifest.json``.
    """
    cfg = _resolve_config(config, seed)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError("output exists and is not empty", path=out,
                         expected="a new directory, or overwrite=True (--overwrite)")
    start = time.perf_counter()
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        _build(tmp, cfg, progress)
    logger.debug("twin world written to %s in %.1f s", out, time.perf_counter() - start)
    return out / "manifest.json"


@dataclass
class _Earth:
    """The static world: geography, vegetation, the hidden legacy, the towers; the climate."""

    geo: Geography
    codes: np.ndarray
    land_idx: np.ndarray
    years: list[int]
    all_dates: np.ndarray
    enso: np.ndarray
    climate: ClimateGenerator
    veg: VegetationModel
    productivity: np.ndarray
    legacy: np.ndarray
    sites: pd.DataFrame


@dataclass
class _Record:
    """What the simulated years leave for the files written after them."""

    site_series: dict[str, list[np.ndarray]] = field(default_factory=lambda: {
        k: [] for k in ("ta", "vpd", "sw_in", "precip", "nee", "gpp", "reco")})
    monthly: dict[str, list[np.ndarray]] = field(default_factory=lambda: {
        k: [] for k in ("ta", "precip", "nee")})
    regional: list[pd.DataFrame] = field(default_factory=list)
    annual: dict[str, list[float]] = field(default_factory=lambda: {
        k: [] for k in ("gpp", "reco", "nee", "legacy")})


def _build(root: Path, cfg: WorldConfig, progress: bool) -> None:
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in
                               np.random.SeedSequence(cfg.seed).spawn(len(_STREAMS))),
                    strict=True))
    for sub in ("sites", "meteorology", "remote_sensing", "inversions", "regions", "truth"):
        (root / sub).mkdir()
    bar = Progress(cfg.n_years + 4, "twin world", unit="step", enabled=progress)
    earth = _earth(cfg, rngs)
    bar.update(1)
    files: dict[str, Any] = {"meteorology": [], "remote_sensing": []}
    record = _Record()
    truth = wr.TruthWriter(root / "truth" / "nee_true.nc", earth.geo)
    try:
        for year in earth.years:
            _simulate_year(root, year, earth, record, truth, files, rngs["modis"])
            logger.debug("year %d simulated", year)
            bar.update(1)
    finally:
        truth.close()
    mon_nee, member_nee, truth_regional, corrections = _inversions(root, cfg, earth, record,
                                                                   rngs["inversions"], files)
    files["truth_grid"] = root / "truth" / "nee_true.nc"
    if cfg.n_towers:
        files.update(write_towers(root, earth.geo, earth.all_dates, cfg.n_towers,
                                  cfg.tower_every_days, cfg.tower_noise_ppm, rngs["towers"]))
    bar.update(1)
    _site_files(root, cfg, earth, record, rngs["site_noise"], files)
    files["regions"] = wr.write_regions(root / "regions" / "regions.nc", earth.geo)
    files["land_cover"] = wr.write_landcover(root / "remote_sensing" / "MCD12C1_landcover.nc",
                                             earth.codes, earth.geo)
    bar.update(1)
    properties = props.world_properties(
        geo=earth.geo, codes=earth.codes, legacy=earth.legacy, sites=earth.sites,
        annual=record.annual, truth_regional=truth_regional, corrections=corrections,
        member_nee=member_nee, n_years=cfg.n_years,
        mean_nee=np.where(earth.geo.land, np.nan_to_num(mon_nee).mean(axis=0), np.nan))
    write_inputs(root)
    write_manifest(root, cfg, files, properties, len(earth.sites), earth.years)
    bar.update(1)
    bar.close()


def _earth(cfg: WorldConfig, rngs: dict[str, np.random.Generator]) -> _Earth:
    """Geography, vegetation classes, productivity, the hidden legacy and the tower network."""
    geo = build_geography(cfg.resolution_deg, rngs["geography"])
    codes = classify(geo, climatology(geo))
    land_idx = np.flatnonzero(geo.land)
    years = list(range(cfg.start_year, cfg.start_year + cfg.n_years))
    all_dates = np.arange(np.datetime64(f"{years[0]}-01-01"),
                          np.datetime64(f"{years[-1] + 1}-01-01"))
    enso = enso_index(all_dates.size + 365, rngs["enso"])
    climate = ClimateGenerator(geo, enso, rngs["climate"])
    veg = VegetationModel(codes.ravel()[land_idx], cfg.mature_sink_fraction)
    spin_dates = np.datetime64(f"{years[0] - 1}-01-01") + np.arange(365)
    gpp_spin = veg.calibrate(climate.year(spin_dates, 0), land_idx)
    productivity = np.zeros(geo.land.shape, dtype=np.float32)
    vegetated = gpp_spin > 50.0
    ref = np.median(gpp_spin[vegetated]) if vegetated.any() else max(gpp_spin.max(), 1.0)
    productivity.ravel()[land_idx] = gpp_spin / ref
    legacy = legacy_field(geo, codes, productivity, rngs["legacy"], cfg.legacy_strength)
    sites = st.select_sites(geo, codes, legacy, productivity, cfg, rngs["sites"])
    logger.debug("geography, vegetation and %d sites ready", len(sites))
    return _Earth(geo, codes, land_idx, years, all_dates, enso, climate, veg, productivity,
                  legacy, sites)


def _simulate_year(root: Path, year: int, earth: _Earth, record: _Record,
                   truth: wr.TruthWriter, files: dict[str, Any], rng: np.random.Generator
                   ) -> None:
    """One year: climate, vegetation and true NEE; its ERA5, MODIS and truth files."""
    geo, land_idx = earth.geo, earth.land_idx
    dates = wr.dates_of_year(year)
    clim = earth.climate.year(dates, 365 + int((dates[0] - earth.all_dates[0]).astype(int)))
    out = earth.veg.run(clim, land_idx)
    doy = np.arange(1, dates.size + 1, dtype=np.float32)[:, None]
    lat_land = geo.lat2d.ravel()[land_idx]
    season = 1.0 + 0.2 * np.sin(2 * np.pi * (doy - 100) / 365.25) * np.sign(lat_land)
    legacy_land = earth.legacy.ravel()[land_idx]
    nee = (out["reco"] - out["gpp"] + legacy_land * season).astype(np.float32)
    era5 = {"t2m": clim.ta + 273.15, "d2m": clim.d2m, "ssrd": clim.sw_in * 86400.0,
            "tp": clim.precip / 1000.0}
    path = root / "meteorology" / f"era5_daily_{year}.nc"
    files["meteorology"].append(wr.write_era5_year(path, dates, era5, geo))
    n_t = dates.size
    cloud = clim.cloud.reshape(n_t, -1)[:, land_idx]
    snow = (out["lst_day"] < 271.0) & (earth.codes.ravel()[land_idx] != IGBP_CODE["EBF"])
    files["remote_sensing"] += wr.write_modis_year(
        root / "remote_sensing", year, dates, out, cloud, snow, geo, land_idx, rng)
    nee_grid = wr._scatter(nee, geo, land_idx)
    truth.append(dates, nee_grid, wr.month_starts(dates),
                 wr._scatter(wr.monthly_mean(out["gpp"], dates), geo, land_idx),
                 wr._scatter(wr.monthly_mean(out["reco"], dates), geo, land_idx))
    record.regional.append(_regional_truth(nee_grid, wr._scatter(out["gpp"], geo, land_idx),
                                           dates, geo))
    area = geo.land_area.ravel()[land_idx]
    for key, series in (("gpp", out["gpp"]), ("reco", out["reco"]), ("nee", nee)):
        record.annual[key].append(float((series.sum(0) * area).sum() / G_PER_PG))
    record.annual["legacy"].append(float((legacy_land * n_t * area).sum() / G_PER_PG))
    record.monthly["ta"].append(wr.monthly_mean(clim.ta, dates))
    record.monthly["precip"].append(wr.monthly_mean(clim.precip, dates))
    record.monthly["nee"].append(wr.monthly_mean(nee_grid, dates))
    cells = earth.sites["cell"].to_numpy()
    for key, arr in (("ta", clim.ta), ("vpd", clim.vpd), ("sw_in", clim.sw_in),
                     ("precip", clim.precip)):
        record.site_series[key].append(arr.reshape(n_t, -1)[:, cells])
    site_pos = np.searchsorted(land_idx, cells)
    for key, arr in (("nee", nee), ("gpp", out["gpp"]), ("reco", out["reco"])):
        record.site_series[key].append(arr[:, site_pos])


def _regional_truth(nee_grid: np.ndarray, gpp_grid: np.ndarray, dates: np.ndarray,
                    geo: Geography) -> pd.DataFrame:
    """True regional monthly NEE and GPP [Tg month-1] of one year's daily fields."""
    da = xr.DataArray(nee_grid, dims=("time", "lat", "lon"),
                      coords={"time": dates.astype("datetime64[ns]"), "lat": geo.lat,
                              "lon": geo.lon})
    frame = totals_frame(regional_totals(da, geo.regions), "nee_tgc")
    frame["gpp_tgc"] = totals_frame(regional_totals(da.copy(data=gpp_grid), geo.regions),
                                    "gpp_tgc")["gpp_tgc"].to_numpy()
    return frame


def _inversions(root: Path, cfg: WorldConfig, earth: _Earth, record: _Record,
                rng: np.random.Generator, files: dict[str, Any]
                ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Fire and lateral terms, the inversion members, the corrections and the regional truth.

    Returns the monthly true NEE (month, lat, lon) [g m-2 d-1], the corrected member totals
    (member, region, month) [Tg month-1], the regional truth and the corrections tables.
    """
    geo, all_dates = earth.geo, earth.all_dates
    months = wr.month_starts(all_dates)
    mon = {k: np.concatenate(v) for k, v in record.monthly.items()}
    enso_m = wr.monthly_mean(earth.enso[365:], all_dates)
    lateral = inv.lateral_fields(geo, earth.codes, earth.productivity, mon, enso_m, months, cfg)
    totals = {k: regional_totals(inv.as_monthly_da(v, months, geo, k), geo.regions)
              for k, v in lateral.items()}
    nbe_grid = np.nan_to_num(mon["nee"]) + lateral["fire"] + lateral["river"] + lateral["trade"]
    nbe_grid = np.where(geo.land[None], nbe_grid, np.nan).astype(np.float32)
    nbe_tgc = regional_totals(inv.as_monthly_da(nbe_grid, months, geo, "nbe"), geo.regions)
    errors = inv.member_errors(nbe_tgc, cfg, rng)
    fields = inv.member_fields(nbe_grid, errors, months, geo, rng)
    files["inversions"] = []
    for k, flux in enumerate(fields):
        name = inv.member_name(k)
        files["inversions"].append(inv.write_member(
            root / "inversions" / f"{name}.nc", name, "gcb" if k % 2 == 0 else "ct", flux,
            lateral["fire"], months, geo))
    corrections = totals_frame(totals["fire"], "fire_tgc")
    for term in ("river", "trade"):
        corrections[f"{term}_tgc"] = totals_frame(totals[term], f"{term}_tgc")[
            f"{term}_tgc"].to_numpy()
    files["corrections"] = write_csv(corrections, root / "inversions" / "corrections.csv",
                                     float_format="%.6g")
    truth_regional = pd.concat(record.regional, ignore_index=True).sort_values(
        ["region", "time"], kind="stable").reset_index(drop=True)
    truth_regional = truth_regional.merge(totals_frame(nbe_tgc, "nbe_tgc"),
                                          on=["region", "time"], how="left")
    files["truth_regional"] = write_csv(truth_regional, root / "truth" / "regional_monthly.csv",
                                        float_format="%.6g")
    member_nee = nbe_tgc.values[None] + errors - sum(t.values for t in totals.values())[None]
    return mon["nee"], member_nee, truth_regional, corrections


def _site_files(root: Path, cfg: WorldConfig, earth: _Earth, record: _Record,
                rng: np.random.Generator, files: dict[str, Any]) -> None:
    """One FLUXNET2015 FULLSET DD file per tower, over its years, and the BIF table."""
    series = {k: np.concatenate(v) for k, v in record.site_series.items()}
    all_dates = earth.all_dates
    files["sites"] = []
    for k, site in earth.sites.iterrows():
        keep = ((all_dates >= np.datetime64(f"{site['first_year']}-01-01"))
                & (all_dates < np.datetime64(f"{site['last_year'] + 1}-01-01")))
        frame = st.site_frame({v: a[keep, k] for v, a in series.items()}, all_dates[keep], site,
                              cfg, rng)
        name = st.site_file_name(site["SITE_ID"], site["first_year"], site["last_year"])
        files["sites"].append(st.write_site_file(root / "sites" / name, frame))
    files["site_table"] = st.write_bif(root / "sites" / "FLX_AA-Flx_BIF_LATEST.csv",
                                       earth.sites)
