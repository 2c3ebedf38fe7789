"""Results files of a sweep: atomic file helpers, the results schema and the results writer.

Every file the suite writes goes through `ocfb.atomicio.atomic_write`: the bytes go to a
temporary file next to the target, are fsynced, and only then renamed over it. A crash or a full
disk therefore never leaves a truncated `trials.parquet` in place of a good one, and the
temporary file is removed on failure. Files get mode `0o666 & ~umask` (not mkstemp's 0600),
so teammates can read results on shared storage.

Schema (issue 8 of the design interfaces): `trials.parquet` holds one row per trial (trial_id,
status, error, node_id, wall_time_s, terms_done, best_term, `config.*`, `final.*`, `best.*`);
`terms.parquet` one row per trial and term (trial_id, the loop's per-term record, `config.*`).
"""

from __future__ import annotations

import errno as errno_mod
import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ocfb.atomicio import atomic_write

if TYPE_CHECKING:
    from suite.spec import SweepSpec

# -- atomic file helpers (over ocfb.atomicio) ---------------------------------------------------


def write_bytes(data: bytes, path: str | Path) -> None:
    """Write bytes atomically."""
    atomic_write(path, lambda f: f.write(data))


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to parquet atomically."""
    buf = io.BytesIO()
    # zstd: results files are read rarely and committed, so small beats fast
    df.to_parquet(buf, index=False, compression="zstd")
    write_bytes(buf.getvalue(), path)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to CSV atomically."""
    write_bytes(df.to_csv(index=False).encode(), path)


def write_text(text: str, path: str | Path) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(text.encode(), path)


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (NaN allowed, as pandas and W&B read it)."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def describe_os_error(err: OSError, path: str | Path | None = None) -> str:
    """One line naming the path and the errno, e.g. `DIR/trials.parquet: [Errno 28 ENOSPC] No
    space left on device`."""
    where = path or err.filename or "?"
    code = errno_mod.errorcode.get(err.errno or 0, "?")
    return f"{where}: [Errno {err.errno} {code}] {err.strerror or err}"


# -- saved settings -----------------------------------------------------------------------------

_MOVIELENS_FORMATS = ("movielens-100k", "movielens-1m", "movielens-csv")


def applicable_data(dc: Any) -> dict[str, Any]:
    """The data settings that apply to this source (for sweep.json and summary.json): the
    generator's sizes only for synthetic data, column names only for generic file formats."""
    d = dc.model_dump(mode="json")
    if dc.is_synthetic:
        keep = ("source", "n_users", "n_items", "n_interactions", "data_seed")
    else:
        keep = ["source", "format"]
        if d.get("format") not in _MOVIELENS_FORMATS:
            keep += ["user_col", "item_col", "timestamp_col", "rating_col", "sep"]
        keep += ["min_rating"] + (["string_ids"] if d.get("string_ids") else [])
    return {k: d[k] for k in keep if k in d and d[k] is not None}


# -- schema -------------------------------------------------------------------------------------

# Keys Ray Tune adds to every result; they are bookkeeping, not OCF-B metrics (the one list:
# results files and W&B runs both drop exactly these)
RAY_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "timesteps_this_iter",
    "episodes_total", "episodes_this_iter", "done", "timestamp", "date", "hostname", "node_ip",
    "pid", "checkpoint_dir_name", "config", "trial_id", "experiment_id", "experiment_tag",
    "should_checkpoint", "warmup_time", "_metric",
})
# A trial's status while Ray may still run it, and the final ones it can reach.
OPEN_STATUSES = ("running", "pending")
ENDED_STATUSES = ("completed", "stopped", "diverged", "error")
# Our own per-result extras that belong to the trial, not to the term history.
TRIAL_KEYS = frozenset({"diverged", "diverged_reason", "node_id", "trial_wall_s"})


def record_of(result: dict[str, Any]) -> dict[str, Any]:
    """The OCF-B per-term record inside a Tune result (Ray's and trial keys removed)."""
    return {k: v for k, v in result.items() if k not in RAY_KEYS and k not in TRIAL_KEYS}


def config_columns(cfg: Any) -> dict[str, Any]:
    """A RunConfig flattened to `config.<key>` columns (data block excluded; lists as text)."""
    out = {}
    for k, v in cfg.model_dump(mode="json").items():
        if k == "data":
            continue
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        elif k == "negatives":
            v = str(v)
        out[f"config.{k}"] = v
    return out


def flat_config(cfg: Any) -> dict[str, Any]:
    """The trial's full flattened config as plain keys (for W&B run configs)."""
    out = {k.removeprefix("config."): v for k, v in config_columns(cfg).items()}
    out.update({f"data.{k}": v for k, v in applicable_data(cfg.data).items()})
    return out


