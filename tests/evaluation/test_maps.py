"""Maps of NEE on one colour scale."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fluxbridge.errors import InputError
from fluxbridge.evaluation.maps import nee_maps


def _field(scale: float) -> xr.DataArray:
    lat, lon = np.arange(75.0, -60, -30), np.arange(-165.0, 180, 30)
    data = np.ones((2, lat.size, lon.size)) * scale
    data[1] *= 3.0  # time mean 2 × scale everywhere
    return xr.DataArray(data, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon},
                        attrs={"units": "g m-2 d-1"})


def test_maps_share_one_symmetric_scale_set_by_the_largest_field():
    fig = nee_maps({"small": _field(1.0), "large": _field(-4.0)}, robust=100)
    maps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    limits = {mesh.get_clim() for ax in maps for mesh in ax.collections}
    assert len(limits) == 1  # one colour scale for every panel
    vmin, vmax = limits.pop()
    assert vmin == -vmax == pytest.approx(-8.0)  # |time mean| of the larger field


def test_colour_bar_states_units_and_sign_and_differences_use_another_map():
    fig = nee_maps({"a": _field(1.0)}, difference=True)
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert "g m-2 d-1" in bar.get_ylabel() and "source" in bar.get_ylabel()
    assert fig.axes[0].collections[0].cmap.name == "PuOr_r"


def test_a_field_without_latitude_is_refused():
    with pytest.raises(InputError, match="lat"):
        nee_maps({"bad": _field(1.0).rename(lat="y")})
    with pytest.raises(InputError, match="field"):
        nee_maps({})
