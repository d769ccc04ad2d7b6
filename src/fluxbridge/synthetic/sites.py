"""The tower network: non-representative placement, FLUXNET2015 FULLSET DD files, BIF metadata."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from fluxbridge.constants import MISSING_FLUXNET
from fluxbridge.grid import sw_in_pot_daily
from fluxbridge.synthetic.config import WorldConfig
from fluxbridge.synthetic.geography import Geography
from fluxbridge.vocabulary import IGBP_CLASSES

_COUNTRIES: dict[str, tuple[str, ...]] = {
    "Europe": ("DE", "FR", "IT", "ES", "FI", "NL", "BE", "CH", "DK", "CZ", "GB", "SE", "AT"),
    "North American Temperate": ("US", "US", "US", "CA", "MX"),
    "North American Boreal": ("CA", "US"),
    "Eurasia Temperate": ("CN", "JP", "KR", "MN", "KZ"),
    "Eurasia Boreal": ("RU",),
    "Australia": ("AU",),
    "South American Tropical": ("BR", "GF", "PE"),
    "South American Temperate": ("AR", "BR", "CL"),
    "Northern Africa": ("SN", "SD", "GH"),
    "Southern Africa": ("ZA", "ZM", "BW", "CG"),
    "Tropical Asia": ("MY", "ID", "TH", "IN"),
}


def select_sites(geo: Geography, codes: np.ndarray, legacy: np.ndarray,
                 productivity: np.ndarray, cfg: WorldConfig, rng: np.random.Generator
                 ) -> pd.DataFrame:
    """Place the towers: dense in Europe and North America, on productive, undisturbed stands.

    The probability of a cell is ∝ regional density × land area × exp(−L / scale) ×
    productivity, where L is the hidden legacy [gC m-2 d-1].

    Returns
    -------
    pd.DataFrame
        One row per site: ``SITE_ID``, ``lat``, ``lon`` [degree], ``igbp``, ``cell`` (flat
        grid index), ``region``, ``first_year``, ``last_year``, ``elev`` [m], ``utc_offset`` [h].
    """
    names = geo.names
    region = geo.regions["region"].values
    density = np.zeros(region.shape)
    for rid, name in names.items():
        density[region == rid] = cfg.site_density.get(name, 0.0)
    snow = codes == IGBP_CLASSES.index("SNO")
    ok = (geo.regions["land_fraction"].values >= 0.3) & ~snow & (region > 0)
    legacy0 = np.nan_to_num(legacy)
    weight = density * geo.land_area * np.exp(-legacy0 / cfg.site_legacy_avoidance) \
        * np.clip(productivity, 0.0, 3.0) * ok
    weight = weight.ravel()
    if weight.sum() <= 0:
        weight = ok.ravel().astype(float)
    cells = rng.choice(weight.size, size=cfg.n_sites, replace=True, p=weight / weight.sum())
    res = float(geo.regions.attrs.get("resolution_deg", abs(geo.lat[0] - geo.lat[1])))
    lat = geo.lat2d.ravel()[cells] + rng.uniform(-0.45, 0.45, cells.size) * res
    lon = geo.lon2d.ravel()[cells] + rng.uniform(-0.45, 0.45, cells.size) * res
    n_years = np.minimum(rng.integers(cfg.site_years_min, cfg.site_years_max + 1, cells.size),
                         cfg.n_years)
    first = cfg.start_year + rng.integers(0, cfg.n_years - n_years + 1)
    ids: list[str] = []
    for cell in cells:
        rname = names.get(int(region.ravel()[cell]), "")
        country = rng.choice(_COUNTRIES.get(rname, ("XX",)))
        while True:
            code = (rng.choice(list(string.ascii_uppercase))
                    + "".join(rng.choice(list(string.ascii_lowercase), 2)))
            sid = f"{country}-{code}"
            if sid not in ids:
                break
        ids.append(sid)
    return pd.DataFrame({
        "SITE_ID": ids, "lat": np.round(lat, 4), "lon": np.round(lon, 4),
        "igbp": [IGBP_CLASSES[c] for c in codes.ravel()[cells]], "cell": cells,
        "region": [names.get(int(r), "none") for r in region.ravel()[cells]],
        "first_year": first, "last_year": first + n_years - 1,
        "elev": np.round(rng.uniform(10, 900, cells.size)).astype(int),
        "utc_offset": np.round(lon / 15.0).astype(int),
    })


def site_file_name(site: str, first_year: int, last_year: int) -> str:
    """FLUXNET2015 FULLSET daily file name of a site."""
    return f"FLX_{site}_FLUXNET2015_FULLSET_DD_{first_year}-{last_year}_1-4.csv"


def _gaps(n: int, years: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n,) of long record gaps: about 1.5 runs a year of ~20 days."""
    gap = np.zeros(n, dtype=bool)
    for _ in range(rng.poisson(1.5 * years)):
        start = rng.integers(0, n)
        gap[start:start + rng.geometric(1 / 20)] = True
    return gap


