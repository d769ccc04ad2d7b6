"""The one table of canonical variable names, units and CF names.

Readers map source names into this vocabulary on entry; nothing downstream knows that ERA5 calls
air temperature ``t2m`` or FLUXNET ``TA_F``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike

import numpy as np

from fluxbridge.errors import InputError


@dataclass(frozen=True)
class Variable:
    """A canonical variable: name, unit (UDUNITS string), long name, optional CF name, and
    the range of physically plausible values of a daily (or longer) mean in ``units``."""

    name: str
    units: str
    long_name: str
    standard_name: str | None = None
    valid_range: tuple[float, float] | None = None


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        Variable(
            "nee",
            "g m-2 d-1",
            "net ecosystem exchange of carbon, positive to the atmosphere",
            "surface_upward_mole_flux_of_carbon_dioxide",
            (-50.0, 50.0),
        ),
        Variable("nee_weight", "1", "quality weight of nee (fraction of measured or good data)"),
        Variable("gpp", "g m-2 d-1", "gross primary production of carbon"),
        Variable("reco", "g m-2 d-1", "ecosystem respiration of carbon"),
        Variable("ta", "degC", "air temperature", "air_temperature", (-93.15, 66.85)),
        Variable("vpd", "hPa", "vapour pressure deficit"),
        Variable(
            "sw_in",
            "W m-2",
            "incoming shortwave radiation",
            "surface_downwelling_shortwave_flux_in_air",
            (0.0, 500.0),
        ),
        Variable("sw_in_pot", "W m-2", "potential (top-of-atmosphere) shortwave radiation"),
        Variable("precip", "mm d-1", "precipitation", "precipitation_amount", (0.0, 2000.0)),
        Variable("ndvi", "1", "normalized difference vegetation index"),
        Variable("ndvi_max", "1", "annual maximum of the normalized difference vegetation "
                 "index"),
        Variable("ndvi_min", "1", "annual minimum of the normalized difference vegetation "
                 "index"),
        Variable("c4_fraction", "1", "fraction of the vegetation using the C4 photosynthetic "
                 "pathway"),
        Variable("evi", "1", "enhanced vegetation index"),
        Variable("nirv", "1", "near-infrared reflectance of vegetation"),
        Variable("lst_day", "K", "daytime land surface temperature"),
        Variable("lst_night", "K", "night-time land surface temperature"),
        Variable("fpar", "1", "fraction of absorbed photosynthetically active radiation"),
        Variable("lai", "m2 m-2", "leaf area index"),
        Variable("land_cover", "1", "IGBP land cover class code"),
        Variable("climate_zone", "1", "Köppen-Geiger main climate group code (1 A ... 5 E)"),
        Variable("nee_tgc", "Tg month-1", "regional total of net ecosystem exchange of carbon "
                 "per month, positive to the atmosphere"),
        Variable("nee_pgc", "Pg yr-1", "global land net ecosystem exchange of carbon per year, "
                 "positive to the atmosphere"),
        Variable("cell_area", "m2", "grid cell area", "cell_area"),
        Variable("land_fraction", "1", "land area fraction", "land_area_fraction"),
    ]
}

IGBP_CLASSES: tuple[str, ...] = (
    "WAT", "ENF", "EBF", "DNF", "DBF", "MF", "CSH", "OSH", "WSA",
    "SAV", "GRA", "WET", "CRO", "URB", "CVM", "SNO", "BSV",
)  # fmt: skip
"""IGBP classes in the order of their MODIS MCD12 codes 0..16 (0 = water)."""

IGBP_CODE: dict[str, int] = {name: code for code, name in enumerate(IGBP_CLASSES)}


def igbp_codes(classes: Iterable[object], where: str | PathLike[str] | None = None
               ) -> np.ndarray:
    """MODIS codes (0..16) of IGBP class names.

    Parameters
    ----------
    classes
        IGBP class names (e.g. ``"ENF"``); case and surrounding blanks are ignored.
    where
        The file or dataset the names come from, named in the error.

    Returns
    -------
    np.ndarray
        int64 code of each class, in the order of :data:`IGBP_CLASSES`.

    Raises
    ------
    InputError
        For a name that is not an IGBP class, naming it.
    """
    codes = []
    for c in classes:
        name = str(c).strip().upper()
        if name not in IGBP_CODE:
            raise InputError(f"unknown IGBP class {c!r}", path=where, variable="igbp",
                             expected="one of " + " ".join(IGBP_CLASSES))
        codes.append(IGBP_CODE[name])
    return np.asarray(codes, dtype=np.int64)


def attrs(name: str) -> dict[str, str]:
    """CF attributes (units, long_name, standard_name) of a canonical variable.

    Parameters
    ----------
    name
        Canonical variable name, a key of :data:`VARIABLES`.

    Returns
    -------
    dict
        Attributes to set on a DataArray of that variable.
    """
    var = VARIABLES[name]
    out = {"units": var.units, "long_name": var.long_name}
    if var.standard_name:
        out["standard_name"] = var.standard_name
    return out
