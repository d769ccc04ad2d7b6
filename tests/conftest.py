"""Shared fixtures: the location of the real data files beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Directory of the real data files (../shared/data/real); skips when absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data directory not found at {REAL_DATA}")
    return REAL_DATA
