"""One atomic writer for every results, checkpoint and split file of the project.

`atomic_write` fills a temporary file next to the target, fsyncs it, renames it over the target
and fsyncs the folder, so a crash or a full disk never leaves a half-written file in place of a
good one. Files get `0o666 & ~umask` (os.open applies the umask), not mkstemp's 0600: teammates
on shared storage must be able to read results. stdlib-only, so `ocfb/` and `suite/` share it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write `path` atomically: `write(f)` fills a temporary binary file, which is fsynced and
    renamed over `path`. On any failure the temporary file is removed and `path` is untouched.

    The temporary name is hidden (leading dot) and unique per process, so concurrent writers
    never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # os.open applies the umask to 0o666 itself: group-readable where the umask allows it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    # the rename is durable only once the directory entry is; best effort (not every FS allows it)
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
