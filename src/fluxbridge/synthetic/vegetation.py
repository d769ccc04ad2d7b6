"""Vegetation of the twin world: IGBP classes from climate, phenology, GPP, respiration, legacy.

Land cells are handled as flat vectors (``n_land``) and daily series as (time, n_land) float32.
"""

from __future__ import annotations

import numpy as np

from fluxbridge.synthetic.climate import DailyClimate
from fluxbridge.synthetic.geography import Geography, SmoothNoise
from fluxbridge.vocabulary import IGBP_CODE, igbp_codes

_KELVIN = 273.15
BUCKET_MM = 150.0
GREEN_TAU_D = 15.0
Q10 = 1.8
AUTOTROPHIC = 0.45  # share of respiration that follows the day's GPP

# class: (NDVI at full greenness [1], light-use efficiency [gC MJ-1 APAR], evergreen floor [1])
CLASS_PARAMS: dict[str, tuple[float, float, float]] = {
    "ENF": (0.80, 1.10, 0.55), "EBF": (0.88, 1.16, 0.80), "DNF": (0.78, 1.10, 0.0),
    "DBF": (0.86, 1.38, 0.0), "MF": (0.84, 1.27, 0.3), "CSH": (0.65, 1.05, 0.3),
    "OSH": (0.50, 0.88, 0.0), "WSA": (0.78, 1.21, 0.2), "SAV": (0.68, 1.16, 0.0),
    "GRA": (0.70, 1.16, 0.0), "WET": (0.72, 1.10, 0.0), "CRO": (0.85, 1.60, 0.0),
    "SNO": (0.10, 0.00, 0.0), "BSV": (0.22, 0.77, 0.0),
}  # fmt: skip


def classify(geo: Geography, normals: dict[str, np.ndarray]) -> np.ndarray:
    """IGBP code (lat, lon) from climate normals, Whittaker-like; 0 (water) off land.

    Parameters
    ----------
    geo
        Static geography (continentality, moisture, ice).
    normals
        ``ta`` annual mean [degC], ``precip`` annual total [mm yr-1] (lat, lon).
    """
    t, p = normals["ta"], normals["precip"]
    cont, moist = geo.continentality, geo.moisture
    c = np.full(t.shape, "BSV", dtype="<U3")
    tropical = t >= 21
    c[tropical] = np.select(
        [p < 250, p < 550, p < 1100, p < 1700],
        ["BSV", "OSH", "SAV", "WSA"], "EBF")[tropical]
    warm = (t >= 14) & (t < 21)
    c[warm] = np.select([p < 250, p < 500, p < 800, p < 1200],
                        ["BSV", "OSH", np.where(moist > 0, "CRO", "GRA"), "WSA"],
                        "EBF")[warm]
    temperate = (t >= 3) & (t < 14)
    c[temperate] = np.select(
        [p < 250, p < 450, p < 800, t < 8],
        ["BSV", "GRA", np.where(cont > 0.45, "CRO", "GRA"), "MF"], "DBF")[temperate]
    boreal = (t >= -5) & (t < 3)
    east_siberia = (geo.lon2d > 100) & (cont > 0.8) & (t < -1)
    c[boreal] = np.where(p > 350, np.where(east_siberia, "DNF", "ENF"), "OSH")[boreal]
    tundra = (t >= -15) & (t < -5)
    c[tundra] = np.where(moist > 0.8, "WET", "OSH")[tundra]
    c[(t < -15) | geo.ice] = "SNO"
    codes = igbp_codes(c.ravel()).reshape(c.shape).astype(np.uint8)
    return np.where(geo.land, codes, 0).astype(np.uint8)


def _class_param(codes: np.ndarray, k: int) -> np.ndarray:
    table = np.zeros(len(IGBP_CODE), dtype=np.float32)
    for name, params in CLASS_PARAMS.items():
        table[IGBP_CODE[name]] = params[k]
    return table[codes]


