"""Site metadata tables: the real FLUXNET2015 BIF and a wider site list."""

from __future__ import annotations

import pandas as pd
import pytest

from fluxbridge.errors import InputError
from fluxbridge.io.sitemeta import read_site_metadata


def test_site_metadata_bif_and_fallback(real_data):
    sites = real_data / "sites"
    bif = read_site_metadata(sites / "FLX_AA-Flx_BIF_LATEST.csv")
    raw = pd.read_csv(sites / "FLX_AA-Flx_BIF_LATEST.csv", sep=";", encoding="latin-1",
                      dtype=str)
    assert len(bif) == raw["SITE_ID"].nunique() == 212
    lat = raw[(raw["SITE_ID"] == "CH-Dav") & (raw["VARIABLE"] == "LOCATION_LAT")]
    assert bif.loc["CH-Dav", "lat"] == pytest.approx(float(lat["DATAVALUE"].iloc[0]))
    merged = read_site_metadata(sites / "FLX_AA-Flx_BIF_LATEST.csv",
                                sites / "fluxnet2015_site_list.csv")
    assert "GL-ZaF" not in bif.index and "GL-ZaF" in merged.index
    assert merged.attrs["origin"]["GL-ZaF"].endswith("fluxnet2015_site_list.csv")
    assert merged.attrs["origin"]["CH-Dav"].endswith("FLX_AA-Flx_BIF_LATEST.csv")


def test_site_metadata_bad(tmp_path):
    (bad := tmp_path / "sites.csv").write_text("site,lat,lon,igbp\nXX-Abc,95,10,ENF\n")
    with pytest.raises(InputError) as err:
        read_site_metadata(bad)
    assert str(bad) in str(err.value) and "lat" in str(err.value)
    (nolon := tmp_path / "nolon.csv").write_text("site,lat,igbp\nXX-Abc,45,ENF\n")
    with pytest.raises(InputError, match="lon"):
        read_site_metadata(nolon)
