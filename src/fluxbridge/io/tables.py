"""Small CSV tables (correction terms, point extractions) read with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fluxbridge.errors import InputError


def read_csv_table(path: Path, what: str, expected: str) -> pd.DataFrame:
    """A CSV table as pandas parses it.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for the message when it is missing (e.g. ``"corrections table"``).
    expected
        What the table should be, for the message when it cannot be parsed.

    Raises
    ------
    InputError
        If the file is missing, empty or not a CSV table.
    """
    if not path.is_file():
        raise InputError(f"{what} not found", path=path)
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot parse the table: {exc}".replace("\n", " "), path=path,
                         expected=expected) from None
