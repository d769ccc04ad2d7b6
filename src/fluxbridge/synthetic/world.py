"""Orchestration of the twin world: simulate year by year, write every file, the manifest."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from fluxbridge import __version__
from fluxbridge.aggregation import regional_totals, totals_frame
from fluxbridge.constants import G_PER_PG
from fluxbridge.errors import InputError
from fluxbridge.outputs.files import atomic_path, write_csv, write_json
from fluxbridge.synthetic import inversions as inv
from fluxbridge.synthetic import properties as props
from fluxbridge.synthetic import sites as st
from fluxbridge.synthetic import writers as wr
from fluxbridge.synthetic.climate import ClimateGenerator, climatology, enso_index
from fluxbridge.synthetic.config import WorldConfig, load_world_config, parse_world_config
from fluxbridge.synthetic.geography import build_geography
from fluxbridge.synthetic.vegetation import VegetationModel, classify, legacy_field
from fluxbridge.vocabulary import IGBP_CODE

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_STREAMS = ("geography", "climate", "enso", "legacy", "sites", "site_noise", "modis",
            "inversions")


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
        None (the demo world), a YAML path, a mapping or a :class:`WorldConfig`.
    seed
        Random seed; overrides the configuration's.
    overwrite
        Replace an existing world.
    progress
        Show a progress bar (tqdm); logging only otherwise.

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
    logger.info("twin world written to %s in %.1f s", out, time.perf_counter() - start)
    return out / "manifest.json"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build(root: Path, cfg: WorldConfig, progress: bool) -> None:
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in
                               np.random.SeedSequence(cfg.seed).spawn(len(_STREAMS))),
                    strict=True))
    for sub in ("sites", "meteorology", "remote_sensing", "inversions", "regions", "truth"):
        (root / sub).mkdir()
    bar = tqdm(total=cfg.n_years + 4, disable=not progress, desc="twin world", unit="step")

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
    logger.info("geography, vegetation and %d sites ready", len(sites))
    bar.update(1)

    legacy_land = legacy.ravel()[land_idx]
    lat_land = geo.lat2d.ravel()[land_idx]
    site_pos = np.searchsorted(land_idx, sites["cell"].to_numpy())
    site_series: dict[str, list[np.ndarray]] = {k: [] for k in
                                                ("ta", "vpd", "sw_in", "precip", "nee", "gpp",
                                                 "reco")}
    monthly: dict[str, list[np.ndarray]] = {k: [] for k in ("ta", "precip", "nee")}
    regional: list[pd.DataFrame] = []
    files: dict[str, Any] = {"meteorology": [], "remote_sensing": []}
    truth = wr.TruthWriter(root / "truth" / "nee_true.nc", geo)
    annual: dict[str, list[float]] = {"gpp": [], "reco": [], "nee": [], "legacy": []}
    not_evergreen = codes.ravel()[land_idx] != IGBP_CODE["EBF"]
    offset = 365
    try:
        for year in years:
            dates = wr.dates_of_year(year)
            clim = climate.year(dates, offset)
            offset += dates.size
            out = veg.run(clim, land_idx)
            doy = np.arange(1, dates.size + 1, dtype=np.float32)[:, None]
            season = 1.0 + 0.2 * np.sin(2 * np.pi * (doy - 100) / 365.25) * np.sign(lat_land)
            nee = (out["reco"] - out["gpp"] + legacy_land * season).astype(np.float32)

            era5 = {"t2m": clim.ta + 273.15, "d2m": clim.d2m, "ssrd": clim.sw_in * 86400.0,
                    "tp": clim.precip / 1000.0}
            path = root / "meteorology" / f"era5_daily_{year}.nc"
            files["meteorology"].append(wr.write_era5_year(path, dates, era5, geo))
            n_t = dates.size
            cloud = clim.cloud.reshape(n_t, -1)[:, land_idx]
            snow = (out["lst_day"] < 271.0) & not_evergreen
            files["remote_sensing"] += wr.write_modis_year(
                root / "remote_sensing", year, dates, out, cloud, snow, geo, land_idx,
                rngs["modis"])

            months = wr.month_starts(dates)
            nee_grid = wr._scatter(nee, geo, land_idx)
            truth.append(dates, nee_grid, months,
                         wr._scatter(wr.monthly_mean(out["gpp"], dates), geo, land_idx),
                         wr._scatter(wr.monthly_mean(out["reco"], dates), geo, land_idx))
            da = xr.DataArray(nee_grid, dims=("time", "lat", "lon"),
                              coords={"time": dates.astype("datetime64[ns]"), "lat": geo.lat,
                                      "lon": geo.lon})
            frame = totals_frame(regional_totals(da, geo.regions), "nee_tgc")
            gpp_da = da.copy(data=wr._scatter(out["gpp"], geo, land_idx))
            frame["gpp_tgc"] = totals_frame(regional_totals(gpp_da, geo.regions),
                                            "gpp_tgc")["gpp_tgc"].to_numpy()
            regional.append(frame)

            area = geo.land_area.ravel()[land_idx]
            for key, series in (("gpp", out["gpp"]), ("reco", out["reco"]), ("nee", nee)):
                annual[key].append(float((series.sum(0) * area).sum() / G_PER_PG))
            annual["legacy"].append(float((legacy_land * n_t * area).sum() / G_PER_PG))
            monthly["ta"].append(wr.monthly_mean(clim.ta, dates))
            monthly["precip"].append(wr.monthly_mean(clim.precip, dates))
            monthly["nee"].append(wr.monthly_mean(nee_grid, dates))
            grid_at = {"ta": clim.ta, "vpd": clim.vpd, "sw_in": clim.sw_in,
                       "precip": clim.precip}
            for key, arr in grid_at.items():
                site_series[key].append(arr.reshape(n_t, -1)[:, sites["cell"].to_numpy()])
            for key, arr in (("nee", nee), ("gpp", out["gpp"]), ("reco", out["reco"])):
                site_series[key].append(arr[:, site_pos])
            logger.info("year %d simulated", year)
            bar.update(1)
    finally:
        truth.close()

    months = wr.month_starts(all_dates)
    mon = {k: np.concatenate(v) for k, v in monthly.items()}
    enso_m = wr.monthly_mean(enso[365:], all_dates)
    lateral = inv.lateral_fields(geo, codes, productivity, mon, enso_m, months, cfg)
    totals = {k: regional_totals(inv.as_monthly_da(v, months, geo, k), geo.regions)
              for k, v in lateral.items()}
    nbe_grid = np.nan_to_num(mon["nee"]) + lateral["fire"] + lateral["river"] + lateral["trade"]
    nbe_grid = np.where(geo.land[None], nbe_grid, np.nan).astype(np.float32)
    nbe_tgc = regional_totals(inv.as_monthly_da(nbe_grid, months, geo, "nbe"), geo.regions)
    errors = inv.member_errors(nbe_tgc, cfg, rngs["inversions"])
    fields = inv.member_fields(nbe_grid, errors, months, geo, rngs["inversions"])
    files["inversions"] = []
    for k, field in enumerate(fields):
        name = inv.member_name(k)
        style = "gcb" if k % 2 == 0 else "ct"
        files["inversions"].append(inv.write_member(
            root / "inversions" / f"{name}.nc", name, style, field, lateral["fire"], months,
            geo))
    corrections = totals_frame(totals["fire"], "fire_tgc")
    corrections["river_tgc"] = totals_frame(totals["river"], "river_tgc")["river_tgc"].to_numpy()
    corrections["trade_tgc"] = totals_frame(totals["trade"], "trade_tgc")["trade_tgc"].to_numpy()
    files["corrections"] = write_csv(corrections, root / "inversions" / "corrections.csv",
                                     float_format="%.6g")
    truth_regional = pd.concat(regional, ignore_index=True).sort_values(
        ["region", "time"], kind="stable").reset_index(drop=True)
    nbe_frame = totals_frame(nbe_tgc, "nbe_tgc")
    truth_regional = truth_regional.merge(nbe_frame, on=["region", "time"], how="left")
    files["truth_regional"] = write_csv(truth_regional, root / "truth" / "regional_monthly.csv",
                                        float_format="%.6g")
    files["truth_grid"] = root / "truth" / "nee_true.nc"
    bar.update(1)

    series = {k: np.concatenate(v) for k, v in site_series.items()}
    files["sites"] = []
    for k, site in sites.iterrows():
        keep = ((all_dates >= np.datetime64(f"{site['first_year']}-01-01"))
                & (all_dates < np.datetime64(f"{site['last_year'] + 1}-01-01")))
        frame = st.site_frame({v: a[keep, k] for v, a in series.items()}, all_dates[keep], site,
                              cfg, rngs["site_noise"])
        name = st.site_file_name(site["SITE_ID"], site["first_year"], site["last_year"])
        files["sites"].append(st.write_site_file(root / "sites" / name, frame))
    files["site_table"] = st.write_bif(root / "sites" / "FLX_AA-Flx_BIF_LATEST.csv", sites)
    files["regions"] = wr.write_regions(root / "regions" / "regions.nc", geo)
    files["land_cover"] = wr.write_landcover(root / "remote_sensing" / "MCD12C1_landcover.nc",
                                             codes, geo)
    bar.update(1)

    member_nee = nbe_tgc.values[None] + errors - sum(t.values for t in totals.values())[None]
    properties = props.world_properties(
        geo=geo, codes=codes, legacy=legacy, sites=sites, annual=annual,
        truth_regional=truth_regional, corrections=corrections, member_nee=member_nee,
        mean_nee=np.where(geo.land, np.nan_to_num(mon["nee"]).mean(axis=0), np.nan),
        n_years=cfg.n_years)
    _write_manifest(root, cfg, files, properties, sites, years)
    bar.update(1)
    bar.close()


def _rel(root: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [_rel(root, v) for v in value]
    return Path(value).relative_to(root).as_posix()


def _write_manifest(root: Path, cfg: WorldConfig, files: dict[str, Any],
                    properties: dict[str, Any], sites: pd.DataFrame, years: list[int]) -> None:
    rel = {k: _rel(root, v) for k, v in files.items()}
    checksums = {p.relative_to(root).as_posix(): _digest(p)
                 for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = {
        "fluxbridge_twin_world": MANIFEST_VERSION,
        "fluxbridge_version": __version__,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "grid": {"resolution_deg": cfg.resolution_deg, "n_lat": round(180 / cfg.resolution_deg),
                 "n_lon": round(360 / cfg.resolution_deg)},
        "period": {"start": f"{years[0]}-01-01", "end": f"{years[-1]}-12-31",
                   "time_step": "day", "calendar": "proleptic_gregorian"},
        "sizes": {"n_sites": len(sites), "n_members": cfg.n_members, "n_years": cfg.n_years,
                  "n_regions": int(properties["n_regions"])},
        "files": rel,
        "variables": props.VARIABLES,
        "sign_convention": "positive = source to the atmosphere; NBE = NEE + fire + river + trade",
        "properties": properties,
        "checksums_sha256": checksums,
    }
    write_json(manifest, root / "manifest.json")
