"""What killed or damaged runs leave in a run directory: temporaries of interrupted writes are
removed when the next run starts, unreadable training checkpoints discarded with a warning."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from fluxbridge.config import parse_config
from fluxbridge.rundir import prepare_run


def _run_dir(tmp_path: Path) -> Path:
    """A run directory a killed run left (its record says it was running)."""
    out = tmp_path / "run"
    (out / "cv" / "checkpoints" / "dual" / "fold0").mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"status": "running", "steps": {},
                                              "products": ["run.json", "cv", "upscaled"]}))
    return out


def _prepare(out: Path) -> dict:
    state = prepare_run(parse_config({"name": "leftovers", "out_dir": str(out)}))
    state.release()
    return json.loads((out / "run.json").read_text())


def test_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    out = _run_dir(tmp_path)
    killed = [out / "cv" / ".predictions.csv.4242.tmp", out / ".run.json.17.tmp"]
    for path in killed:
        path.write_text("half a file")
    store = out / "upscaled" / "dual" / ".grid.zarr.99.tmp"  # an interrupted Zarr store
    (store / "nee").mkdir(parents=True)
    (store / "nee" / "0.0").write_bytes(b"x")
    kept = [out / "cv" / ".notes.tmp", out / "cv" / "predictions.csv",
            tmp_path / ".beside.csv.4242.tmp"]  # not fluxbridge's names, or outside the run
    for path in kept:
        path.write_text("keep me")
    _prepare(out)
    assert not any(p.exists() for p in [*killed, store])
    assert all(p.read_text() == "keep me" for p in kept)


def test_a_folder_without_a_run_record_is_not_searched(tmp_path):
    out = tmp_path / "fresh"
    out.mkdir()
    _prepare(out)  # an empty folder becomes a run directory
    assert sorted(p.name for p in out.iterdir()) == ["config.resolved.yaml", "run.json"]


@pytest.mark.parametrize("damage", ["truncated", "text", "foreign"])
def test_unreadable_checkpoint_is_discarded_with_a_warning(tmp_path, caplog, damage):
    out = _run_dir(tmp_path)
    good = out / "cv" / "checkpoints" / "site_only" / "checkpoint.pt"
    good.parent.mkdir(parents=True)
    torch.save({"epoch": 3, "weights": torch.zeros(4)}, good)
    bad = out / "cv" / "checkpoints" / "dual" / "fold0" / "checkpoint.pt"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[:200])
    elif damage == "text":
        bad.write_text("not a checkpoint")
    else:
        torch.save({"epoch": 3, "hook": Fraction(1, 3)}, bad)
    with caplog.at_level(logging.WARNING, logger="fluxbridge"):
        record = _prepare(out)
    assert not bad.exists() and good.exists()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and str(bad) in lines[0] and "trains again" in lines[0]
    assert "weights_only" not in lines[0] and "\n" not in lines[0]
    assert len(record["discarded_checkpoints"]) == 1
    assert str(bad) in record["discarded_checkpoints"][0]
