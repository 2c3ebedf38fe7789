"""One driver per output folder: a lock file holding the driver's pid, host and start time.

Two `sweep` (or `resume`) drivers writing into one folder mixed both sweeps' trials under one
Ray experiment and lost one of them (issue 12, point 1). The lock is an exclusive fcntl lock,
so exactly one of two racing drivers gets it; the other is refused with the holder's pid and start
time. A lock whose holder is gone (e.g. after SIGKILL) is stale and is taken over with a notice.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCK_NAME = ".ocfb-suite.lock"


class LockHeld(RuntimeError):
    """Another live driver holds the folder; the message names its pid and start time."""


def _describe(info: dict[str, Any]) -> str:
    started = info.get("started")
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, int | float) else "an unknown time")
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} "
            f"(`{info.get('command', '?')}`, started {when})")


class OutputLock:
    """Exclusive use of an output folder by one driver process (a context manager).

    The lock file stays in place; the exclusion is an fcntl lock on it, which the kernel drops
    when the holder dies however it dies (SIGKILL included), so a dead driver's lock is always
    stale and no unlink race can let two drivers in. The file's text (pid, host, start time,
    command) only names the holder in messages; a clean release empties it.
    """

    def __init__(self, out: Path, command: str) -> None:
        self.path = Path(out) / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise LockHeld naming the live holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _parse(os.pread(fd, 4096, 0))
            os.close(fd)
            pid = info.get("pid", "?")
            raise LockHeld(f"{self.path.parent} is in use by {_describe(info)}; wait for it to "
                           f"finish, or stop it (kill {pid}) and then run `ocfb-suite resume "
                           f"{self.path.parent}`") from None
        previous = _parse(os.pread(fd, 4096, 0))
        if previous.get("pid") is not None:
            print(f"note: taking over a stale lock on {self.path.parent} left by "
                  f"{_describe(previous)}, which is no longer running", file=sys.stderr)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file and drop the lock, if this object holds it."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean exit leaves nothing to take over
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
