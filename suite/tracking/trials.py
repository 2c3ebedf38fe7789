"""One W&B run per trial of a sweep, grouped by sweep, streamed as the trials report.

`WandbTrialCallback` has the hooks of a Ray Tune callback (`setup`, `on_trial_*`,
`on_experiment_end`) but no Ray base class: Tune is given one stateless callback by the sweep
driver, which forwards each event to it. So this module imports neither Ray nor wandb, and
pickle finds the class by its own name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite.tracking.session import (
    LOG,
    RunStarter,
    check_mode,
    offline_dirs,
    plain,
    redact,
    sanitize_id,
    short_error,
    supersede,
)

# Bookkeeping keys Ray Tune adds to every reported result: they are not the trainable's record.
RAY_RESULT_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "timesteps_this_iter",
    "episodes_total", "episodes_this_iter", "done", "timestamp", "date", "hostname", "node_ip",
    "pid", "checkpoint_dir_name", "config", "trial_id", "experiment_id", "experiment_tag",
    "should_checkpoint", "warmup_time", "_metric",
})
# What a trial run's summary keeps of every logged metric: W&B shows them as `<metric>.min`,
# `.max` and `.last`, so dashboards can plot a trial at its best term (the objective's peak),
# not only at its last one.
SUMMARY_STATS = ("min", "max", "last")


def default_metric_keys(result: dict) -> dict:
    """The trainable's own record from a Ray result: Ray's bookkeeping keys dropped."""
    return {k: v for k, v in result.items()
            if k not in RAY_RESULT_KEYS and not k.startswith("__") and not isinstance(v, dict)}


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