def site_frame(series: dict[str, np.ndarray], dates: np.ndarray, site: pd.Series,
               cfg: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One site's FULLSET DD table with noise, QC fractions and -9999 gaps.

    Parameters
    ----------
    series
        Daily values at the site's cell over the site's years: ``ta`` [degC], ``vpd`` [hPa],
        ``sw_in`` [W m-2], ``precip`` [mm d-1], ``nee``, ``gpp``, ``reco`` [gC m-2 d-1].
    dates
        The days (datetime64[D]) of ``series``.
    """
    n = dates.size
    doy = (dates - dates.astype("datetime64[Y]")).astype(int) + 1
    ta = series["ta"] + rng.normal(0, 0.3) + rng.normal(0, 0.4, n)
    cold = series["ta"] < 0
    qc = rng.beta(8, 2, n) * np.where(cold, 0.6, 1.0)
    sd = (cfg.nee_noise_a + cfg.nee_noise_b * np.abs(series["nee"])) * (2.0 - qc)
    nee = series["nee"] + sd * rng.standard_normal(n)
    gpp_nt = series["gpp"] * (1 + rng.normal(0, 0.05, n)) + rng.normal(0, 0.1, n)
    gpp_dt = series["gpp"] * (1 + rng.normal(0, 0.08, n)) + rng.normal(0, 0.15, n)
    meteo_qc = np.round(np.clip(rng.beta(20, 1, (4, n)), 0, 1), 3)
    gap = _gaps(n, site["last_year"] - site["first_year"] + 1, rng)
    df = pd.DataFrame({
        "TIMESTAMP": pd.DatetimeIndex(dates).strftime("%Y%m%d"),
        "TA_F": ta, "TA_F_QC": meteo_qc[0],
        "SW_IN_POT": sw_in_pot_daily(site["lat"], doy),
        "SW_IN_F": np.maximum(series["sw_in"] * (1 + rng.normal(0.02, 0.04, n)), 0.0),
        "SW_IN_F_QC": meteo_qc[1],
        "VPD_F": np.maximum(series["vpd"] * (1 + rng.normal(0, 0.08, n)), 0.0),
        "VPD_F_QC": meteo_qc[2],
        "PA_F": np.full(n, 101.325 * np.exp(-site["elev"] / 8434.0)) + rng.normal(0, 0.4, n),
        "PA_F_QC": np.ones(n),
        "P_F": series["precip"] * np.exp(rng.normal(0, 0.3, n)),
        "P_F_QC": meteo_qc[3],
        "WS_F": rng.gamma(4.0, 0.7, n), "WS_F_QC": np.ones(n),
        "NEE_CUT_REF": nee + rng.normal(0, 0.1, n) * sd, "NEE_CUT_REF_QC": qc,
        "NEE_VUT_REF": nee, "NEE_VUT_REF_QC": qc,
        "NEE_VUT_REF_RANDUNC": sd,
        "NEE_VUT_REF_JOINTUNC": np.sqrt(sd**2 + (0.1 * series["nee"]) ** 2),
        "NEE_VUT_USTAR50": nee + rng.normal(0, 0.05, n) * sd, "NEE_VUT_USTAR50_QC": qc,
        "RECO_NT_VUT_REF": gpp_nt + nee, "GPP_NT_VUT_REF": gpp_nt,
        "RECO_DT_VUT_REF": gpp_dt + nee, "GPP_DT_VUT_REF": gpp_dt,
    })
    flux_cols = [c for c in df.columns if c.startswith(("NEE", "GPP", "RECO"))]
    df.loc[gap, flux_cols] = np.nan
    for col in df.columns[1:]:
        df[col] = df[col].astype(float).round(5)
    return df.fillna(MISSING_FLUXNET)


def write_site_file(path: Path, df: pd.DataFrame) -> Path:
    """Write one site table like FLUXNET: one header row, -9999 for missing, no index."""
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return path


def write_bif(path: Path, sites: pd.DataFrame) -> Path:
    """Site metadata in the BIF long format (``;``-separated like FLX_AA-Flx_BIF_LATEST.csv)."""
    rows = []
    for k, s in enumerate(sites.itertuples(index=False)):
        gid = 10_000 + 10 * k
        rows += [
            (s.SITE_ID, gid, "GRP_LOCATION", "LOCATION_LAT", f"{s.lat:.4f}"),
            (s.SITE_ID, gid, "GRP_LOCATION", "LOCATION_LONG", f"{s.lon:.4f}"),
            (s.SITE_ID, gid, "GRP_LOCATION", "LOCATION_ELEV", str(s.elev)),
            (s.SITE_ID, gid + 1, "GRP_IGBP", "IGBP", s.igbp),
            (s.SITE_ID, gid + 2, "GRP_UTC_OFFSET", "UTC_OFFSET", str(s.utc_offset)),
            (s.SITE_ID, gid + 3, "GRP_SITE_NAME", "SITE_NAME", f"Twin world site {s.SITE_ID}"),
        ]
    df = pd.DataFrame(rows, columns=["SITE_ID", "GROUP_ID", "VARIABLE_GROUP", "VARIABLE",
                                     "DATAVALUE"])
    df.to_csv(path, sep=";", index=False, lineterminator="\n")
    return path
