"""Kill the Ray processes a driver started, once that driver is gone (stdlib only).

A SIGKILLed driver cannot shut Ray down, and its GCS, raylet, dashboard and runtime-env agents
outlived it by about 80 s (issue 12, point 8). `start_reaper` launches this module as a small
separate process that polls the driver every 0.5 s, keeps the list of the driver's Ray processes
(the roots it started and all their descendants, by pid *and* start time, so a reused pid is
never killed), and SIGKILLs exactly those when the driver dies. It never touches other Ray
instances and never runs `ray stop`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live, non-zombie process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _children_table() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                table.setdefault(st[0], []).append(int(d.name))
    return table


def descendants(roots: set[int]) -> dict[int, int]:
    """`roots` and everything below them that is alive: pid -> start time."""
    table = _children_table()
    out: dict[int, int] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if pid in out or st is None:
            continue
        out[pid] = st[1]
        todo.extend(table.get(pid, []))
    return out


def own_children() -> set[int]:
    """The processes this process started directly (e.g. Ray's GCS and raylet after ray.init)."""
    return set(_children_table().get(os.getpid(), []))


def start_reaper(roots: set[int]) -> subprocess.Popen | None:
    """Watch this driver; when it dies, kill `roots` and their descendants. Returns the reaper."""
    if not roots or not Path("/proc").is_dir():
        return None
    me = os.getpid()
    st = _stat(me)
    args = [sys.executable, "-m", "suite.reaper", str(me), str(st[1] if st else 0),
            *map(str, sorted(roots))]
    # own session: a Ctrl-C in the terminal must not kill the reaper before it has done its job
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def watch(driver: int, driver_start: int, roots: set[int]) -> int:
    """Poll until the driver is gone, then SIGKILL what it started; returns how many."""
    known: dict[int, int] = {}
    while True:
        st = _stat(driver)
        alive = st is not None and (driver_start == 0 or st[1] == driver_start)
        if alive:
            known.update(descendants(roots | set(known)))
            if not any(_stat(p) for p in roots | set(known)):
                return 0  # Ray was shut down cleanly: nothing left to watch
            time.sleep(POLL_S)
            continue
        known.update(descendants(roots | set(known)))
        killed = 0
        for pid, start in known.items():
            cur = _stat(pid)
            if cur is not None and cur[1] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
        return killed


def main(argv: list[str] | None = None) -> int:
    """`python -m suite.reaper DRIVER_PID DRIVER_START ROOT...`"""
    args = [int(a) for a in (argv if argv is not None else sys.argv[1:])]
    watch(args[0], args[1], set(args[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
