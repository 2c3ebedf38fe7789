"""Find and kill only the Ray processes a test started (never a plain `ray stop`).

Ray's worker processes rename themselves (`ray::IDLE`) and ignore SIGTERM, so a test collects
every process whose command line names its private temp dir, plus all their descendants, and
SIGKILLs them by id.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _procs() -> dict[int, tuple[int, str]]:
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(d.name)] = (ppid, cmd)
    return out


def descendants(roots: set[int], procs: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """`roots` and every process below them."""
    procs = procs if procs is not None else _procs()
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def ray_processes(marker: str, roots: set[int] = frozenset()) -> set[int]:
    """Processes whose command line contains `marker` (a private temp dir), their descendants,
    and the descendants of `roots`."""
    procs = _procs()
    start = {pid for pid, (_, cmd) in procs.items() if marker in cmd} | set(roots)
    return {p for p in descendants(start, procs) if p != os.getpid()}


def kill_all(pids: set[int], timeout: float = 10.0) -> None:
    """SIGKILL the given processes and wait until they are gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
