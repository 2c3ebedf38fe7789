"""A sweep's output folder: is it one, can its files be read, and who owns it.

- **Reading** (`read_sweep_json`, `check_results`): `summarize`, `resume` and `dashboard` read a
  folder someone hands them: it may be a foreign folder, a copy that lost `sweep.json`, or one
  whose `trials.parquet` was truncated in transit (the suite itself writes atomically, so a torn
  file comes from outside). Each used to end in a traceback (`FileNotFoundError`, `ArrowInvalid:
  Parquet magic bytes not found`); every such case is one line naming the file and what to do,
  checked before any work.
- **Earlier results** (`archive_previous`): a new sweep into a used folder moves the earlier
  sweep's files to `previous-<UTC time>/` (never mixed, never deleted).
- **One driver per folder** (`OutputLock`): two `sweep` (or `resume`) drivers writing into one
  folder mixed both sweeps' trials under one Ray experiment and lost one of them (issue 12,
  point 1). The lock is an exclusive fcntl lock, so exactly one of two racing drivers gets it;
  the other is refused with the holder's pid and start time. A lock whose holder is gone (e.g.
  after SIGKILL) is stale and is taken over with a notice.
- **What a killed driver leaves** (`start_reaper`): a SIGKILLed driver cannot shut Ray down, and
  its GCS, raylet, dashboard and runtime-env agents outlived it by about 80 s (issue 12, point
  8). `start_reaper` launches this module (`python -m suite.folders`) as a small separate
  process that polls the driver every 0.5 s, keeps the list of the driver's Ray processes (the
  roots it started and all their descendants, by pid *and* start time, so a reused pid is never
  killed), and SIGKILLs exactly those when the driver dies. It never touches other Ray
  instances and never runs `ray stop`.

Standard library only at import time (the reaper process imports this module).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The results files a sweep writes; a folder with any of them is a sweep folder that lost
# sweep.json, not a foreign one.
RESULTS_FILES = ("trials.parquet", "terms.parquet", "results.journal", "summary.md")


# Ray's own log lines (a failed trial's 60-line traceback, restore warnings) go here, in the
# output folder, instead of the terminal, where the sweep prints one line per trial
RAY_LOG = "ray.log"


class _LogFile(logging.FileHandler):
    """A log file that never prints "--- Logging error ---" to the terminal: on a full disk
    the sweep's own one-line error says what happened."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record: the log is a convenience, never a reason to print or fail."""


def ray_logs_to_file(out: Path) -> None:
    """Send the driver's Ray loggers to `out/ray.log` instead of the terminal (standard
    `logging` calls only; the trial's own error file keeps the full text too)."""
    handler = _LogFile(out / RAY_LOG, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lg.removeHandler(h)
        lg.propagate = False
    logging.getLogger("ray").addHandler(handler)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).propagate = True


class FolderError(ValueError):
    """The folder is not a readable sweep output folder; the message is the one line to print."""


def _rerun(out: Path) -> str:
    return f"rerun the sweep with --out {out}"


def read_sweep_json(out: Path) -> dict[str, Any]:
    """DIR/sweep.json as a dict with a sweep name; FolderError naming the file otherwise."""
    if not out.exists():
        raise FolderError(f"{out}: no such folder; pass the output folder of a sweep "
                          "(its `output`, e.g. runs/quickstart)")
    if not out.is_dir():
        raise FolderError(f"{out}: not a folder; pass the output folder of a sweep "
                          "(its `output`, e.g. runs/quickstart)")
    path = out / "sweep.json"
    if not path.is_file():
        present = [n for n in RESULTS_FILES if (out / n).exists()]
        if present:
            raise FolderError(
                f"{path}: missing, though {out} holds {present[0]}: sweep.json records the "
                f"sweep's settings (objective, axes, data); copy it back from the folder this "
                f"one came from, or {_rerun(out)}")
        raise FolderError(f"{out}: no sweep.json here, so this is not a sweep output folder; "
                          "pass the folder a sweep wrote (its `output`, e.g. runs/quickstart)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise FolderError(f"{path}: cannot read it ({err.strerror or err}); fix its "
                          "permissions") from None
    except (UnicodeDecodeError, ValueError) as err:
        why = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"not JSON: {err}"
        raise FolderError(f"{path}: unreadable ({why}); it records the sweep's settings: "
                          f"restore it from a copy, or {_rerun(out)}") from None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise FolderError(f"{path}: not a sweep's settings (no sweep name in it); restore it "
                          f"from a copy, or {_rerun(out)}")
    return meta


