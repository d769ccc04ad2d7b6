"""Measured properties of a twin world, stored in its manifest (and the variables table)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fluxbridge.constants import G_PER_PG
from fluxbridge.synthetic.geography import Geography
from fluxbridge.vocabulary import IGBP_CLASSES

VARIABLES: dict[str, dict[str, str]] = {
    "sites": {"NEE_VUT_REF": "gC m-2 d-1", "NEE_VUT_REF_QC": "1 (fraction)", "TA_F": "degC",
              "SW_IN_F": "W m-2", "SW_IN_POT": "W m-2", "VPD_F": "hPa", "P_F": "mm d-1",
              "GPP_NT_VUT_REF": "gC m-2 d-1", "RECO_NT_VUT_REF": "gC m-2 d-1",
              "missing": "-9999"},
    "meteorology": {"t2m": "K", "d2m": "K", "ssrd": "J m**-2 (per day)", "tp": "m (per day)"},
    "remote_sensing": {"NDVI": "1 (int16 x 0.0001)", "EVI": "1 (int16 x 0.0001)",
                       "NIR_reflectance": "1 (int16 x 0.0001)",
                       "LST_Day_CMG": "K (uint16 x 0.02)", "LST_Night_CMG": "K (uint16 x 0.02)",
                       "Majority_Land_Cover_Type_1": "IGBP code 0..16"},
    "inversions": {"land_flux_only_fossil_cement_adjusted": "PgC m-2 yr-1 (per m2 of cell)",
                   "bio_flux_opt": "mol m-2 s-1 (per m2 of cell)",
                   "fire_flux_imp": "mol m-2 s-1 (per m2 of cell)"},
    "corrections": {"fire_tgc": "TgC month-1", "river_tgc": "TgC month-1",
                    "trade_tgc": "TgC month-1"},
    "regions": {"region": "1 (CF flags)", "cell_area": "m2", "land_fraction": "1"},
    "truth_grid": {"nee": "g m-2 d-1 (carbon, per m2 of land)", "gpp": "g m-2 d-1 (monthly)",
                   "reco": "g m-2 d-1 (monthly)"},
    "truth_regional": {"nee_tgc": "TgC month-1", "gpp_tgc": "TgC month-1",
                       "nbe_tgc": "TgC month-1"},
}


def site_bias_proxy(geo: Geography, sites: pd.DataFrame, mean_nee: np.ndarray,
                    legacy: np.ndarray) -> dict[str, Any]:
    """Mean true NEE at tower cells against the land-area mean, by region [gC m-2 d-1].

    A site-only model inherits the towers' view; extrapolating each region's tower mean over
    the region's land gives a proxy of its global total [PgC yr-1].
    """
    region = geo.regions["region"].values
    area = geo.land_area
    flat_nee = mean_nee.ravel()
    by_region = {}
    proxy_total = 0.0
    legacy_bias = 0.0
    overall_site_legacy = float(np.nanmean(legacy.ravel()[sites["cell"].to_numpy()]))
    overall_site_mean = float(np.nanmean(flat_nee[sites["cell"].to_numpy()]))
    for rid, name in geo.names.items():
        inside = (region == rid) & np.isfinite(mean_nee)
        if not inside.any():
            continue
        land_mean = float(np.average(mean_nee[inside], weights=area[inside]))
        cells = sites.loc[sites["region"] == name, "cell"].to_numpy()
        site_mean = float(np.nanmean(flat_nee[cells])) if cells.size else None
        by_region[name] = {
            "n_sites": int(cells.size), "land_mean_nee": round(land_mean, 4),
            "site_mean_nee": None if site_mean is None else round(site_mean, 4),
            "site_mean_legacy": None if not cells.size
            else round(float(np.nanmean(legacy.ravel()[cells])), 4),
            "land_mean_legacy": round(float(np.average(np.nan_to_num(legacy[inside]),
                                                       weights=area[inside])), 4),
        }
        use = overall_site_mean if site_mean is None else site_mean
        proxy_total += use * area[inside].sum() * 365.25 / G_PER_PG
        site_legacy = by_region[name]["site_mean_legacy"]
        use = overall_site_legacy if site_legacy is None else site_legacy
        legacy_bias += (use - by_region[name]["land_mean_legacy"]) * area[inside].sum() \
            * 365.25 / G_PER_PG
    valid = np.isfinite(mean_nee)
    return {
        "units": "gC m-2 d-1 (period mean); totals PgC yr-1",
        "by_region": by_region,
        "site_mean_nee": round(overall_site_mean, 4),
        "land_mean_nee": round(float(np.average(mean_nee[valid], weights=area[valid])), 4),
        "n_regions_site_more_negative": int(sum(
            1 for v in by_region.values()
            if v["site_mean_nee"] is not None and v["site_mean_nee"] < v["land_mean_nee"])),
        "n_regions_with_sites": int(sum(1 for v in by_region.values() if v["n_sites"])),
        "site_extrapolated_global_pgc_yr": round(proxy_total, 3),
        "legacy_blind_bias_pgc_yr": round(legacy_bias, 3),
        "note": "site_extrapolated: each region's tower-cell mean NEE times its land area; "
                "legacy_blind_bias: the global error of a model that learned everything but "
                "the hidden legacy (tower-cell mean legacy minus land mean, times land area)",
    }


def ensemble_coverage(truth: np.ndarray, member_nee: np.ndarray) -> dict[str, float]:
    """Fraction of region-months whose truth lies within mean ± 1 and ± 2 member spread."""
    mean = member_nee.mean(axis=0)
    spread = member_nee.std(axis=0, ddof=1)
    err = np.abs(truth - mean)
    return {"within_1_spread": round(float(np.mean(err <= spread)), 4),
            "within_2_spread": round(float(np.mean(err <= 2 * spread)), 4),
            "median_spread_tgc": round(float(np.median(spread)), 3),
            "rmse_mean_tgc": round(float(np.sqrt(np.mean((truth - mean) ** 2))), 3)}


def world_properties(*, geo: Geography, codes: np.ndarray, legacy: np.ndarray,
                     sites: pd.DataFrame, annual: dict[str, list[float]],
                     truth_regional: pd.DataFrame, corrections: pd.DataFrame,
                     member_nee: np.ndarray, mean_nee: np.ndarray, n_years: int
                     ) -> dict[str, Any]:
    """All measured properties of a world (numbers for the manifest).

    Parameters
    ----------
    member_nee
        Corrected member totals NBE − fire − river − trade (member, region, month) [Tg month-1],
        regions in the order of their ids.
    """
    names = [geo.names[i] for i in sorted(geo.names)]
    truth = truth_regional.pivot(index="region", columns="time", values="nee_tgc").loc[names]
    lateral = {k: float(corrections[f"{k}_tgc"].sum() / 1e3 / n_years)
               for k in ("fire", "river", "trade")}
    nbe_global = float(truth_regional["nbe_tgc"].sum() / 1e3 / n_years)
    present, counts = np.unique(codes[geo.land], return_counts=True)
    return {
        "n_regions": len(names),
        "global_pgc_yr": {
            "gpp": round(float(np.mean(annual["gpp"])), 3),
            "reco": round(float(np.mean(annual["reco"])), 3),
            "nee": round(float(np.mean(annual["nee"])), 3),
            "legacy": round(float(np.mean(annual["legacy"])), 3),
            "nbe_regions": round(nbe_global, 3),
            "nee_regions": round(float(truth_regional["nee_tgc"].sum() / 1e3 / n_years), 3),
            **{k: round(v, 3) for k, v in lateral.items()},
            "note": "gpp/reco/nee/legacy over all land; *_regions and lateral terms over the "
                    "regions (no Greenland, Antarctica)",
        },
        "annual_pgc": {k: [round(x, 3) for x in v] for k, v in annual.items()},
        "land_cover_cells": {IGBP_CLASSES[c]: int(n) for c, n in zip(present, counts, strict=True)},
        "site_bias_proxy": site_bias_proxy(geo, sites, mean_nee, legacy),
        "sites_by_region": {k: int(v) for k, v in sites["region"].value_counts().sort_index()
                            .items()},
        "inversion_coverage": ensemble_coverage(truth.to_numpy(), member_nee),
    }
