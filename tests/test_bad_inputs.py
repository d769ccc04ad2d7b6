"""Bad inputs through ``fluxbridge run``: exit 2, one line naming the file and the variable,
and no output beyond the run's record (no models, grids or reports)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxbridge.cli import main

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 24, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}
FAST = {"network": {"width": 8, "depth": 1, "epochs": 1}, "validation": {"folds": 2},
        "upscaling": {"scheduler": "synchronous"}, "progress": False}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from fluxbridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("bad-inputs") / "world"
    synthesize(root, config=dict(TINY_WORLD), seed=2, progress=False)
    return root


def _first_site(files: dict) -> str:
    return files["sites"][0]


def truncated_site(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    text = p.read_text()
    p.write_text(text[: len(text) // 2 - 7])
    return _first_site(files), "truncated"


def wrong_header(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    head, body = p.read_text().split("\n", 1)
    p.write_text(head.replace("TIMESTAMP", "DATE") + "\n" + body)
    return _first_site(files), "TIMESTAMP"


def all_missing_nee(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df["NEE_VUT_REF"] = -9999
    df.to_csv(p, index=False)
    return _first_site(files), "NEE_VUT_REF"


def unordered_timestamps(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df.iloc[::-1].to_csv(p, index=False)
    return _first_site(files), "TIMESTAMP"


def duplicated_timestamps(w: Path, files: dict) -> tuple[str, str]:
    p = w / _first_site(files)
    df = pd.read_csv(p, dtype={"TIMESTAMP": str})
    df.loc[5, "TIMESTAMP"] = df.loc[4, "TIMESTAMP"]
    df.to_csv(p, index=False)
    return _first_site(files), "TIMESTAMP"


def _edit_netcdf(path: Path, edit: Callable[[xr.Dataset], xr.Dataset]) -> None:
    ds = edit(xr.load_dataset(path))
    ds.to_netcdf(path)


def wrong_units(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        ds["t2m"].attrs["units"] = "degC"
        return ds

    _edit_netcdf(w / files["meteorology"][0], edit)
    return files["meteorology"][0], "t2m"


def missing_units(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        del ds["t2m"].attrs["units"]
        return ds

    _edit_netcdf(w / files["meteorology"][0], edit)
    return files["meteorology"][0], "t2m"


def site_out_of_range(w: Path, files: dict) -> tuple[str, str]:
    p = w / files["site_table"]
    df = pd.read_csv(p, sep=";", dtype=str)
    df.loc[df.index[df["VARIABLE"] == "LOCATION_LAT"][0], "DATAVALUE"] = "95.0"
    df.to_csv(p, sep=";", index=False)
    return files["site_table"], "lat"


def mask_on_another_grid(w: Path, files: dict) -> tuple[str, str]:
    _edit_netcdf(w / files["regions"], lambda ds: ds.isel(lat=slice(0, None, 2),
                                                           lon=slice(0, None, 2)))
    return files["meteorology"][0], "lat"  # the predictors no longer match the model grid


def empty_region(w: Path, files: dict) -> tuple[str, str]:
    def edit(ds: xr.Dataset) -> xr.Dataset:
        codes = ds["region"].values
        present = np.unique(codes[codes > 0])
        ds["region"].values = np.where(codes == present[-1], 0, codes).astype(codes.dtype)
        return ds

    _edit_netcdf(w / files["regions"], edit)
    return files["regions"], "region"


CASES = [truncated_site, wrong_header, all_missing_nee, unordered_timestamps,
         duplicated_timestamps, wrong_units, missing_units, site_out_of_range,
         mask_on_another_grid, empty_region]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_bad_world_file_stops_the_run_cleanly(world, tmp_path, capsys, corrupt):
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    files = json.loads((copy / "manifest.json").read_text())["files"]
    relative, variable = corrupt(copy, files)
    out = tmp_path / "run"
    cfg = {"name": "bad", "out_dir": str(out), **FAST,
           "world": {"manifest": str(copy / "manifest.json"), "synthesize": False}}
    (config := tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))

    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("fluxbridge: error:") and "Traceback" not in err
    assert str(copy / relative) in err and variable in err, err
    assert sorted(p.name for p in out.iterdir()) == ["config.resolved.yaml", "run.json"]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and str(copy / relative) in record["error"]
