"""Fire and lateral fluxes, and the inversion ensemble (GCB- and CarbonTracker-style files).

Flux densities here are monthly means per m2 of land (month, lat, lon) [gC m-2 d-1]; files
store them per m2 of grid cell, as the real products do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from fluxbridge.constants import G_PER_PG, G_PER_TG, MOLAR_MASS_C, SECONDS_PER_DAY
from fluxbridge.synthetic.config import WorldConfig
from fluxbridge.synthetic.geography import Geography, SmoothNoise
from fluxbridge.synthetic.writers import ZLIB, _global_attrs, days_in_months
from fluxbridge.vocabulary import IGBP_CODE

MEMBER_NAMES = ("CAMS", "CTE", "Jena-CarboScope", "MIROC", "CT-NOAA", "NISMON-CO2", "UoE",
                "CMS-Flux", "OCO2-MIP", "GONGGA", "THU", "IAPCAS")
TRADE_SHARES: dict[str, float] = {
    "Europe": 0.35, "Eurasia Temperate": 0.35, "Tropical Asia": 0.2,
    "North American Temperate": -0.45, "South American Temperate": -0.2, "Australia": -0.1,
    "South American Tropical": -0.15,
}
"""Net import (+, emitted where consumed) or export (−) of crop and wood carbon, share of the
moved total; sums to zero."""


def _scale_to(field: np.ndarray, geo: Geography, months: np.ndarray, total_pgc_yr: float,
              n_years: float) -> np.ndarray:
    """Scale a non-negative (month, lat, lon) field so its mean global total is ``total``."""
    days = days_in_months(months)[:, None, None]
    total = np.nansum(field * geo.land_area[None] * days) / G_PER_PG / n_years
    return field * (total_pgc_yr / total) if total > 0 else field


def lateral_fields(geo: Geography, codes: np.ndarray, productivity: np.ndarray,
                   monthly: dict[str, np.ndarray], enso_monthly: np.ndarray,
                   months: np.ndarray, cfg: WorldConfig) -> dict[str, np.ndarray]:
    """Fire, river outgassing and trade (month, lat, lon) [gC m-2 d-1 of land], + = source.

    Parameters
    ----------
    monthly
        Monthly means ``ta`` [degC] and ``precip`` [mm d-1] (month, lat, lon).
    enso_monthly
        ENSO-like index per month [1].
    """
    lat = geo.lat2d[None]
    prod = np.clip(np.nan_to_num(productivity), 0, 3)[None]
    savanna = np.isin(codes, [IGBP_CODE[c] for c in ("SAV", "WSA", "GRA", "OSH", "EBF")])
    boreal = np.isin(codes, [IGBP_CODE[c] for c in ("ENF", "DNF", "OSH", "MF")]) & (geo.lat2d > 45)
    tropic = np.abs(lat) < 35
    dry = np.exp(-monthly["precip"] / 1.5)
    fire = (savanna[None] & tropic) * prod * dry * np.exp(0.3 * enso_monthly[:, None, None])
    fire = fire + 0.5 * boreal[None] * prod * np.clip(monthly["ta"] - 8.0, 0, None) / 10.0
    n_years = cfg.n_years
    fire = _scale_to(fire * geo.land[None], geo, months, cfg.fire_pgc, n_years)
    river = _scale_to(monthly["precip"] * geo.land[None], geo, months, cfg.river_pgc, n_years)

    trade = np.zeros_like(fire)
    region = geo.regions["region"].values
    crops = np.isin(codes, [IGBP_CODE["CRO"], IGBP_CODE["GRA"]])
    for rid, name in geo.names.items():
        share = TRADE_SHARES.get(name, 0.0)
        inside = region == rid
        if share == 0 or not inside.any():
            continue
        where = inside & crops if share < 0 and (inside & crops).any() else inside
        area = (geo.land_area * where).sum()
        density = share * cfg.trade_pgc * G_PER_PG / 365.25 / area  # g m-2 d-1
        trade += (density * where)[None]
    return {k: v.astype(np.float32) for k, v in
            {"fire": fire, "river": river, "trade": trade}.items()}


def as_monthly_da(field: np.ndarray, months: np.ndarray, geo: Geography, name: str
                  ) -> xr.DataArray:
    """(month, lat, lon) density as a DataArray on the canonical grid."""
    return xr.DataArray(field, dims=("time", "lat", "lon"),
                        coords={"time": months.astype("datetime64[ns]"), "lat": geo.lat,
                                "lon": geo.lon},
                        name=name, attrs={"units": "g m-2 d-1", "long_name": name})


def member_errors(nbe: xr.DataArray, cfg: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """Errors (member, region, month) [Tg month-1]: shared part + member bias, amplitude,
    phase and noise, scaled by each region's seasonal scale."""
    x = nbe.values  # (region, month)
    n_r, n_t = x.shape
    scale = x.std(axis=1) + 0.2 * np.abs(x).mean(axis=1) + 1.0
    shared = cfg.common_error * scale[:, None] * (
        0.7 * rng.standard_normal((n_r, 1)) + 0.7 * rng.standard_normal((n_r, n_t)))
    anomaly = x - x.mean(axis=1, keepdims=True)
    slope = np.gradient(x, axis=1)
    m = cfg.n_members
    bias = rng.standard_normal((m, n_r, 1))
    noise = 0.5 * rng.standard_normal((m, n_r, n_t))
    amp = rng.normal(0, 0.15, (m, n_r, 1))
    phase = rng.normal(0, 0.3, (m, n_r, 1))  # months
    own = cfg.member_error * scale[None, :, None] * (bias + noise)
    return (shared[None] + own + amp * anomaly[None] - phase * slope[None]).astype(np.float64)


