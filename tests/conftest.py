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


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for the module (small networks: threads only add overhead)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
