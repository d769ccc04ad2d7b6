"""Daily climate of the twin world: seasonality by latitude and continent, weather, ENSO.

All fields are (time, lat, lon) float32 on the canonical grid, over land and ocean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fluxbridge.grid import sw_in_pot_daily
from fluxbridge.synthetic.geography import Geography, SmoothNoise

_KELVIN = 273.15
_WET_MEAN = 1.2266  # E[max(0, 1 + 1.5 z)] for z ~ N(0, 1): keeps the daily precipitation mean


def esat_pa(t_kelvin: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water [Pa] (ECMWF Tetens) at temperature [K]."""
    return 611.21 * np.exp(17.502 * (t_kelvin - 273.16) / (t_kelvin - 32.19))


def dewpoint_k(vapour_pa: np.ndarray) -> np.ndarray:
    """Dew point [K] of a vapour pressure [Pa], the inverse of :func:`esat_pa`."""
    x = np.log(np.maximum(vapour_pa, 1e-3) / 611.21)
    return (32.19 * x - 17.502 * 273.16) / (x - 17.502)


@dataclass
class DailyClimate:
    """One year of daily climate (time, lat, lon), float32.

    ``ta`` [degC], ``d2m`` [K], ``vpd`` [hPa], ``sw_in`` and ``sw_in_pot`` [W m-2],
    ``precip`` [mm d-1]; ``cloud`` [0..1] (for MODIS cloud gaps); ``precip_clim`` the
    climatological precipitation [mm d-1] of each day.
    """

    ta: np.ndarray
    d2m: np.ndarray
    vpd: np.ndarray
    sw_in: np.ndarray
    sw_in_pot: np.ndarray
    precip: np.ndarray
    cloud: np.ndarray
    precip_clim: np.ndarray


def _seasonal_terms(geo: Geography, doy: np.ndarray, enso: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Climatological temperature [degC] and precipitation [mm d-1] (time, lat, lon)."""
    phi = geo.lat2d[None].astype(np.float32)
    s = np.abs(np.sin(np.deg2rad(phi)))
    cont = geo.continentality[None]
    ice = geo.ice[None].astype(np.float32)
    d = doy[:, None, None].astype(np.float32)
    tropic = np.exp(-((phi / 20.0) ** 2))

    t_mean = 27.0 - 40.0 * s**2 - 5.0 * cont * s - 15.0 * ice
    amp = 1.5 + 17.0 * s**1.2 * (0.35 + 0.65 * cont)
    season = -np.sign(phi) * np.cos(2 * np.pi * (d - 20.0) / 365.25)
    ta = t_mean + amp * season + np.float32(0.5) * enso[:, None, None] * tropic

    itcz = (6.0 + 8.0 * cont) * np.sin(2 * np.pi * (d - 110.0) / 365.25)
    trop = 9.0 * np.exp(-(((phi - itcz) / 12.0) ** 2))
    dry = 1.0 - 0.8 * np.exp(-(((np.abs(phi) - 25.0) / 6.0) ** 2))
    winter = -season
    mid = 2.0 * np.exp(-(((np.abs(phi) - 50.0) / 15.0) ** 2)) * (1.25 - 0.7 * cont) \
        * (1.0 + 0.25 * winter)
    precip = 1.3 * (trop + mid + 0.4) * dry * np.exp(0.5 * geo.moisture[None])
    precip = precip * np.exp(-0.3 * enso[:, None, None] * tropic)
    return ta.astype(np.float32), precip.astype(np.float32)


def climatology(geo: Geography) -> dict[str, np.ndarray]:
    """Annual climate normals (lat, lon): ``ta`` [degC] mean, ``precip`` [mm yr-1] total."""
    doy = np.arange(1, 366)
    ta, precip = _seasonal_terms(geo, doy, np.zeros(doy.size, dtype=np.float32))
    return {"ta": ta.mean(0), "precip": precip.sum(0)}


class ClimateGenerator:
    """Year-by-year daily climate with continuous weather noise.

    Parameters
    ----------
    geo
        Static geography.
    enso
        Daily ENSO-like index [1] over the whole period; see :func:`enso_index`.
    rng
        Random generator owned by the climate.
    """

    def __init__(self, geo: Geography, enso: np.ndarray, rng: np.random.Generator) -> None:
        self.geo = geo
        self.enso = enso
        self.noise_t = SmoothNoise(rng, geo.lat, geo.lon, scale_deg=15.0, rho=0.75)
        self.noise_p = SmoothNoise(rng, geo.lat, geo.lon, scale_deg=10.0, rho=0.4)
        self.noise_h = SmoothNoise(rng, geo.lat, geo.lon, scale_deg=12.0, rho=0.6)

    def year(self, dates: np.ndarray, day_offset: int) -> DailyClimate:
        """Daily climate for ``dates`` (datetime64[D]); ``day_offset`` indexes the ENSO series."""
        geo = self.geo
        n = dates.size
        doy = (dates - dates.astype("datetime64[Y]")).astype(int) + 1
        enso = self.enso[day_offset:day_offset + n]
        ta, p_clim = _seasonal_terms(geo, doy, enso)
        s = np.abs(np.sin(np.deg2rad(geo.lat2d))).astype(np.float32)
        zt = self.noise_t.next(n)
        zp = self.noise_p.next(n)
        zh = 0.6 * zp + 0.8 * self.noise_h.next(n)
        ta = ta + (0.8 + 3.0 * s)[None] * zt
        precip = p_clim * np.maximum(0.0, 1.0 + 1.5 * zp) / _WET_MEAN
        cloud = np.clip(0.2 + 0.55 * np.tanh(p_clim / 5.0) + 0.15 * zp, 0.02, 0.95)
        pot = sw_in_pot_daily(geo.lat2d[None], doy[:, None, None]).astype(np.float32)
        sw_in = pot * (0.76 - 0.5 * cloud)
        rh = np.clip(0.3 + 0.55 * np.tanh(p_clim / 2.5) + 0.06 * zh, 0.08, 0.97)
        t_k = ta + _KELVIN
        e_sat = esat_pa(t_k)
        d2m = np.minimum(dewpoint_k(rh * e_sat), t_k)
        vpd = (e_sat - esat_pa(d2m)) / 100.0
        f32 = np.float32
        return DailyClimate(ta=ta.astype(f32), d2m=d2m.astype(f32), vpd=vpd.astype(f32),
                            sw_in=sw_in.astype(f32), sw_in_pot=np.broadcast_to(pot, ta.shape),
                            precip=precip.astype(f32), cloud=cloud.astype(f32),
                            precip_clim=p_clim)


def enso_index(n_days: int, rng: np.random.Generator) -> np.ndarray:
    """An ENSO-like index [1]: monthly AR(1) (lag-one 0.92, unit variance), daily interpolated."""
    n_months = n_days // 28 + 2
    x = np.empty(n_months)
    x[0] = rng.standard_normal()
    eps = rng.standard_normal(n_months) * np.sqrt(1 - 0.92**2)
    for i in range(1, n_months):
        x[i] = 0.92 * x[i - 1] + eps[i]
    days = np.arange(n_days)
    return np.interp(days, np.arange(n_months) * 30.44, x).astype(np.float32)
