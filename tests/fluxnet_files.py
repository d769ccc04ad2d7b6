"""Small FLUXNET2015 monthly files and site lists, written the way the real ones are."""

from __future__ import annotations

import numpy as np
import pandas as pd


def write_mm_file(folder, site: str, seed: int, *, with_ws: bool = True,
                   nee_missing: tuple[int, ...] = ()) -> pd.DataFrame:
    """A small FLUXNET2015 SUBSET MM file of two years; returns what it holds (NaN = -9999)."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2004-01-01", periods=24, freq="MS")
    season = np.cos(2 * np.pi * (months.month.to_numpy() - 7) / 12)
    table = pd.DataFrame({
        "TIMESTAMP": months.strftime("%Y%m"),
        "TA_F": 8 + 10 * season + rng.normal(0, 1, 24),
        "SW_IN_POT": 280 + 150 * season,
        "SW_IN_F": 150 + 90 * season + rng.normal(0, 5, 24),
        "LW_IN_F": 300 + 30 * season + rng.normal(0, 3, 24),
        "VPD_F": 4 + 3 * season + rng.uniform(0, 1, 24),
        "PA_F": 95 + rng.normal(0, 0.3, 24),
        "P_F": rng.gamma(2, 1, 24),
        "WS_F": rng.uniform(1, 4, 24),
        "NEE_VUT_REF": -1 - 2 * season + rng.normal(0, 0.3, 24),
        "NEE_VUT_REF_QC": rng.uniform(0.8, 1, 24),
    })
    if not with_ws:
        table = table.drop(columns="WS_F")
    table.loc[list(nee_missing), ["NEE_VUT_REF", "NEE_VUT_REF_QC"]] = np.nan
    table.fillna(-9999).to_csv(folder / f"FLX_{site}_FLUXNET2015_SUBSET_MM_2004-2005_1-4.csv",
                               index=False, float_format="%.4f")
    return table


def write_site_list(path, sites: list[str]) -> None:
    rows = [f"{s},CC-BY-4.0,{45 + i},{5 + i},,{('ENF', 'GRA')[i % 2]},," for i, s in
            enumerate(sites)]
    path.write_text("id,license,latitude,longitude,altitude,IGBP,MAT,MAP\n" + "\n".join(rows)
                    + "\n")