def member_fields(nbe_grid: np.ndarray, errors: np.ndarray, months: np.ndarray,
                  geo: Geography, rng: np.random.Generator) -> list[np.ndarray]:
    """Per-member NBE density (month, lat, lon) [gC m-2 d-1 of land]: truth + spread errors.

    Each region-month error [Tg] is spread over the region's land with a member-specific smooth
    positive pattern, so the member's regional total is the truth plus that error.
    """
    region = geo.regions["region"].values
    ids = sorted(geo.names)
    days = days_in_months(months)
    out = []
    for m in range(errors.shape[0]):
        pattern = np.exp(0.5 * SmoothNoise(rng, geo.lat, geo.lon, scale_deg=10.0).next(1)[0])
        field = nbe_grid.copy()
        for k, rid in enumerate(ids):
            inside = region == rid
            weight = pattern * geo.land_area * inside
            total = weight.sum()
            if total <= 0:
                continue
            per_area = errors[m, k][:, None, None] * G_PER_TG / days[:, None, None] / total
            field = field + per_area * (pattern * inside)[None]
        out.append(field.astype(np.float32))
    return out


def write_member(path: Path, name: str, style: str, nbe: np.ndarray, fire: np.ndarray,
                 months: np.ndarray, geo: Geography) -> Path:
    """One inversion member file, GCB (``gcb``) or CarbonTracker (``ct``) style.

    Densities per m2 of land are multiplied by the land fraction (per m2 of cell) and
    converted to the product's unit: PgC m-2 yr-1 (GCB) or mol m-2 s-1 (CT).
    """
    lf = geo.regions["land_fraction"].values[None]
    per_cell = np.nan_to_num(nbe) * lf
    time = ("time", (months - np.datetime64("2000-01-01")).astype(int),
            {"units": "days since 2000-01-01", "calendar": "proleptic_gregorian",
             "standard_name": "time", "long_name": "month start"})
    coords = {"time": time,
              "latitude": ("latitude", geo.lat, {"units": "degrees_north",
                                                 "standard_name": "latitude"}),
              "longitude": ("longitude", geo.lon, {"units": "degrees_east",
                                                   "standard_name": "longitude"})}
    ds = xr.Dataset(coords=coords)
    dims = ("time", "latitude", "longitude")
    if style == "gcb":
        years = months.astype("datetime64[Y]").astype(int) + 1970
        days_year = np.where((years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0)),
                             366, 365)[:, None, None]
        ds["land_flux_only_fossil_cement_adjusted"] = (dims, per_cell * days_year / G_PER_PG, {
            "units": "PgC m-2 yr-1", "long_name": "land flux only, fossil and cement adjusted "
            "(net biome exchange, positive = source to the atmosphere)"})
    else:
        to_mol = 1.0 / (MOLAR_MASS_C * SECONDS_PER_DAY)
        fire_cell = np.nan_to_num(fire) * lf
        ds["bio_flux_opt"] = (dims, (per_cell - fire_cell) * to_mol, {
            "units": "mol m-2 s-1", "long_name": "terrestrial biosphere CO2 flux, optimized "
            "(excludes fire)"})
        ds["fire_flux_imp"] = (dims, fire_cell * to_mol, {
            "units": "mol m-2 s-1", "long_name": "fire CO2 flux, imposed"})
    ds.attrs = _global_attrs(f"twin-world inversion member {name}", inversion_name=name,
                             style="GCB" if style == "gcb" else "CarbonTracker")
    encoding = {v: {"dtype": "float32", **ZLIB} for v in ds.data_vars}
    ds.to_netcdf(path, encoding=encoding)
    return path


def member_name(k: int) -> str:
    """Name of member ``k`` (unique)."""
    base = MEMBER_NAMES[k % len(MEMBER_NAMES)]
    return base if k < len(MEMBER_NAMES) else f"{base}-{k // len(MEMBER_NAMES) + 1}"
