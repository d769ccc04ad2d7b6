"""The climatological year: sites and inversion targets reduced to mean seasonal cycles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from band_members import band_member

from fluxbridge.climatology import (
    CLIMATOLOGY_YEAR,
    climatological_times,
    is_climatology,
    months_to_times,
    sites_seasonal_cycle,
    targets_seasonal_cycle,
)
from fluxbridge.errors import InputError
from fluxbridge.io.targets import ensemble_targets
from fluxbridge.operators.operator import regional_totals
from fluxbridge.regions import builtin_regions


def _sites(years: range) -> xr.Dataset:
    time = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-01", freq="MS")
    # site A: NEE = month + 10 * (year - first year); site B: -month, never measured in June
    a = time.month + 10.0 * (time.year - years[0])
    b = np.where(time.month == 6, np.nan, -time.month.to_numpy(float))
    nee = np.stack([a, b])
    return xr.Dataset(
        {"nee": (("site", "time"), nee, {"units": "g m-2 d-1"}),
         "nee_weight": (("site", "time"), np.isfinite(nee) * 1.0, {"units": "1"}),
         "ta": (("site", "time"), nee * 0 + 5.0, {"units": "degC"})},
        coords={"site": ["A", "B"], "time": time, "lat": ("site", [50.0, -10.0]),
                "lon": ("site", [10.0, 20.0]), "igbp": ("site", ["ENF", "EBF"])},
        attrs={"time_step": "MM"})


def test_sites_become_their_mean_seasonal_cycle():
    out = sites_seasonal_cycle(_sites(range(2003, 2006)))
    assert list(out["time"].values) == list(climatological_times().values)
    assert out["nee"].dims == ("site", "time") and is_climatology(out)
    # A: the mean over 2003..2005 of month + 0, 10, 20 = month + 10
    np.testing.assert_allclose(out["nee"].sel(site="A").values, np.arange(1, 13) + 10.0)
    b = out["nee"].sel(site="B").values
    assert np.isnan(b[5]) and b[0] == -1.0
    assert int(out["n_years"].sel(site="A", time=f"{CLIMATOLOGY_YEAR}-03-01")) == 3
    assert int(out["n_years"].sel(site="B", time=f"{CLIMATOLOGY_YEAR}-06-01")) == 0
    assert out.attrs["climatology_period"] == "2003-2005"
    assert out["nee"].attrs["units"] == "g m-2 d-1" and out["lat"].values[1] == -10.0


def _targets() -> xr.Dataset:
    members = [band_member("a", "2000-01-01", 60, 0.0), band_member("b", "2001-01-01", 36, 2.0),
               band_member("c", "2001-01-01", 48, 4.0)]
    return ensemble_targets(members, {1: "North", 2: "Tropical", 3: "South"})


def test_targets_seasonal_cycle_over_the_years_every_member_covers():
    out = targets_seasonal_cycle(_targets())  # shared full years: 2001..2003
    assert out.attrs["climatology_period"] == "2001-2003"
    assert out["nee"].dims == ("member", "region", "time")
    # member mean over 2001..2003 of month + year + offset = month + 2002 + offset
    months = np.arange(1, 13)
    np.testing.assert_allclose(out["nee"].sel(member="b", region=2).values, months + 2004.0)
    np.testing.assert_allclose(out["nee_mean"].sel(region=1).values, months + 2004.0)
    np.testing.assert_allclose(out["nee_spread"].sel(region=3).values, 2.0)  # sd of 0, 2, 4


def test_targets_seasonal_cycle_over_given_years_and_refusal():
    out = targets_seasonal_cycle(_targets(), years=(2000, 2000))  # only member a has 2000
    np.testing.assert_allclose(out["nee"].sel(member="a", region=1).values,
                               np.arange(1, 13) + 2000.0)
    assert out["nee_spread"].isnull().all()
    with pytest.raises(InputError, match="no month in 1990-1991"):
        targets_seasonal_cycle(_targets(), years=(1990, 1991))


def test_months_to_times_needs_every_month():
    ds = xr.Dataset({"ta": ("month", np.arange(11.0))}, coords={"month": np.arange(1, 12)})
    with pytest.raises(InputError, match="12 calendar months"):
        months_to_times(ds, "1981-2010")


def test_constant_flux_over_a_band_integrates_to_flux_area_days():
    """A monthly flux c [g m-2 d-1] on the climatological year's months gives, for each
    latitude band, c x the band's land area x the days of the month, in Tg."""
    regions = builtin_regions("latitude_bands", 2.5)
    times = climatological_times()
    field = xr.DataArray(np.full((12, regions.sizes["lat"], regions.sizes["lon"]), -1.5),
                         dims=("time", "lat", "lon"),
                         coords={"time": times, "lat": regions["lat"], "lon": regions["lon"]})
    totals = regional_totals(field, regions)
    land = (regions["cell_area"] * regions["land_fraction"]).values
    lat = regions["lat"].values[:, None] * np.ones_like(land)
    for rid, inside in ((1, lat > 30), (2, (lat >= -30) & (lat <= 30)), (3, lat < -30)):
        expected = -1.5 * land[inside].sum() * times.days_in_month.to_numpy(float) / 1e12
        np.testing.assert_allclose(totals.sel(region=rid).values, expected, rtol=1e-9)


def test_month_of_year_corrections_apply_to_every_year(tmp_path):
    rows = ["region,time,river_tgc", *(f"{r},--{m:02d},{-m}" for r in ("North", "South")
                                       for m in range(1, 13))]
    (path := tmp_path / "river.csv").write_text("\n".join(rows) + "\n")
    members = [band_member(n, "2000-01-01", 24, o) for n, o in (("a", 0.0), ("b", 1.0))]
    targets = ensemble_targets(members, {1: "North", 2: "Tropical", 3: "South"},
                               corrections=path)
    months = np.tile(np.arange(1, 13), 2).astype(float)
    np.testing.assert_allclose(targets["correction"].sel(region=1).values, -months)
    np.testing.assert_allclose(targets["correction"].sel(region=2).values, 0.0)  # not listed
    # NEE = NBE - term: the river term (negative) weakens the inversions' uptake
    np.testing.assert_allclose((targets["nee"] - targets["nbe"]).sel(member="a", region=3),
                               months)
    (bad := tmp_path / "mixed.csv").write_text("region,time,river_tgc\nNorth,--01,1\n"
                                               "North,2000-02,1\n")
    with pytest.raises(InputError, match="--MM"):
        ensemble_targets(members, {1: "North", 2: "Tropical", 3: "South"}, corrections=bad)
