"""Weights & Biases tracking for sweeps: one run per trial, a summary run, offline-first.

W&B must never prompt, block or fail a sweep: every call into wandb is guarded, the first error is
logged once (one warning line) and tracking then stops, while the sweep and its results files go
on. wandb and Ray are imported lazily so that `import suite.tracking` stays cheap (Ray Tune alone
costs about 2.3 s at import): `WandbTrialCallback`, a Ray Tune callback, is built on first use.

Offline runs are never read back here: a resumed trial's rows come from the results files
(`replay`); the readers of W&B's offline files live with the tests (tests/wandb_offline.py).
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

_LOG = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
# Bookkeeping keys Ray Tune adds to every reported result: they are not the trainable's record.
RAY_RESULT_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "timesteps_this_iter",
    "episodes_total", "episodes_this_iter", "done", "timestamp", "date", "hostname", "node_ip",
    "pid", "checkpoint_dir_name", "config", "trial_id", "experiment_id", "experiment_tag",
    "should_checkpoint", "warmup_time", "_metric",
})
_OFFLINE_DIR = re.compile(r"^offline-run-\d{8}_\d{6}-(?P<run_id>.+)$")
# Directories of runs replaced by a later run with the same id (a resumed trial, a re-logged
# summary): moved here so that `wandb sync DIR/wandb/offline-run-*` uploads each run once.
SUPERSEDED = "superseded"
# What a trial run's summary keeps of every logged metric: W&B shows them as `<metric>.min`,
# `.max` and `.last`, so dashboards can plot a trial at its best term (the objective's peak),
# not only at its last one.
SUMMARY_STATS = ("min", "max", "last")
# Whether online W&B works with the credentials in effect (fingerprint -> None or why not):
# probed once per process, so a sweep waits for an unreachable server once, not per trial.
_VERDICTS: dict[str, str | None] = {}


# -- mode and environment -----------------------------------------------------------------------


def _user_settings_base_url() -> str | None:
    """The server URL from the user's wandb settings file (`wandb login --host`), if any."""
    cfg_dir = os.environ.get("WANDB_CONFIG_DIR") or str(Path("~/.config/wandb").expanduser())
    parser = configparser.ConfigParser()
    try:
        parser.read(Path(cfg_dir) / "settings")
        return parser.get("default", "base_url", fallback=None) or None
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None


def base_url() -> str:
    """The W&B server in effect: WANDB_BASE_URL, else `wandb login --host`'s, else the default."""
    import wandb

    env_url = os.environ.get("WANDB_BASE_URL")
    return env_url or _user_settings_base_url() or wandb.Settings().base_url


def api_key_configured() -> bool:
    """True when wandb finds credentials without prompting (env var, identity token, netrc or
    settings file, for the server in effect), asked through wandb's own credential lookup.

    No network and no prompt; nothing is stored in the session. A key that is present but
    malformed counts as configured: the online check then names the problem once.
    """
    from wandb.errors import AuthenticationError, UsageError
    from wandb.sdk.lib import wbauth

    try:
        auth = wbauth.authenticate_session(host=base_url(), source="ocfb-suite", prompt=False,
                                           update_session=False)
    except AuthenticationError:
        return True
    except (UsageError, OSError, ValueError):
        return False
    return auth is not None


def resolve_mode(cli_mode: str | None, spec_mode: str = "auto") -> str:
    """The W&B mode to use: "online", "offline" or "disabled".

    `--wandb` (cli_mode) overrides the sweep file (spec_mode); "auto" honours a valid WANDB_MODE
    and is otherwise online when an API key is configured, offline when not.
    """
    for name, value in (("--wandb", cli_mode), ("wandb.mode", spec_mode)):
        if value is not None and value not in (*MODES, "auto"):
            raise ValueError(f"{name}: {value!r} is not one of auto, online, offline, disabled")
    mode = cli_mode or spec_mode or "auto"
    if mode != "auto":
        return mode
    env_mode = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
                "disabled": "disabled"}.get(os.environ.get("WANDB_MODE", "").strip().lower())
    if env_mode:
        return env_mode
    return "online" if api_key_configured() else "offline"


