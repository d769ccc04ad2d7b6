"""A lock on a run directory: one process works in it at a time.

The lock is a file, ``.lock``, created exclusively; it holds the owner's process id, host and
start time. A second run on the same directory is refused with a message naming that process;
the lock of a process that no longer runs (on this host) is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluxbridge.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class RunLockedError(ConfigError):
    """The run directory is in use by another process."""


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, under another user
        return True
    return True


class RunLock:
    """The lock file of a run directory.

    Parameters
    ----------
    folder
        The run directory (it must exist).
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def holder(self) -> dict[str, Any]:
        """What the lock file says of its owner (``pid``, ``host``, ``started``); empty when
        it is unreadable (a write cut short)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int):
            return True
        return host == socket.gethostname() and pid != os.getpid() and not _alive(pid)

    def acquire(self) -> RunLock:
        """Take the lock, or take over a stale one.

        Raises
        ------
        RunLockedError
            If a live process (or this one) holds it, naming its process id and host.
        """
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if not self._stale(holder):
                    since = f" since {holder['started']}" if holder.get("started") else ""
                    raise RunLockedError(
                        f"in use by process {holder['pid']} on {holder.get('host')}{since}",
                        path=self.path.parent, variable="out_dir",
                        expected=f"one run at a time; wait for process {holder['pid']} to end "
                        f"(or remove {self.path} if it no longer runs)") from None
                log.warning("taking over the stale lock of process %s in %s",
                            holder.get("pid"), self.path.parent)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.now(UTC).isoformat(timespec="seconds")}, f)
            self.held = True
            return self
        raise RunLockedError("the lock changed hands while being taken", path=self.path,
                             expected="one run at a time")

    def release(self) -> None:
        """Remove the lock file, if this process holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
