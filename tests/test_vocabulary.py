"""The canonical vocabulary: attributes of variables and the IGBP class codes."""

from __future__ import annotations

import numpy as np
import pytest

from fluxbridge.errors import InputError
from fluxbridge.vocabulary import attrs, igbp_codes


def test_igbp_codes_are_the_modis_codes():
    # MODIS MCD12 IGBP legend: 0 water, 1 ENF, 4 DBF, 10 grassland, 12 cropland, 16 barren
    codes = igbp_codes(["WAT", "ENF", "dbf", " GRA ", "CRO", "BSV"])
    np.testing.assert_array_equal(codes, [0, 1, 4, 10, 12, 16])
    assert codes.dtype == np.int64
    assert igbp_codes([]).shape == (0,)


def test_unknown_igbp_class_is_refused_by_name():
    with pytest.raises(InputError, match="'XYZ'") as err:
        igbp_codes(["ENF", "XYZ"], "sites.csv")
    assert "sites.csv" in str(err.value)
    with pytest.raises(InputError, match="UNK"):
        igbp_codes(["UNK"])  # a site table's placeholder is not a class either


def test_attrs_of_totals_name_their_units():
    assert attrs("nee_tgc")["units"] == "Tg month-1"
    assert attrs("nee_pgc")["units"] == "Pg yr-1"
    assert attrs("nee")["standard_name"] == "surface_upward_mole_flux_of_carbon_dioxide"
