"""The real inversion files shown as the top-down reference for latitude bands."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fluxbridge.evaluation.figures import inversion_bands
from fluxbridge.evaluation.sections import inversion_section


def _reader(name: str):
    try:
        module = importlib.import_module("fluxbridge.io.inversion_bands")
    except ImportError:
        pytest.skip("fluxbridge.io.inversions (the inversion readers) is not available yet")
    if not hasattr(module, name):
        pytest.skip(f"fluxbridge.io.inversions.{name} is not available yet")
    return getattr(module, name)


@pytest.mark.parametrize(("reader", "folder", "pattern", "n_members"), [
    ("read_zonal_inversions", "zonal", "*_fluxes_za_ts_monthly.nc", 8),
    ("read_gcb_regional", "gcb2018_regional", "*_month.nc", 6),
])
def test_real_inversions_as_band_ensemble(real_data, reader, folder, pattern, n_members):
    paths = sorted((real_data / "inversions" / folder).glob(pattern))
    targets = _reader(reader)(paths)
    assert targets.sizes["member"] == n_members
    spread = targets["nee_spread"].values
    assert np.nanmean(spread) > 0  # the members disagree
    fig = inversion_bands(targets)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == targets.sizes["region"]
    section = inversion_section(targets)
    assert f"{n_members} inversion members" in section.text