class VegetationModel:
    """Bucket soil water, greenness, GPP and respiration on the land cells.

    Parameters
    ----------
    codes
        IGBP code of each land cell (n_land,).
    mature_sink_fraction
        Annual (GPP − RECO) / GPP [1] that :meth:`calibrate` sets per cell.
    """

    def __init__(self, codes: np.ndarray, mature_sink_fraction: float) -> None:
        self.codes = codes
        self.ndvi_max = _class_param(codes, 0)
        self.lue = _class_param(codes, 1)
        self.floor = _class_param(codes, 2)
        self.sink = mature_sink_fraction
        n = codes.size
        self.water = np.full(n, 0.5 * BUCKET_MM, dtype=np.float32)
        self.green = np.full(n, 0.5, dtype=np.float32)
        self.r_ref = np.zeros(n, dtype=np.float32)

    def _dynamics(self, ta: np.ndarray, precip: np.ndarray, sw_in: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Daily water stress [0..1] and greenness [0..1] (time, n_land)."""
        pet = 0.03 * sw_in * np.clip((ta + 5.0) / 35.0, 0.0, 1.2)
        f_temp = 1.0 / (1.0 + np.exp(-(ta - 5.0) / 2.5))
        f_water = np.empty_like(ta)
        green = np.empty_like(ta)
        w, g = self.water, self.green
        for t in range(ta.shape[0]):
            et = pet[t] * np.clip(2.0 * w / BUCKET_MM, 0.0, 1.0) * (0.3 + 0.7 * g)
            w = np.clip(w + precip[t] - et, 0.0, BUCKET_MM)
            f_water[t] = np.clip(2.0 * w / BUCKET_MM, 0.0, 1.0)
            g = g + (f_temp[t] * f_water[t] - g) / GREEN_TAU_D
            green[t] = g
        self.water, self.green = w, g
        return f_water, np.maximum(green, self.floor)

    def _gpp(self, ta: np.ndarray, vpd: np.ndarray, sw_in: np.ndarray, ndvi: np.ndarray,
             f_water: np.ndarray) -> np.ndarray:
        fapar = np.clip(1.25 * ndvi - 0.19, 0.0, 0.95)
        par = 0.45 * sw_in * 0.0864  # MJ m-2 d-1
        f_t = np.clip((ta + 3.0) / 15.0, 0.0, 1.0) * np.clip(1.0 - (ta - 32.0) / 15.0, 0.0, 1.0)
        f_vpd = np.clip(1.0 - (vpd - 8.0) / 32.0, 0.05, 1.0)
        return self.lue * fapar * par * f_t * f_vpd * (0.2 + 0.8 * f_water)

    @staticmethod
    def _resp_shape(ta: np.ndarray, f_water: np.ndarray) -> np.ndarray:
        return Q10 ** ((ta - 15.0) / 10.0) * (0.3 + 0.7 * f_water)

    def run(self, clim: DailyClimate, land_idx: np.ndarray) -> dict[str, np.ndarray]:
        """Simulate one year on the land cells; continue the state.

        Returns
        -------
        dict
            (time, n_land) float32: ``gpp``, ``reco`` [gC m-2 d-1], ``ndvi``, ``evi``, ``nir``
            [1], ``green`` and ``f_water`` [0..1], ``lst_day``, ``lst_night`` [K].
        """
        n_t = clim.ta.shape[0]

        def pick(a: np.ndarray) -> np.ndarray:
            return a.reshape(n_t, -1)[:, land_idx]

        ta, vpd, sw_in = pick(clim.ta), pick(clim.vpd), pick(clim.sw_in)
        f_water, green = self._dynamics(ta, pick(clim.precip), sw_in)
        ndvi = 0.1 + (self.ndvi_max - 0.1) * green
        gpp = self._gpp(ta, vpd, sw_in, ndvi, f_water)
        reco = AUTOTROPHIC * (1 - self.sink) * gpp + self.r_ref * self._resp_shape(ta, f_water)
        nir = 0.12 + 0.30 * np.clip((ndvi - 0.1) / 0.8, 0.0, 1.0)
        red = nir * (1 - ndvi) / (1 + ndvi)
        evi = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * 0.5 * red + 1)
        cloud = pick(clim.cloud)
        lst_day = ta + _KELVIN + 0.025 * sw_in * (1.3 - green)
        lst_night = ta + _KELVIN - 2.0 - 4.0 * (1.0 - cloud)
        out = {"gpp": gpp, "reco": reco, "ndvi": ndvi, "evi": evi, "nir": nir, "green": green,
               "f_water": f_water, "lst_day": lst_day, "lst_night": lst_night}
        return {k: v.astype(np.float32) for k, v in out.items()}

    def calibrate(self, clim: DailyClimate, land_idx: np.ndarray) -> np.ndarray:
        """Spin up one year and set the respiration base so RECO = (1 − sink) GPP annually.

        Returns the spin-up year's GPP (n_land,) [gC m-2 yr-1].
        """
        out = self.run(clim, land_idx)
        n_t = clim.ta.shape[0]
        ta = clim.ta.reshape(n_t, -1)[:, land_idx]
        gpp_sum = out["gpp"].sum(0)
        shape_sum = self._resp_shape(ta, out["f_water"]).sum(0)
        hetero = (1 - AUTOTROPHIC) * (1 - self.sink) * gpp_sum
        self.r_ref = (hetero / np.maximum(shape_sum, 1e-6)).astype(np.float32)
        return gpp_sum


def legacy_field(geo: Geography, codes: np.ndarray, productivity: np.ndarray,
                 rng: np.random.Generator, strength: float) -> np.ndarray:
    """Hidden disturbance and stand-age legacy L (lat, lon) [gC m-2 d-1], NaN off land.

    A smooth random field plus disturbance hot spots (tropical deforestation, boreal fire
    scars: sources) and regrowth sinks (temperate forests), scaled by the square root of
    productivity. Independent of the predictors by construction: its pattern is drawn at
    random, only its hot spots' location follows the vegetation zones.

    Parameters
    ----------
    codes
        IGBP code (lat, lon).
    productivity
        Annual GPP relative to the median vegetated cell (lat, lon) [1].
    strength
        Multiplier of the whole field [1].
    """
    field = SmoothNoise(rng, geo.lat, geo.lon, scale_deg=12.0).next(1)[0]
    base = 0.03 + 0.08 * field
    lat, lon = geo.lat2d, geo.lon2d
    bumps = np.zeros_like(base)
    names = {code: name for name, code in IGBP_CODE.items()}
    cls = np.vectorize(names.__getitem__, otypes=["<U3"])(codes)
    zones = [
        (np.isin(cls, ["EBF", "WSA"]) & (np.abs(lat) < 20), 8, (0.3, 1.0)),
        (np.isin(cls, ["ENF", "DNF", "OSH"]) & (lat > 48), 8, (0.2, 0.6)),
        (np.isin(cls, ["DBF", "MF", "ENF"]) & (np.abs(lat) > 25) & (np.abs(lat) < 55), 10,
         (-0.6, -0.2)),
    ]
    for zone, n_spots, (lo_amp, hi_amp) in zones:
        cells = np.flatnonzero(zone)
        if cells.size == 0:
            continue
        for cell in rng.choice(cells, size=min(n_spots, cells.size), replace=False):
            radius = rng.uniform(2.0, 5.0)
            dlat = lat - lat.flat[cell]
            dlon = (lon - lon.flat[cell] + 180.0) % 360.0 - 180.0
            dist2 = dlat**2 + (dlon * np.cos(np.deg2rad(lat))) ** 2
            bumps += rng.uniform(lo_amp, hi_amp) * np.exp(-dist2 / (2 * radius**2))
    legacy = strength * (base + bumps) * np.sqrt(np.clip(productivity, 0.0, 3.0))
    return np.where(geo.land, legacy, np.nan).astype(np.float32)
