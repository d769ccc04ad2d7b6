"""Input files checked before they are read: symbolic links that lead nowhere, archive members
by their declared size (bounded memory), text by its encoding."""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

from fluxbridge.errors import InputError

MAX_MEMBER_BYTES = 1 << 30
"""Largest archive member read into memory [byte] (1 GiB); a larger one is refused before it
is read (unpack it and name the file instead)."""

_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def read_member(archive: zipfile.ZipFile, member: str, path: str | os.PathLike[str],
                limit: int | None = None) -> bytes:
    """The bytes of one member of a zip archive, refused by its declared size first.

    Parameters
    ----------
    archive
        The open archive.
    member
        The member's name.
    path
        The archive's file, for the message.
    limit
        Largest size read [byte]; :data:`MAX_MEMBER_BYTES` by default.

    Raises
    ------
    InputError
        When the member declares more than ``limit`` bytes uncompressed (naming the member and
        its size); nothing is read then.
    """
    limit = MAX_MEMBER_BYTES if limit is None else limit
    size = archive.getinfo(member).file_size
    if size > limit:
        raise InputError(f"member {member!r} declares {size} bytes ({size / 2**30:.2f} GiB) "
                         "uncompressed; not read", path=path, variable=member,
                         expected=f"members of at most {limit} bytes ({limit / 2**30:.2f} GiB)"
                         "; unpack the archive and name the file itself")
    return archive.read(member)


def text_encoding(head: bytes, where: str) -> str:
    """The encoding to read a CSV with, from its first bytes: ``utf-8-sig`` after a UTF-8
    byte-order mark, ``utf-8`` where the bytes decode as UTF-8, else ``latin-1``.

    Raises
    ------
    InputError
        For UTF-16 or UTF-32 text (a byte-order mark, or NUL bytes in the text), which the
        FLUXNET-family readers do not take.
    """
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    found = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if found is None and b"\x00" in head:
        found = "UTF-16 or binary (NUL bytes in the text)"
    if found is not None:
        raise InputError(f"text encoded as {found}, not UTF-8", path=where, variable="encoding",
                         expected="a UTF-8 (or ASCII) CSV; save it again as UTF-8")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of ``head`` is still UTF-8
        return "utf-8" if exc.start >= len(head) - 3 else "latin-1"
    return "utf-8"


def check_link(path: Path, variable: str) -> None:
    """Refuse a symbolic link that leads nowhere: a loop of links, or a missing target.

    Parameters
    ----------
    path
        A path as named or matched (not resolved).
    variable
        The setting that named it, for the message (e.g. ``inputs.sites``).

    Raises
    ------
    InputError
        Naming the link and what is wrong with it.
    """
    if not path.is_symlink():
        return
    try:
        os.stat(path)
    except OSError as exc:
        found = ("a loop of symbolic links" if exc.errno == errno.ELOOP
                 else f"a symbolic link to {os.readlink(path)!r}, which does not exist")
        raise InputError(found, path=path, variable=variable,
                         expected="a file, or a link to one") from None
