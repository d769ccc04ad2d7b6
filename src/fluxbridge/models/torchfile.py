"""Reading ``torch.save`` files safely, with one-line errors that never repeat torch's advice.

``torch.load(weights_only=True)`` runs no code from the file. When a file holds other objects
torch suggests reloading it with ``weights_only=False``, which would run that code: users are
never shown that hint, only what is wrong with the file and what to do.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from fluxbridge.errors import InputError


def read_torch_file(path: str | os.PathLike[str], expected: str) -> Any:
    """The content of a ``torch.save`` file, read with ``weights_only=True`` on the CPU.

    Parameters
    ----------
    path
        The file.
    expected
        What the file should be, for the message (e.g. "a file written by FittedModel.save").

    Raises
    ------
    InputError
        One line naming the file: not found; holding objects other than tensors and plain
        data (a foreign or tampered file, not loaded); or unreadable (truncated or corrupt).
    """
    where = Path(path)
    if not where.is_file():
        raise InputError("file not found", path=where, expected=expected)
    try:
        return torch.load(where, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        problem = ("holds objects other than tensors and plain data (a file of another "
                   "program, or tampered with); it was not loaded, nothing in it was run")
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile,
            AttributeError, IndexError, TypeError) as exc:
        problem = f"cannot be read: truncated or corrupt ({type(exc).__name__})"
    raise InputError(f"{problem}; remove or replace it", path=where, expected=expected)
