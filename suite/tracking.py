"""Weights & Biases tracking for sweeps: one run per trial, a summary run, offline-first.

W&B must never prompt, block or fail a sweep: every call into wandb is guarded, the first error is
logged once (one warning line) and tracking then stops, while the sweep and its results files go
on. wandb is imported lazily so that `import suite.tracking` stays cheap.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import math
import netrc
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ray.tune import Callback

if TYPE_CHECKING:
    import pandas as pd

_LOG = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
# wandb's default server and the W&B cloud API host behind it (netrc entries may use either).
_CLOUD_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")
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


def api_key_configured() -> bool:
    """True when wandb finds credentials without prompting: env var, identity token or netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    base_url = os.environ.get("WANDB_BASE_URL") or _user_settings_base_url()
    hosts = set(_CLOUD_HOSTS)
    if base_url:
        host = urlsplit(base_url).netloc
        if host and host not in _CLOUD_HOSTS and not host.endswith("forge.coreweave.com"):
            hosts = {host}
    path = Path(os.environ.get("NETRC") or "~/.netrc").expanduser()
    try:
        entries = netrc.netrc(str(path))
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any((auth := entries.authenticators(h)) is not None and auth[2] for h in hosts)


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


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return _redact(f"{type(exc).__name__}: {first[0] if first else ''}")


def _plain(value: Any) -> Any:
    """A plain Python value for W&B: NumPy scalars unwrapped (NaN stays NaN, as in the records)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _cell(value: Any) -> Any:
    """A table cell: plain, with every kind of missing value (NaN, None, NA, NaT) as None."""
    value = _plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return value


def default_metric_keys(result: dict) -> dict:
    """The trainable's own record from a Ray result: Ray's bookkeeping keys dropped."""
    return {k: v for k, v in result.items()
            if k not in RAY_RESULT_KEYS and not k.startswith("__") and not isinstance(v, dict)}


def _settings(wandb: Any, mode: str, init_timeout: float, finish_timeout: float) -> Any:
    # The API key stays in the environment only: settings are written to the run's debug logs.
    kwargs: dict[str, Any] = dict(silent=True, quiet=True, console="off", x_disable_stats=True,
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
            why = f"cannot use W&B online ({_short(exc)})"
        _VERDICTS[fingerprint] = why
        return why, why is not None
    return _VERDICTS[fingerprint], False


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


class WandbTrialCallback(Callback):
    """Ray Tune callback streaming every trial to its own W&B run, grouped by sweep.

    One run per trial (id "<sweep>-<trial id>", job_type "trial", config = the trial's flattened
    config) with one history row per reported term, `term` as the step axis. Runs finish on
    complete (exit 0) or error (exit 1). W&B errors are logged once, then tracking stops.

    metric_keys(result) gives the row to log (default: Ray's bookkeeping keys dropped); an empty
    row is not logged. replay(trial_id), optional, gives the rows already recorded for a trial
    (e.g. from terms.parquet): an offline run started for a resumed trial re-logs them first,
    because W&B cannot append to an earlier offline run (see `_carry_over`).
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
        return _sanitize_id(f"{self.sweep_name}-{trial_id}")

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
            self._warn(f"W&B logging disabled for the rest of the sweep ({what}: {_short(exc)})")
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
        run.define_metric("*", step_metric="term")
        if self._starter.mode == "offline":
            self._carry_over(trial_id, run_id, run)
        return run

    def _carry_over(self, trial_id: str, run_id: str, run: Any) -> None:
        """A trial resumed in a new process: re-log the rows recorded for it before.

        W&B cannot append one offline run to another (syncing two folders with one id keeps
        only one), so the new run re-logs the rows of the earlier offline run (merged with
        `replay`'s, which win: wandb-core buffers, so a killed process loses its last rows) and
        the earlier folders leave the sync glob.
        """
        here = Path(run.dir).parent.resolve()
        older = [d for d in _offline_dirs(self.out_dir, run_id) if d.resolve() != here]
        rows: dict[Any, dict] = {}
        if older:
            try:
                rows = {r.get("term"): r for r in read_offline_run(older[-1]).history}
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError):
                rows = {}  # unreadable (a crash mid-write): replay may still have the rows
        if self.replay is not None:
            rows.update({r.get("term"): dict(r) for r in self.replay(trial_id) or []})
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


# -- the summary run ----------------------------------------------------------------------------


def _table(wandb: Any, df: pd.DataFrame) -> Any:
    """A wandb.Table from a data frame: a meaningful index becomes columns, missing -> None."""
    import pandas as pd

    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    data = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return wandb.Table(columns=columns, data=data)