def prepare_env(out_dir: Path) -> Path:
    """Point all of wandb's folders inside the sweep folder and make it silent; return DIR/wandb.

    Runs then land in DIR/wandb/{offline-,}run-*, caches/staged artifacts in DIR/wandb/.cache and
    .data. Only environment variables change here: nothing is written until a run starts.
    """
    out_dir = Path(out_dir).resolve()
    wandb_dir = out_dir / "wandb"
    # The user's settings file is hidden once WANDB_CONFIG_DIR moves: keep its server (self-hosted
    # W&B) so that online runs still go where `wandb login --host` pointed.
    if not os.environ.get("WANDB_BASE_URL") and (base_url := _user_settings_base_url()):
        os.environ["WANDB_BASE_URL"] = base_url
    os.environ["WANDB_DIR"] = str(out_dir)
    os.environ["WANDB_CACHE_DIR"] = str(wandb_dir / ".cache")
    os.environ["WANDB_CONFIG_DIR"] = str(wandb_dir / ".config")
    os.environ["WANDB_DATA_DIR"] = str(wandb_dir / ".data")
    os.environ["WANDB_SILENT"] = "true"
    # Belt and braces: the callback never goes online without credentials, but should wandb
    # still reach its login prompt, it gives up after this many seconds instead of waiting.
    os.environ.setdefault("WANDB_LOGIN_TIMEOUT", "10")
    return wandb_dir


def sync_hint(out_dir: Path) -> str:
    """The one line telling the user how to upload a sweep's offline runs."""
    wandb_dir = shlex.quote(str(Path(out_dir) / "wandb"))
    return f"W&B runs were saved offline; upload them with: wandb sync {wandb_dir}/offline-run-*"


# -- small helpers ------------------------------------------------------------------------------


def _sanitize_id(text: str) -> str:
    """A W&B run or artifact id made from text: safe characters only, at most 64 of them."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"
    if len(clean) > 64:
        clean = f"{clean[:55]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return clean


def _redact(text: str) -> str:
    """Text with the API key's value blanked out, so that no log line can ever carry it."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


def short_error(exc: BaseException) -> str:
    """An exception as one line for a warning, the API key blanked out."""
    first = str(exc).strip().splitlines()
    return _redact(f"{type(exc).__name__}: {first[0] if first else ''}")


