"""Writing outputs safely: temporary names renamed on completion, provenance attributes."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from fluxbridge import __version__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``path`` only if the block succeeds.

    Works for files and directories (Zarr stores). A failed block leaves nothing at ``path`` and
    removes the temporary.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        yield tmp
        _remove(final)
        os.replace(tmp, final)
    finally:
        _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write ``ds`` to NetCDF under a temporary name, then rename; returns the final path."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, **kwargs)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write ``df`` to CSV under a temporary name, then rename; returns the final path."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON under a temporary name, then rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return Path(path)


def code_version() -> str:
    """Package version, with the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[3]
    commit = ""
    if (root / ".git").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout.strip()
    return f"{__version__}+g{commit}" if commit else __version__


def file_digest(path: str | os.PathLike[str], limit: int = 1 << 24) -> str:
    """SHA-256 of the first ``limit`` bytes of a file (or of a directory's file list)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            h.update(str(f.relative_to(p)).encode())
        return h.hexdigest()[:16]
    with p.open("rb") as fh:
        h.update(fh.read(limit))
    return h.hexdigest()[:16]


def provenance_attrs(
    inputs: Iterable[str | os.PathLike[str]] = (),
    config: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, str]:
    """Attributes recording how an output was made (for NetCDF global attributes).

    Parameters
    ----------
    inputs
        Input files; recorded with a short content digest.
    config
        The resolved configuration, stored as JSON.
    extra
        Further attributes (e.g. corrections applied), stored as text or JSON.
    """
    files = []
    for f in inputs:
        p = Path(f)
        files.append(f"{p} sha256:{file_digest(p)}" if p.exists() else str(p))
    attrs = {
        "history": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} created by fluxbridge "
                   f"{code_version()}",
        "source": "fluxbridge",
        "fluxbridge_version": code_version(),
        "python": platform.python_version(),
        "input_files": json.dumps(files),
    }
    if config is not None:
        attrs["fluxbridge_config"] = json.dumps(config, default=str, sort_keys=True)
    for key, value in extra.items():
        attrs[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return attrs
