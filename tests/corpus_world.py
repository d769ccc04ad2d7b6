"""The bad-input corpus's tools: a tiny twin world, edits of its files, and the check that
``fluxbridge validate`` refuses an edited copy in one line naming file, variable, found and
expected."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxbridge.cli import main

TINY_WORLD = {"resolution_deg": 10.0, "n_years": 2, "n_sites": 12, "n_members": 3,
              "site_years_min": 1, "site_years_max": 2}

Case = Callable[[Path, dict], tuple[str | list[str] | None, str, str]]
"""Corrupts a copy of the world; returns the file(s) (relative) and variable the message must
name, and a fact of the corrupted input it must state (what was found)."""


def make_world(root: Path) -> Path:
    """The corpus's twin world in ``root / "world"``."""
    from fluxbridge.synthetic import synthesize

    synthesize(root / "world", config=dict(TINY_WORLD), seed=5, progress=False)
    return root / "world"


def edit_nc(path: Path, edit: Callable[[xr.Dataset], xr.Dataset | None]) -> None:
    """Apply ``edit`` (in place, or returning the new dataset) to a NetCDF file."""
    ds = xr.load_dataset(path)
    ds = edit(ds) or ds
    path.unlink()
    ds.to_netcdf(path)


def edit_csv(path: Path, edit: Callable[[pd.DataFrame], None], **read) -> None:
    """Apply ``edit`` (in place) to a CSV file read with ``read`` (``sep`` kept on writing)."""
    df = pd.read_csv(path, **read)
    edit(df)
    df.to_csv(path, index=False, sep=read.get("sep", ","))


def scale(var: str, factor: float, shift: float = 0.0) -> Callable[[xr.Dataset], None]:
    """An edit multiplying ``var`` by ``factor`` and adding ``shift``, attributes kept."""
    def edit(ds: xr.Dataset) -> None:
        attrs = ds[var].attrs
        ds[var] = ds[var] * factor + shift
        ds[var].attrs = attrs
    return edit


def assert_refused_in_one_line(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                               corrupt: Case, scheduler: str = "synchronous") -> str:
    """Corrupt a copy of ``world`` and check that ``fluxbridge validate`` refuses it with
    exit status 2 and one line naming the file, the variable, what was found and what was
    expected, before any run directory exists; returns the line."""
    copy = tmp_path / "world"
    shutil.copytree(world, copy, symlinks=True)
    files = json.loads((copy / "manifest.json").read_text())["files"]
    relative, variable, found = corrupt(copy, files)
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump({"name": "corpus", "inputs": str(copy / "inputs.yaml"),
                                      "upscaling": {"scheduler": scheduler}}))
    assert main(["-q", "validate", str(config)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().split("\n")
    assert len(lines) == 1, err  # one problem, one line
    line = lines[0]
    assert line.startswith("fluxbridge: ")
    names = relative if isinstance(relative, list) else [relative] if relative else []
    assert not names or any(str((copy / n).absolute()) in line for n in names), line
    assert re.search(rf"variable '[^']*{re.escape(variable)}", line), line
    assert found in line and "(expected " in line, line
    assert not (tmp_path / "runs").exists()
    return line