# -- the results writer -------------------------------------------------------------------------


# Seconds between whole rewrites of the parquet files while trials run; every exit rewrites
# them at once. A trial's end is appended to the journal at once instead (below).
FLUSH_EVERY_S = 5.0
# The write-ahead journal: one JSON line per ended trial (its status and every term), appended
# and fsynced when Ray reports the end, replayed by `resume`, emptied after each whole rewrite.
# Rewriting both parquet files at every trial end cost 9.3 of the driver's 24.5 CPU-s in a
# 114-trial quickstart (py-spy), growing with the trials; an append costs the same at any size.
JOURNAL = "results.journal"


class ResultsWriter:
    """Collects per-term results and trial outcomes; rewrites the parquet files atomically.

    A failed write (disk full, permissions) is recorded in `write_error` and reported once to
    `on_write_error`; later flushes do nothing, so the last good files stay as they are.
    """

    def __init__(self, out_dir: Path, spec: SweepSpec, *, verbose: bool = True,
                 resume: bool = False, on_write_error: Callable[[str], None] | None = None,
                 on_all_started: Callable[[], None] | None = None) -> None:
        self.out = out_dir
        self.spec = spec
        self.verbose = verbose
        self.metric = spec.objective.metric
        self.mode = spec.objective.mode
        self.terms: dict[str, dict[int, dict[str, Any]]] = {}
        self.trials: dict[str, dict[str, Any]] = {}
        self.finished = 0
        self.write_error: str | None = None
        # told once when results can no longer be written (the driver stops the sweep)
        self.on_write_error = on_write_error
        # called once, when the last expected trial starts (the sweep's tail begins)
        self.on_all_started = on_all_started
        self._last_flush = 0.0
        self.ended_before: set[str] = set()  # resume: trials already ended (its closing count)
        if resume:
            self._load_existing()

    def _load_existing(self) -> None:
        # On resume, earlier results are the starting point; re-reported terms overwrite them.
        self._load_parquet()
        for line in read_journal(self.out / JOURNAL):
            tid = line["trial_id"]
            self.trials[tid] = {k: line.get(k) for k in
                                ("status", "error", "node_id", "wall_time_s", "config_cols")}
            self.trials[tid]["config"] = None
            self.terms[tid] = {int(r["term"]): r for r in line.get("terms", [])}
        self.ended_before = {tid for tid, t in self.trials.items()
                             if t["status"] not in OPEN_STATUSES}

    def _load_parquet(self) -> None:
        tp, tt = self.out / "terms.parquet", self.out / "trials.parquet"
        if tp.is_file():
            for rec in pd.read_parquet(tp).to_dict("records"):
                tid = rec.pop("trial_id")
                rec = {k: v for k, v in rec.items() if not k.startswith("config.")}
                self.terms.setdefault(tid, {})[int(rec["term"])] = rec
        if tt.is_file():
            for row in pd.read_parquet(tt).to_dict("records"):
                self.trials[row["trial_id"]] = {
                    "status": row["status"], "error": row.get("error"),
                    "node_id": row.get("node_id"), "wall_time_s": row.get("wall_time_s"),
                    "config": None, "config_cols": {k: v for k, v in row.items()
                                                     if k.startswith("config.")},
                }

    def _trial(self, trial: Any) -> dict[str, Any]:
        t = self.trials.setdefault(trial.trial_id, {"status": "pending", "error": None,
                                                     "node_id": None, "wall_time_s": None})
        if t.get("config") is None:
            cfg = self.spec.run_config(trial.config)
            t["config"] = cfg
            # tune-then-confirm sweeps add config.stage and config.budget (SweepSpec.trial_columns)
            extra = getattr(self.spec, "trial_columns", None)
            t["config_cols"] = {**config_columns(cfg), **(extra(cfg) if extra else {})}
        return t

    def on_start(self, trial: Any) -> None:
        """A trial started or was restored."""
        self._trial(trial)["status"] = "running"
        expected = self.spec.expected_trials()
        if self.on_all_started is not None and expected and len(self.trials) >= expected:
            hook, self.on_all_started = self.on_all_started, None
            hook()

    def on_result(self, trial: Any, result: dict[str, Any]) -> None:
        """A term finished (or the trial diverged)."""
        t = self._trial(trial)
        t["node_id"] = result.get("node_id", t["node_id"])
        t["wall_time_s"] = result.get("trial_wall_s", t["wall_time_s"])
        if result.get("diverged"):
            t["status"] = "diverged"
            t["error"] = result.get("diverged_reason")
            return
        rec = record_of(result)
        self.terms.setdefault(trial.trial_id, {})[int(rec["term"])] = rec
        # at most one rewrite per 5 s while trials run: the files are rewritten whole
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.time() - self._last_flush > FLUSH_EVERY_S:
            self.flush()

    def _total_terms(self, t: dict[str, Any]) -> int:
        cfg = t["config"]
        # a baseline fits once and reports one record (term 0)
        return 1 if getattr(cfg, "is_baseline", False) else cfg.terms + 1

    def has_all_terms(self, trial: Any) -> bool:
        """Whether every term of a complete run is recorded for this trial."""
        mine = self.terms.get(trial.trial_id, {})
        return len(mine) == self._total_terms(self._trial(trial)) and \
            set(mine) == set(range(len(mine)))

    def on_end(self, trial: Any, error: str | None = None,
               history: list[dict[str, Any]] | None = None) -> None:
        """A trial completed, was stopped early, or failed. `history`: the loop's records from
        the trial's last checkpoint, for terms a killed driver never flushed."""
        t = self._trial(trial)
        mine = self.terms.setdefault(trial.trial_id, {})
        for rec in history or []:
            mine.setdefault(int(rec["term"]), rec)
        if error is not None:
            t["status"] = "error"
            t["error"] = str(error).strip().splitlines()[-1][:500] if str(error) else "error"
        elif t["status"] != "diverged":
            t["status"] = "completed" if len(mine) >= self._total_terms(t) else "stopped"
        self.finished += 1
        # journaled at once: `resume` sees a finished trial as soon as Ray does; the parquet
        # files follow within FLUSH_EVERY_S (and at every exit)
        self._append_journal(trial.trial_id, t)
        self._maybe_flush()
        if self.verbose:
            self._progress_line(trial.trial_id, t)

    def _progress_line(self, tid: str, t: dict[str, Any]) -> None:
        cols = t["config_cols"]
        # keys that do not apply to this run (mf_dim for mlp, threshold for a baseline) would
        # suggest a difference that is not there
        skip = t["config"].inapplicable_keys() if t.get("config") is not None else {}
        desc = " ".join(f"{a}={cols.get('config.' + a)}" for a in self.spec.axes()
                        if a not in skip)
        best = self._best(tid)
        score = (f"{self.metric}={best[self.metric]:.4f} @ term {best['term']}"
                 if best else "no result")
        total = self.spec.expected_trials()
        print(f"[{self.finished}/{total if total else '?'}] {tid} {t['status']}: {desc} | "
              f"{score}", flush=True)

    def _best(self, tid: str) -> dict[str, Any] | None:
        recs = [r for r in self.terms.get(tid, {}).values()
                if isinstance(r.get(self.metric), float) and math.isfinite(r[self.metric])]
        if not recs:
            return None
        key = (lambda r: r[self.metric]) if self.mode == "max" else (lambda r: -r[self.metric])
        return max(sorted(recs, key=lambda r: r["term"]), key=key)  # ties: earliest term

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(trials, terms) data frames in the results schema."""
        term_rows, trial_rows = [], []
        for tid in sorted(self.trials):
            t = self.trials[tid]
            recs = [self.terms.get(tid, {})[k] for k in sorted(self.terms.get(tid, {}))]
            for r in recs:
                term_rows.append({"trial_id": tid, **r, **t["config_cols"]})
            row = {"trial_id": tid, "status": t["status"], "error": t["error"],
                   "node_id": t["node_id"], "wall_time_s": t["wall_time_s"],
                   "terms_done": len(recs), **t["config_cols"]}
            best = self._best(tid)
            row["best_term"] = best["term"] if best else None
            if recs:
                row.update({f"final.{k}": v for k, v in recs[-1].items() if k != "term"})
            if best:
                row.update({f"best.{k}": v for k, v in best.items() if k != "term"})
            trial_rows.append(row)
        return pd.DataFrame(trial_rows), pd.DataFrame(term_rows)

    def statuses(self) -> list[str]:
        """The status of every trial seen so far."""
        return [t["status"] for t in self.trials.values()]

    def _append_journal(self, tid: str, t: dict[str, Any]) -> None:
        """Append one ended trial to the journal and fsync it (a write error stops the sweep)."""
        if self.write_error is not None:
            return
        terms = [self.terms.get(tid, {})[k] for k in sorted(self.terms.get(tid, {}))]
        line = {"trial_id": tid, "terms": terms, "config_cols": t["config_cols"],
                **{k: t.get(k) for k in ("status", "error", "node_id", "wall_time_s")}}
        path = self.out / JOURNAL
        try:
            append_line(json.dumps(line, default=_plain), path)
        except OSError as err:
            self.fail(describe_os_error(err, path))

    def fail(self, message: str) -> None:
        """Record that results can no longer be written (a full disk) and tell the driver,
        once; later flushes write nothing, so the last good files stay as they are."""
        self.write_error = message
        if self.on_write_error is not None:
            self.on_write_error(message)

    def flush(self) -> None:
        """Rewrite trials.parquet and terms.parquet atomically, then empty the journal they now
        contain (nothing after a write error)."""
        if self.write_error is not None:
            return
        trials, terms = self.frames()
        for df, name in ((trials, "trials.parquet"), (terms, "terms.parquet")):
            path = self.out / name
            try:
                write_parquet(df, path)
            except OSError as err:
                self.fail(describe_os_error(err, path))
                return
        # only now: a kill before this line replays the journal over files that already hold
        # its trials, which changes nothing (records are keyed by trial and term)
        (self.out / JOURNAL).unlink(missing_ok=True)
        self._last_flush = time.time()


def _plain(obj: Any) -> Any:
    """JSON for numpy scalars in a record (anything else as text)."""
    return obj.item() if hasattr(obj, "item") else str(obj)


def append_line(text: str, path: Path) -> None:
    """Append one line to a file and fsync it; the file is group-readable like the others."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's trials, later lines winning; a torn last line (a kill mid-append) is
    skipped, since its trial reruns from its checkpoint on resume."""
    if not path.is_file():
        return []
    out: dict[str, dict[str, Any]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and "trial_id" in line:
            out[line["trial_id"]] = line
    return list(out.values())


def _parquet_statuses(out: Path) -> dict[str, str]:
    """trial_id -> status as trials.parquet holds it (empty if there is none yet)."""
    try:
        trials = pd.read_parquet(Path(out) / "trials.parquet", columns=["trial_id", "status"])
    except (OSError, ValueError, KeyError):
        return {}
    return dict(zip(trials.trial_id, trials.status, strict=True))


def ended_trials(out: Path) -> dict[str, str]:
    """trial_id -> status of every trial that ended, from trials.parquet and the journal
    (what a watcher or a test reads mid-sweep: the parquet files lag by up to FLUSH_EVERY_S)."""
    status = _parquet_statuses(out)
    status.update({line["trial_id"]: line.get("status")
                   for line in read_journal(Path(out) / JOURNAL)})
    return {tid: s for tid, s in status.items() if s not in OPEN_STATUSES}


def unflushed_trials(out: Path) -> int:
    """Journaled trial ends that trials.parquet lacks or holds with another status (what a
    summary of a killed driver's folder leaves out until `resume` folds them in)."""
    lines = read_journal(Path(out) / JOURNAL)
    if not lines:
        return 0
    on_disk = _parquet_statuses(out)
    return sum(on_disk.get(x["trial_id"]) != x.get("status") for x in lines)


# -- why a trial failed, in one line -----------------------------------------------------------


def error_text(trial: Any) -> str:
    """The last line of a failed trial's error file."""
    try:
        return Path(trial.error_file).read_text() or "trial failed"
    except Exception:
        return "trial failed"


# What Ray writes when a worker died for memory: its own memory monitor's OutOfMemoryError,
# or a SIGKILL (the kernel's OOM killer) seen as an actor death
_MEMORY_KILL = ("OutOfMemoryError", "running low on memory")
_SIGKILL = ("SIGKILL", "unexpectedly exits", "died unexpectedly")


def memory_request(trial: Any) -> int | None:
    """The `memory` a trial asked Ray for (bytes), from its public placement group factory."""
    try:
        return int(trial.placement_group_factory.required_resources.get("memory", 0)) or None
    except Exception:  # not a Tune trial (tests), or no request
        return None


def failure_reason(text: str, request: int | None) -> str:
    """One line for a failed trial: a kill for memory says so and names the estimate (the
    full Ray text, 60 lines for an OOM kill, stays in the trial's error file)."""
    est = f"; its estimate was {request / 2**30:.1f} GiB" if request else ""
    if any(m in text for m in _MEMORY_KILL):
        used = next((ln.split(" was ", 1)[1].split(")")[0] + ")" for ln in text.splitlines()
                     if "Memory on the node" in ln and " was " in ln), "")
        return f"killed for memory by Ray's memory monitor{' at ' + used if used else ''}{est}"
    if any(m in text for m in _SIGKILL):
        return (f"worker killed (SIGKILL: the kernel's out-of-memory killer, or a kill from "
                f"outside){est}")
    if "MemoryError" in text:
        return f"out of memory inside the trial (MemoryError){est}"
    return text


def disk_full_line(text: str) -> str | None:
    """The line of a trial's error that says the disk is full (ENOSPC), or None."""
    return next((ln.strip() for ln in text.splitlines()
                 if "No space left on device" in ln or "Errno 28" in ln), None)