def parquet_problem(path: Path, columns: tuple[str, ...] = ()) -> str | None:
    """Why a results Parquet file cannot be used (None: it reads, with `columns`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_table(path).column_names  # whole file: a bad page fails here too
    except OSError as err:
        return f"cannot read it ({err.strerror or err})" if err.errno else \
            f"not a readable Parquet file ({_first_line(err)})"
    except (pa.ArrowException, ValueError) as err:
        return f"not a readable Parquet file ({_first_line(err)})"
    missing = [c for c in columns if c not in names]
    return f"no {', '.join(missing)} column(s): not a sweep's results file" if missing else None


def _first_line(err: BaseException) -> str:
    """pyarrow's reason without the path it repeats: "Parquet magic bytes not found in footer"."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    text = re.sub(r"^Could not open Parquet input source '.*?': ", "", text)
    return text.split(". ")[0].rstrip(".")[:200]


def check_results(out: Path, *, need_trials: bool, need_columns: bool = True) -> None:
    """FolderError when trials.parquet is missing (`need_trials`) or a results Parquet file is
    torn, or lacks its key columns (`need_columns`: the dashboard reads what it finds); the
    message names the file and what to do."""
    trials = out / "trials.parquet"
    if need_trials and not trials.is_file():
        raise FolderError(
            f"{trials}: missing: no trial has ended yet, or the driver was killed before its "
            f"first write; continue the sweep with: ocfb-suite resume {out}")
    for name, columns in (("trials.parquet", ("trial_id", "status")),
                          ("terms.parquet", ("trial_id", "term"))):
        path = out / name
        if not path.is_file():
            continue
        problem = parquet_problem(path, columns if need_columns else ())
        if problem:
            raise FolderError(
                f"{path}: {problem}; the suite writes it atomically, so it was damaged "
                f"outside the sweep (a partial copy?): copy it again from the original "
                f"folder, or {_rerun(out)}")


def unreadable_state_files(path: str) -> list[Path]:
    """Ray experiment-state JSON files that do not parse (a full disk or a kill mid-write).

    The one place the suite reads Ray's own files: no public Ray call says that a state file
    is truncated (Tuner.restore prints a JSONDecodeError traceback and falls back to an older
    one). Checked against Ray 2.60's names, `experiment_state-<timestamp>.json`; a real sweep in
    tests/test_sweep.py (and the S3 test) fails if Ray renames or stops writing them."""
    if "://" in path:
        return []
    bad = []
    # only experiment_state-*.json is JSON; the searcher's *-state-*.json files are pickles
    for f in sorted(Path(path).glob("experiment_state*.json")):
        try:
            json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError):
            bad.append(f)
    return bad


# -- earlier results ----------------------------------------------------------------------------

# Results of an earlier sweep in the same folder, moved aside (never mixed, never deleted).
_PREVIOUS = ("sweep.json", *RESULTS_FILES, "tables", "plots", "ray", "splits", "wandb",
             "dashboard", "chosen.json", "ray.log")


def archive_previous(out: Path) -> Path | None:
    """Move an earlier sweep's results in `out` to `out/previous-<UTC time>/`; return it."""
    present = [n for n in _PREVIOUS if (out / n).exists()]
    if not present:
        return None
    dest = out / time.strftime("previous-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while dest.exists():
        dest = dest.with_name(dest.name.split("+")[0] + f"+{n}")
        n += 1
    dest.mkdir(parents=True)
    for name in present:
        os.replace(out / name, dest / name)
    return dest


# -- one driver per folder ----------------------------------------------------------------------

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


# -- what a killed driver leaves -----------------------------------------------------------------

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
    args = [sys.executable, "-m", "suite.folders", str(me), str(st[1] if st else 0),
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


def reaper_main(argv: list[str] | None = None) -> int:
    """`python -m suite.folders DRIVER_PID DRIVER_START ROOT...` (the reaper process)."""
    args = [int(a) for a in (argv if argv is not None else sys.argv[1:])]
    watch(args[0], args[1], set(args[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(reaper_main())
