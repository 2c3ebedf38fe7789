"""Weights & Biases tracking for sweeps: one run per trial, a summary run, offline-first.

W&B must never prompt, block or fail a sweep: every call into wandb is guarded, the first error is
logged once (one warning line, logger "suite.tracking") and tracking then stops, while the sweep
and its results files go on. Neither wandb nor Ray is imported here (Ray Tune alone costs about
2.3 s at import): wandb is imported when a run starts, and Ray never: `WandbTrialCallback` has
the hooks of a Ray Tune callback (`setup`, `on_trial_*`, `on_experiment_end`) but no Ray base
class, since Tune is given one stateless callback by the sweep driver, which forwards each event
to it; pickle finds the class by its own name.

The sweep's summary run (job_type "summary", the sweep's group, id "<sweep>-summary") is
re-logged in place; DIR/wandb/summary-run.json records what it holds, so the dashboard's report
references exactly those keys, and a resumed finished sweep can leave it alone.

Offline runs are never read back here: a resumed trial's rows come from the results files
(`replay`); the readers of W&B's offline files live with the tests (tests/wandb_offline.py).
This module is the package's public face; `session` holds the mode, credentials, folders and
the one place runs are started.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.results import RAY_KEYS, write_json
from suite.tracking.session import (
    LOG,
    SUPERSEDED,
    RunStarter,
    api_key_configured,
    base_url,
    check_mode,
    offline_dirs,
    online_problem,
    plain,
    prepare_env,
    redact,
    resolve_mode,
    sanitize_id,
    short_error,
    supersede,
    sync_hint,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SUMMARY_MANIFEST", "SUMMARY_STATS", "SUPERSEDED", "WandbTrialCallback",
    "api_key_configured", "base_url", "default_metric_keys", "log_summary", "online_problem",
    "prepare_env", "resolve_mode", "short_error", "summary_manifest", "summary_run_id",
    "sync_hint", "trial_run_id",
]

# What a trial run's summary keeps of every logged metric: W&B shows them as `<metric>.min`,
# `.max` and `.last`, so dashboards can plot a trial at its best term (the objective's peak),
# not only at its last one.
SUMMARY_STATS = ("min", "max", "last")


def default_metric_keys(result: dict) -> dict:
    """The trainable's own record from a Ray result: Ray's bookkeeping keys dropped."""
    return {k: v for k, v in result.items()
            if k not in RAY_KEYS and not k.startswith("__") and not isinstance(v, dict)}


class WandbTrialCallback:
    """Streams every trial of a sweep to its own W&B run, grouped by sweep (Tune's callback
    hooks, called by the sweep driver's one Tune callback; no Ray base, see the module).

    One run per trial (id "<sweep>-<trial id>", job_type "trial", config = the trial's flattened
    config) with one history row per reported term, `term` as the step axis. Runs finish on
    complete (exit 0) or error (exit 1). W&B errors are logged once, then tracking stops.

    metric_keys(result) gives the row to log (default: Ray's bookkeeping keys dropped); an empty
    row is not logged. replay(trial_id), optional, gives the rows already recorded for a trial
    (from terms.parquet): an offline run started for a resumed trial re-logs them first,
    because W&B cannot append to an earlier offline run (see `_carry_over`). Every metric's
    summary keeps its min, max and last value (SUMMARY_STATS).
    """

    def __init__(self, *, sweep_name: str, project: str, entity: str | None, tags: list[str],
                 mode: str, out_dir: Path, flatten_config: Callable[[dict], dict],
                 metric_keys: Callable[[dict], dict | None] | None = None,
                 replay: Callable[[str], list[dict]] | None = None, init_timeout: float = 30.0,
                 finish_timeout: float = 60.0) -> None:
        check_mode(mode)
        self.sweep_name = sweep_name
        self.project = project
        self.entity = entity
        self.tags = [str(t)[:64] for t in tags]
        self.mode = mode
        self.out_dir = Path(out_dir)
        self.flatten_config = flatten_config
        self.metric_keys = metric_keys or default_metric_keys
        self.replay = replay
        self.init_timeout = init_timeout
        self.finish_timeout = finish_timeout
        self._reset()

    def _reset(self) -> None:
        self._runs: dict[str, Any] = {}
        self._last_term: dict[str, float] = {}
        self._disabled = self.mode == "disabled"
        self._warned = False
        self._noticed = False
        self._starter = RunStarter(self.mode, self.out_dir, self.init_timeout, self.finish_timeout)

    # Pickled (e.g. with a Tune experiment), live W&B runs cannot travel: a restored callback
    # starts afresh. replay (likely a closure over the results writer) stays behind too.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_runs", "_last_term", "_disabled", "_warned", "_noticed", "_starter"):
            state.pop(key, None)
        state["replay"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def disabled(self) -> bool:
        """True once tracking is off (mode "disabled", or after a W&B error)."""
        return self._disabled

    def run_id(self, trial_id: str) -> str:
        """The W&B run id of a trial: stable, so a resumed trial continues the same run."""
        return trial_run_id(self.sweep_name, trial_id)

    # -- guarded plumbing

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            LOG.warning(redact(message))

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self._disabled:
            return None
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - W&B must never fail the sweep
            self._disabled = True
            why = f"{what}: {short_error(exc)}"
            self._warn(f"W&B logging disabled for the rest of the sweep ({why})")
            self._abandon()
            return None
        if self._starter.notice and not self._noticed:
            self._noticed = True
            LOG.warning(redact(self._starter.notice))
        return result

    def _abandon(self) -> None:
        """After an error: finish what is open, quietly, so offline data is flushed to disk."""
        runs, self._runs = self._runs, {}
        for run in runs.values():
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - already reported once
                pass

    def _ensure_run(self, trial: Any) -> Any:
        trial_id = str(trial.trial_id)
        run = self._runs.get(trial_id)
        if run is not None:
            return run
        run_id = self.run_id(trial_id)
        config = self.flatten_config(trial.config)
        run = self._starter.start(
            project=self.project, entity=self.entity, group=self.sweep_name, job_type="trial",
            name=trial_id, id=run_id, tags=self.tags, config=config)
        self._runs[trial_id] = run
        self._last_term.pop(trial_id, None)
        run.define_metric("term")
        run.define_metric("*", step_metric="term", summary=",".join(SUMMARY_STATS))
        if self._starter.mode == "offline":
            self._carry_over(trial_id, run_id, run)
        return run

    def _carry_over(self, trial_id: str, run_id: str, run: Any) -> None:
        """A trial resumed in a new process: re-log the rows the results files hold for it.

        W&B cannot append one offline run to another (syncing two folders with one id keeps
        only one), so the new run re-logs `replay`'s rows (terms.parquet: never W&B's own files,
        which a killed process leaves short of their last rows) and the earlier folders leave
        the sync glob (moved to SUPERSEDED, not deleted).
        """
        here = Path(run.dir).parent.resolve()
        older = [d for d in offline_dirs(self.out_dir, run_id) if d.resolve() != here]
        replayed = (self.replay(trial_id) or []) if self.replay is not None else []
        rows = {r.get("term"): dict(r) for r in replayed}
        for term in sorted(t for t in rows if t is not None):
            self._log_row(trial_id, run, rows[term])
        supersede(older, keep=here)

    def _log_row(self, trial_id: str, run: Any, row: dict | None) -> None:
        if not row:
            return  # metric_keys said: not a record (e.g. a divergence marker)
        term = row.get("term")
        last = self._last_term.get(trial_id)
        if term is None:  # not an OCF-B record: keep W&B's steps increasing anyway
            term = 0 if last is None else last + 1
        elif last is not None and term <= last:
            return  # a restored trial re-reporting a term W&B already holds
        run.log({k: plain(v) for k, v in row.items()}, step=int(term))
        self._last_term[trial_id] = term

    def _finish(self, trial: Any, exit_code: int) -> None:
        run = self._runs.pop(str(trial.trial_id), None)
        if run is None:
            return
        started = time.monotonic()
        run.finish(exit_code=exit_code)
        # finish() gives up on pending uploads after finish_timeout without raising; if that
        # happens the network is gone, and every later trial would wait as long: stop here.
        if self.finish_timeout and time.monotonic() - started >= self.finish_timeout:
            raise TimeoutError(f"uploads did not finish within {self.finish_timeout:g} s")

    # -- Tune hooks

    def setup(self, **info: Any) -> None:
        """Nothing to set up: runs open on a trial's first event."""

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Nothing yet: the restored trial's run opens on its next result."""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Open the trial's run (or keep the open one when a trial restarts in this process)."""
        self._guard("starting a trial run", self._ensure_run, trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        """Log one history row: the trial's record, `term` as the step."""
        def log() -> None:
            run = self._ensure_run(trial)
            self._log_row(str(trial.trial_id), run, self.metric_keys(result))

        self._guard("logging a result", log)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Finish the trial's run with exit code 0 (completed or stopped by the scheduler)."""
        self._guard("finishing a trial run", self._finish, trial, 0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Finish the trial's run with exit code 1 (W&B marks it failed)."""
        self._guard("finishing a failed trial run", self._finish, trial, 1)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Finish any run still open: exit 0 for terminated trials, 1 for the others."""
        status = {str(t.trial_id): getattr(t, "status", None) for t in trials or []}

        def finish_all() -> None:
            for trial_id in list(self._runs):
                code = 0 if status.get(trial_id) == "TERMINATED" else 1
                self._runs.pop(trial_id).finish(exit_code=code)

        self._guard("finishing the sweep's runs", finish_all)

    def close(self) -> None:
        """Finish every open run (exit code 1); for a sweep interrupted outside Tune's hooks."""
        self.on_experiment_end([])


def trial_run_id(sweep_name: str, trial_id: str) -> str:
    """The W&B run id of one trial (what `WandbTrialCallback.run_id` gives)."""
    return sanitize_id(f"{sweep_name}-{trial_id}")

# Written next to the runs once the summary run is logged: what it holds (its tables and
# plots), so the dashboard's report references exactly those keys.
SUMMARY_MANIFEST = "summary-run.json"


def _cell(value: Any) -> Any:
    """A table cell: plain, with every kind of missing value (NaN, None, NA, NaT) as None."""
    import pandas as pd

    value = plain(value)
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _table(wandb: Any, df: pd.DataFrame) -> Any:
    """A wandb.Table from a data frame: a meaningful index becomes columns, missing -> None."""
    import pandas as pd

    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    data = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    # a column may mix numbers and words (e.g. a budget of 5 terms or "final"): W&B's type
    # inference would refuse the whole table
    return wandb.Table(columns=columns, data=data, allow_mixed_types=True)


def summary_manifest(out_dir: Path) -> dict[str, Any] | None:
    """What the sweep's logged summary run holds (run id, tables, plot keys), or None when no
    summary run was logged from this folder (W&B disabled, or logging failed)."""
    path = Path(out_dir) / "wandb" / SUMMARY_MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_run_id(sweep_name: str) -> str:
    """The W&B run id of a sweep's summary run: one per sweep, re-logged in place."""
    return sanitize_id(f"{sweep_name}-summary")


def _log_summary_row(wandb: Any, run: Any, tables: dict[str, pd.DataFrame],
                     images: list[Path]) -> tuple[list[str], list[str]]:
    """Log the tables and plots in one row; return the table keys and the image keys."""
    row: dict[str, Any] = {name: _table(wandb, df) for name, df in tables.items()}
    for path in map(Path, images):
        if path.is_file():
            row[f"plots/{path.stem}"] = wandb.Image(str(path))
    if row:
        run.log(row)
    return list(tables), [k for k in row if k.startswith("plots/")]


def log_summary(*, out_dir: Path, sweep_name: str, project: str, entity: str | None, mode: str,
                tables: dict[str, pd.DataFrame], images: list[Path], files: list[Path],
                init_timeout: float = 30.0, finish_timeout: float = 300.0,
                skip_if_logged: bool = False) -> None:
    """Log the sweep's summary run (job_type "summary", same group): tables, plots, results files.

    Tables go in as wandb.Table under their names, PNGs as wandb.Image under "plots/<stem>", the
    files as one artifact of type "results"; then DIR/wandb/summary-run.json records what the
    run holds (for the dashboard). skip_if_logged: do nothing when that record exists (a resume
    of a finished sweep must not log the summary again). A W&B error is logged (one line),
    never raised.
    """
    if mode == "disabled":
        return
    check_mode(mode)
    if skip_if_logged and summary_manifest(out_dir) is not None:
        return
    starter = RunStarter(mode, Path(out_dir), init_timeout, finish_timeout)
    run = None
    try:
        import wandb


        run_id = summary_run_id(sweep_name)
        run = starter.start(project=project, entity=entity, group=sweep_name,
                            job_type="summary", name=run_id, id=run_id)
        if starter.notice:
            LOG.warning(redact(starter.notice))
        table_keys, image_keys = _log_summary_row(wandb, run, tables, images)
        present = [Path(f) for f in files if Path(f).is_file()]
        if present:
            artifact = wandb.Artifact(sanitize_id(f"{sweep_name}-results"), type="results")
            for path in present:
                artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact)
        run.finish()
        if starter.mode == "offline":
            supersede(offline_dirs(Path(out_dir), run_id), keep=Path(run.dir).parent)
        write_json({"run_id": run_id, "project": project, "entity": entity, "group": sweep_name,
                    "mode": starter.mode, "tables": table_keys, "images": image_keys},
                   Path(out_dir) / "wandb" / SUMMARY_MANIFEST)
    except Exception as exc:  # noqa: BLE001 - W&B must never fail the sweep
        LOG.warning(f"W&B summary run not logged ({short_error(exc)})")
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - already reported once
                pass
