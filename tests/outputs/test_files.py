"""Atomic writing and provenance of outputs."""

import json

import pandas as pd
import pytest
import xarray as xr

from fluxbridge.outputs.files import atomic_path, provenance_attrs, write_csv, write_netcdf


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.nc"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_successful_write_replaces_the_old_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    write_csv(pd.DataFrame({"a": [1, 2]}), target)
    assert pd.read_csv(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_directory_outputs_are_atomic_too(tmp_path):
    target = tmp_path / "store.zarr"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "chunk").write_text("x")
        assert not target.exists()
    assert (target / "chunk").read_text() == "x"


def test_provenance_records_inputs_config_and_version(tmp_path):
    data = tmp_path / "input.csv"
    data.write_text("a\n1\n")
    attrs = provenance_attrs([data, tmp_path / "missing.nc"], config={"seed": 3},
                             corrections=[{"name": "fire", "sign": -1}])
    files = json.loads(attrs["input_files"])
    assert files[0].startswith(str(data)) and "sha256:" in files[0]
    assert files[1] == str(tmp_path / "missing.nc")
    assert json.loads(attrs["fluxbridge_config"]) == {"seed": 3}
    assert json.loads(attrs["corrections"])[0]["sign"] == -1
    ds = xr.Dataset({"x": ("t", [1.0])}, attrs=attrs)
    write_netcdf(ds, tmp_path / "o.nc")
    with xr.open_dataset(tmp_path / "o.nc") as back:
        assert back.attrs["fluxbridge_version"] == attrs["fluxbridge_version"]
