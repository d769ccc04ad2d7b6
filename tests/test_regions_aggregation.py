"""Built-in regions and exact regional totals against analytic answers."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.aggregation import (
    global_annual_totals,
    region_weights,
    regional_totals,
    totals_frame,
)
from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.regions import builtin_regions, region_names


@pytest.fixture(scope="module")
def regions():
    return builtin_regions("transcom_like", 5.0)


def test_transcom_like_has_eleven_named_nonempty_land_regions(regions):
    names = region_names(regions)
    assert len(names) == 11
    for rid in names:
        cells = regions.region == rid
        assert int(cells.sum()) > 0, names[rid]
        assert float(regions.land_fraction.where(cells).min()) > 0
    # ocean cells belong to no region
    assert int(((regions.land_fraction == 0) & (regions.region != 0)).sum()) == 0


def test_known_places_fall_in_their_region(regions):
    names = {v: k for k, v in region_names(regions).items()}
    assert int(regions.region.sel(lat=52.5, lon=12.5)) == names["Europe"]  # Germany
    assert int(regions.region.sel(lat=-2.5, lon=-62.5)) == names["South American Tropical"]
    assert int(regions.region.sel(lat=-27.5, lon=132.5)) == names["Australia"]


def test_latitude_bands_cover_all_land():
    r = builtin_regions("latitude_bands", 5.0)
    land = r.land_fraction > 0
    assert bool((r.region.where(land) > 0).where(land, True).all())


def test_unknown_region_set():
    with pytest.raises(InputError, match="built-in region set"):
        builtin_regions("nowhere", 5.0)


def _constant_field(regions, times, value):
    shape = (times.size, regions.lat.size, regions.lon.size)
    return xr.DataArray(np.full(shape, value), dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": regions.lat, "lon": regions.lon})


def test_constant_flux_integrates_to_flux_area_days(regions):
    times = pd.date_range("2003-01-01", "2003-03-31", freq="D")
    tot = regional_totals(_constant_field(regions, times, 2.0), regions)
    w = region_weights(regions).sum(("lat", "lon"))
    days = np.array([31, 28, 31])
    expected = 2.0 * w.values[:, None] * days[None, :] / 1e12
    np.testing.assert_allclose(tot.values, expected, rtol=1e-12)
    assert tot.attrs["units"] == "Tg month-1"


def test_monthly_means_and_daily_values_agree(regions):
    days = pd.date_range("2004-01-01", "2004-12-31", freq="D")
    rng = np.random.default_rng(0)
    daily = _constant_field(regions, days, 0.0) + rng.normal(size=(days.size, 1, 1))
    monthly = daily.resample(time="MS").mean()
    np.testing.assert_allclose(regional_totals(daily, regions).values,
                               regional_totals(monthly, regions).values, rtol=1e-9)


def test_global_total_equals_sum_of_regions_plus_unassigned(regions):
    days = pd.date_range("2005-01-01", "2005-12-31", freq="D")
    field = _constant_field(regions, days, 1.0)
    glob = float(global_annual_totals(field, regions.cell_area, regions.land_fraction)[0])
    land_area = float((regions.cell_area * regions.land_fraction).sum())
    assert glob == pytest.approx(land_area * 365 / 1e15, rel=1e-12)


def test_totals_frame_layout(regions):
    times = pd.date_range("2003-01-01", "2003-02-28", freq="D")
    df = totals_frame(regional_totals(_constant_field(regions, times, 1.0), regions))
    assert list(df.columns) == ["region", "time", "nee_tgc"]
    assert set(df["time"]) == {"2003-01", "2003-02"}
    assert "Europe" in set(df["region"])


def test_regional_totals_refuse_another_grid(regions):
    other = builtin_regions("transcom_like", 10.0)
    times = pd.date_range("2003-01-01", "2003-01-31", freq="D")
    with pytest.raises(GridMismatchError):
        regional_totals(_constant_field(other, times, 1.0), regions)