def _plain(value: Any) -> Any:
    """A plain Python value for W&B: NumPy scalars unwrapped (NaN stays NaN, as in the records)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def default_metric_keys(result: dict) -> dict:
    """The trainable's own record from a Ray result: Ray's bookkeeping keys dropped."""
    return {k: v for k, v in result.items()
            if k not in RAY_RESULT_KEYS and not k.startswith("__") and not isinstance(v, dict)}


def _settings(wandb: Any, mode: str, init_timeout: float, finish_timeout: float) -> Any:
    # The API key stays in the environment only: settings are written to the run's debug logs.
    # System metrics (CPU, memory) stay on: W&B's public way to turn them off is experimental.
    kwargs: dict[str, Any] = dict(silent=True, quiet=True, console="off",
                                  finish_timeout=finish_timeout)
    if mode == "online":
        kwargs["init_timeout"] = init_timeout
    return wandb.Settings(**kwargs)


def _offline_dirs(out_dir: Path, run_id: str) -> list[Path]:
    """Offline run folders of one run id in DIR/wandb, oldest first."""
    wandb_dir = Path(out_dir) / "wandb"
    if not wandb_dir.is_dir():
        return []
    found = [p for p in wandb_dir.iterdir()
             if p.is_dir() and (m := _OFFLINE_DIR.match(p.name)) and m["run_id"] == run_id]
    return sorted(found, key=lambda p: (p.name, p.stat().st_mtime))


def _supersede(dirs: Iterable[Path], keep: Path | None) -> None:
    """Move older offline folders of a run out of the sync glob (they are kept, not deleted)."""
    for d in dirs:
        if keep is not None and d.resolve() == keep.resolve():
            continue
        target = d.parent / SUPERSEDED / d.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        d.rename(target)


def _credentials_fingerprint() -> str:
    """Identifies the credentials in effect, without keeping the key itself anywhere."""
    parts = [os.environ.get(k, "") for k in ("WANDB_BASE_URL", "WANDB_API_KEY",
                                             "WANDB_IDENTITY_TOKEN_FILE", "NETRC")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _online_problem() -> tuple[str | None, bool]:
    """Why online runs cannot work here (None: they can), and whether that is news.

    Checked once per process and credentials with `wandb.login(verify=True, prompt=False)`:
    no prompt, about 10 s at most without network, and it creates no run. Probing per run
    instead would be worse: a failed online `wandb.init` keeps its run id taken for the rest of
    the process, so that trial could not even fall back to an offline run.
    """
    fingerprint = _credentials_fingerprint()
    if fingerprint not in _VERDICTS:
        import wandb

        try:
            ok = wandb.login(verify=True, prompt=False)
            why = None if ok else "no W&B credentials found (WANDB_API_KEY or `wandb login`)"
        except Exception as exc:  # noqa: BLE001 - bad key, no network, server error
            why = f"cannot use W&B online ({short_error(exc)})"
        _VERDICTS[fingerprint] = why
        return why, why is not None
    return _VERDICTS[fingerprint], False


def online_problem() -> str | None:
    """Why online W&B cannot work with the credentials in effect (None: it can); see below."""
    return _online_problem()[0]


class _Starter:
    """Starts runs in the requested mode; online turns offline when credentials do not work."""

    def __init__(self, mode: str, out_dir: Path, init_timeout: float, finish_timeout: float):
        self.mode = mode
        self.out_dir = Path(out_dir).resolve()
        self.init_timeout = init_timeout
        self.finish_timeout = finish_timeout
        self.notice: str | None = None  # set when the mode changed: logged once by the caller

    def start(self, **init_kwargs: Any) -> Any:
        import wandb

        prepare_env(self.out_dir)
        # wandb warns (and skips git info) when its root folder does not exist yet.
        (self.out_dir / "wandb").mkdir(parents=True, exist_ok=True)
        if self.mode == "online":
            why, news = _online_problem()
            if why is not None:
                self.mode = "offline"
                if news:
                    self.notice = f"W&B: {why}; logging offline instead. {sync_hint(self.out_dir)}"
        return wandb.init(
            mode=self.mode, dir=str(self.out_dir), reinit="create_new", resume="allow",
            settings=_settings(wandb, self.mode, self.init_timeout, self.finish_timeout),
            **init_kwargs)


# -- one run per trial --------------------------------------------------------------------------


class TrialRunLogger:
    """Streams every trial of a sweep to its own W&B run, grouped by sweep; the Ray-free part of
    `WandbTrialCallback` (which adds Ray Tune's `Callback` base on first use).

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
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
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
        self._starter = _Starter(self.mode, self.out_dir, self.init_timeout, self.finish_timeout)

    # Tune pickles its RunConfig (callbacks included) into tuner.pkl and restores it on
    # `Tuner.restore`: live W&B runs cannot travel, so a restored callback starts afresh.
    # replay (likely a closure over the results writer) stays behind too: pass it again.
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
            _LOG.warning(_redact(message))

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
            _LOG.warning(_redact(self._starter.notice))
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
        older = [d for d in _offline_dirs(self.out_dir, run_id) if d.resolve() != here]
        replayed = (self.replay(trial_id) or []) if self.replay is not None else []
        rows = {r.get("term"): dict(r) for r in replayed}
        for term in sorted(t for t in rows if t is not None):
            self._log_row(trial_id, run, rows[term])
        _supersede(older, keep=here)

    def _log_row(self, trial_id: str, run: Any, row: dict | None) -> None:
        if not row:
            return  # metric_keys said: not a record (e.g. a divergence marker)
        term = row.get("term")
        last = self._last_term.get(trial_id)
        if term is None:  # not an OCF-B record: keep W&B's steps increasing anyway
            term = 0 if last is None else last + 1
        elif last is not None and term <= last:
            return  # a restored trial re-reporting a term W&B already holds
        run.log({k: _plain(v) for k, v in row.items()}, step=int(term))
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


@functools.cache
def _callback_class() -> type:
    """`TrialRunLogger` with Ray Tune's `Callback` base: built once, on first use, so that
    importing this module does not import Ray."""
    from ray.tune import Callback

    class WandbTrialCallback(TrialRunLogger, Callback):
        __doc__ = TrialRunLogger.__doc__

    # pickle (Tune saves its callbacks in tuner.pkl) finds the class again by this name
    WandbTrialCallback.__module__ = __name__
    WandbTrialCallback.__qualname__ = "WandbTrialCallback"
    return WandbTrialCallback


def __getattr__(name: str) -> Any:
    """`WandbTrialCallback`, the Ray Tune callback, built when first asked for; the summary
    run's functions, which live in suite.wandb_summary."""
    if name == "WandbTrialCallback":
        return _callback_class()
    if name in ("log_summary", "summary_manifest", "summary_run_id"):
        from suite import wandb_summary

        return getattr(wandb_summary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def trial_run_id(sweep_name: str, trial_id: str) -> str:
    """The W&B run id of one trial (what `TrialRunLogger.run_id` gives)."""
    return _sanitize_id(f"{sweep_name}-{trial_id}")