def log_summary(*, out_dir: Path, sweep_name: str, project: str, entity: str | None, mode: str,
                tables: dict[str, pd.DataFrame], images: list[Path], files: list[Path],
                init_timeout: float = 30.0, finish_timeout: float = 300.0) -> None:
    """Log the sweep's summary run (job_type "summary", same group): tables, plots, results files.

    Tables go in as wandb.Table under their names, PNGs as wandb.Image under "plots/<stem>", the
    files as one artifact of type "results". A W&B error is logged (one line), never raised.
    """
    if mode == "disabled":
        return
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    starter = _Starter(mode, Path(out_dir), init_timeout, finish_timeout)
    run = None
    try:
        import wandb

        run_id = _sanitize_id(f"{sweep_name}-summary")
        run = starter.start(project=project, entity=entity, group=sweep_name,
                            job_type="summary", name=run_id, id=run_id)
        if starter.notice:
            _LOG.warning(_redact(starter.notice))
        row: dict[str, Any] = {name: _table(wandb, df) for name, df in tables.items()}
        for path in map(Path, images):
            if path.is_file():
                row[f"plots/{path.stem}"] = wandb.Image(str(path))
        if row:
            run.log(row)
        present = [Path(f) for f in files if Path(f).is_file()]
        if present:
            artifact = wandb.Artifact(_sanitize_id(f"{sweep_name}-results"), type="results")
            for path in present:
                artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact)
        run.finish()
        if starter.mode == "offline":
            here = Path(run.dir).parent
            _supersede(_offline_dirs(Path(out_dir), run_id), keep=here)
    except Exception as exc:  # noqa: BLE001 - W&B must never fail the sweep
        _LOG.warning(f"W&B summary run not logged ({_short(exc)})")
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - already reported once
                pass


# -- reading offline runs back (tests, resumed trials) ------------------------------------------

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode(value: Any) -> Any:
    """JSON values as wandb wrote them, with its non-finite float strings turned back to floats."""
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass
class OfflineRun:
    """What an offline run's transaction log holds, as read by `wandb leet inspect --json`."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # logged keys, "_..." dropped
    raw_history: list[dict[str, Any]] = field(default_factory=list)  # every key, as written
    exit_code: int | None = None  # None: the run never finished
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # name, type, files
    files: list[str] = field(default_factory=list)  # paths under the run's files/ folder


def inspect_records(run_path: Path) -> list[dict[str, Any]]:
    """Every record of a run's .wandb log: `wandb leet inspect --json` (one JSON per line)."""
    proc = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {run_path} failed: {proc.stderr.strip()}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Parse one offline run folder (or its .wandb file) with W&B's own reader."""
    run = OfflineRun(path=Path(run_dir))
    for rec in inspect_records(Path(run_dir)):
        kind = rec.get("type")
        body = rec.get(kind) or {}
        if kind == "run":
            run.run_id = body.get("run_id", "")
            run.name = body.get("display_name", "")
            run.group = body.get("run_group", "")
            run.job_type = body.get("job_type", "")
            run.project = body.get("project", "")
            run.tags = list(body.get("tags", []))
            run.config.update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            run.config.update(body.get("update", {}))
            for key in body.get("remove", []) or []:
                run.config.pop(key, None)
        elif kind == "history":
            item = _decode(body.get("item", {}))
            run.raw_history.append(item)
            run.history.append({k: v for k, v in item.items() if not k.startswith("_")})
        elif kind == "exit":
            run.exit_code = int(body.get("exit_code", 0))
        elif kind == "files":
            run.files += [f["path"] for f in body.get("files", []) if "path" in f]
        elif kind == "artifact":
            contents = body.get("manifest", {}).get("contents", [])
            run.artifacts.append({"name": body.get("name"), "type": body.get("type"),
                                  "files": [c.get("path") for c in contents]})
    run.config.pop("_wandb", None)
    run.config = _decode(run.config)
    return run


def offline_run_dirs(out_dir: Path) -> list[Path]:
    """The sweep's offline run folders that `wandb sync DIR/wandb/offline-run-*` would upload."""
    return sorted(p for p in (Path(out_dir) / "wandb").glob("offline-run-*") if p.is_dir())


def read_table(run: OfflineRun, key: str) -> pd.DataFrame:
    """A wandb.Table logged under key in an offline run, read back from its files/ folder."""
    import pandas as pd

    path = next(r[f"{key}.path"] for r in reversed(run.raw_history) if f"{key}.path" in r)
    with open(run.path / "files" / path) as f:
        payload = json.loads(f.read())  # the table JSON spells missing floats NaN
    return pd.DataFrame(payload["data"], columns=payload["columns"])
