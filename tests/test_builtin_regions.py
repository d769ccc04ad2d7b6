"""Built-in region sets: named, non-empty, covering land, and known places inside them."""

import pytest

from fluxbridge.errors import InputError
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
