"""Find and kill only the Ray processes a test started (never a plain `ray stop`).

Ray's worker processes rename themselves (`ray::IDLE`) and ignore SIGTERM, so a test collects
every process whose command line names its private temp dir, plus all their descendants, and
SIGKILLs them by id.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterable
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


def ray_processes(marker: str, roots: set[int] = frozenset(),
                  spare: set[int] = frozenset()) -> set[int]:
    """Processes whose command line contains `marker` (a private temp dir), their descendants,
    and the descendants of `roots`; never a process in `spare`, nor one found only below it.

    `spare` is for a wrapper that names the temp dir on its own command line and must outlive
    the kill (deploy/run-sweep.sh): the children it starts after the driver dies (its results
    copy) are its own, not Ray's. Without it a second scan killed that copy once in CI.
    """
    procs = _procs()
    start = ({pid for pid, (_, cmd) in procs.items() if marker in cmd} - set(spare)) | set(roots)
    return {p for p in descendants(start, procs) if p != os.getpid() and p not in spare}


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


def state_names_running_checkpoint(states: Iterable[str], done: set[str]) -> bool:
    """Whether one of Ray Tune's experiment-state files (their JSON texts) holds, for a trial not
    in `done`, a latest result that came with a checkpoint of term 1 or later.

    Only then does `resume` restore that trial from a checkpoint. The checkpoint's folder exists
    up to TUNE_GLOBAL_CHECKPOINT_S before the experiment state is saved with it, and a kill in
    that window restarts the trial from term 0 (seen on a slow host: a kill/resume test failed
    that way after waiting only for the folder).
    """
    for text in states:
        try:
            trials = json.loads(text).get("trial_data", [])
        except ValueError:  # read while Ray rewrote it
            continue
        for meta, runtime in trials:
            if json.loads(meta).get("trial_id") in done:
                continue
            found = re.findall(r'"checkpoint_dir_name": "checkpoint_(\d+)"', runtime)
            if any(int(n) >= 1 for n in found):
                return True
    return False
