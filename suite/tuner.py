"""Ray Tune wiring of a sweep: Ray start-up, the Tuner (new or restored), the results callback.

Resume uses public Ray API only. The Tuner pickles its callbacks with the experiment, so the
one callback we give it, `SweepCallback`, holds no state at all: it forwards Tune's events to
the driver's *current* `SweepSession` (results writer + optional W&B callback), which
`run_sweep` registers before `fit()`. A restored Tuner therefore talks to this run's writer and
this run's W&B settings, through public Tuner options only (no private tuner attributes,
no swapped callbacks).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from suite.results import ResultsWriter

if TYPE_CHECKING:
    from suite.spec import SweepSpec


@dataclass
class SweepSession:
    """What the driver's callback forwards to during one `fit()`."""

    writer: ResultsWriter
    callbacks: list[Any] = field(default_factory=list)


_ACTIVE: SweepSession | None = None


def activate(session: SweepSession | None) -> None:
    """Make `session` the one `SweepCallback` forwards to (None: forward nowhere)."""
    global _ACTIVE
    _ACTIVE = session


class SweepCallback(tune.Callback):
    """Forwards Tune's trial events (in the driver) to the active session. Stateless, so it
    pickles with the experiment and still reaches this run's writer after `Tuner.restore`."""

    def _each(self, method: str, *args: Any, **info: Any) -> None:
        if _ACTIVE is None:
            return
        for cb in _ACTIVE.callbacks:
            getattr(cb, method)(*args, **info)

    def setup(self, **info: Any) -> None:  # noqa: D102 - Tune hook
        self._each("setup", **info)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.on_start(trial)
        self._each("on_trial_start", iteration, trials, trial, **info)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.on_start(trial)
        self._each("on_trial_restore", iteration, trials, trial, **info)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.on_result(trial, result)
        self._each("on_trial_result", iteration, trials, trial, result, **info)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.on_end(trial, history=_missing_history(_ACTIVE.writer, trial))
        self._each("on_trial_complete", iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            text = error_text(trial)
            full = disk_full_line(text)
            if full is not None:
                # the disk is full for every trial: stop now, with one line, instead of
                # failing each remaining trial in turn (3 minutes and 3,370 log lines)
                _ACTIVE.writer.fail(f"a trial's checkpoint or results ({full})")
            _ACTIVE.writer.on_end(trial, error=failure_reason(text, memory_request(trial)),
                                  history=history_from_checkpoint(trial))
        self._each("on_trial_error", iteration, trials, trial, **info)

    def on_experiment_end(self, trials: list, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.flush()
        self._each("on_experiment_end", trials, **info)


def _missing_history(writer: ResultsWriter, trial: Any) -> list[dict[str, Any]]:
    """The checkpoint's records, read only when the writer lacks a term: a torch.load per
    trial end cost 4.2 s of a quickstart driver (cProfile) for terms it already held."""
    if writer.has_all_terms(trial):
        return []
    return history_from_checkpoint(trial)


def history_from_checkpoint(trial: Any) -> list[dict[str, Any]]:
    """The loop's records in the trial's last checkpoint: terms reported to a driver that was
    killed before flushing them are recovered from there (never from W&B files)."""
    try:
        from ocfb.runs import load_history

        ckpt = trial.checkpoint
        if ckpt is None:
            return []
        with ckpt.as_directory() as d:
            return load_history(d)
    except Exception:  # no checkpoint, or unreadable: the reported terms stand as they are
        return []


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


def oom_crash(err: BaseException) -> bool:
    """Whether Ray Tune's controller died of a worker killed for memory. Ray 2.60's actor
    manager raises RuntimeError('Caught unexpected exception: ...') for an OutOfMemoryError
    of an actor task (only RayActorError and RayTaskError are handled as trial failures), so
    a memory-monitor kill ends `fit()` instead of failing one trial."""
    from ray.exceptions import OutOfMemoryError

    return isinstance(err, RuntimeError) and isinstance(err.__cause__, OutOfMemoryError)


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


# -- Ray setup ----------------------------------------------------------------------------------


def init_ray(address: str | None) -> bool:
    """Join a cluster when an address is given (or RAY_ADDRESS is set), else start local Ray.

    Returns True when this call started a local Ray instance. The temp dir of a local instance
    follows `RAY_TMPDIR` (Ray's documented variable), which `--ray-temp-dir` sets.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": True,
                          "logging_level": "ERROR"}
    if address and address != "local":
        from suite.trainable import START_MARKER_ENV

        if os.environ.get(START_MARKER_ENV):
            # a cluster's workers do not inherit this driver's environment: forward the
            # bench's per-trial marker folder (instrumentation only; unset in normal use)
            kw["runtime_env"] = {"env_vars": {START_MARKER_ENV: os.environ[START_MARKER_ENV]}}
        ray.init(address=address, **kw)
        return False
    from suite.preflight import object_store_bytes

    # Ray's memory monitor kills a worker as an OutOfMemoryError, which Ray 2.60's Tune does
    # not treat as a trial failure: it ends the whole sweep (oom_crash). On a local instance
    # the trials' `memory` requests already keep them within the node, so the kernel's OOM
    # killer is the last resort; it kills a Ray worker first (Ray sets their oom_score_adj to
    # 1000), which Tune records as that trial's failure and the sweep goes on.
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             object_store_memory=object_store_bytes(), **kw)
    return True


def ray_connected() -> bool:
    """Whether this process is already connected to Ray (a caller's instance or cluster)."""
    import ray

    return ray.is_initialized()


def stop_ray() -> None:
    """`ray.shutdown()` now, on the main thread, once the results and summary are written.

    Call it only for a connection this driver made (`ray_connected()` was False before
    `init_ray`): a caller's own Ray instance stays up. Ray's exit hook does the same but first
    sleeps 0.5 s for log lines we do not print. Not on a thread beside the summary: a shutdown
    racing the main thread's release of object refs made Ray's core worker exit the driver with
    status 1 (2 of about 10 sweeps here).
    """
    import ray

    ray.shutdown()


def experiment_path(spec: SweepSpec, out: Path) -> str:
    """Where Ray keeps the experiment state and checkpoints of this sweep."""
    storage = spec.storage_path or str((out / "ray").resolve())
    return storage.rstrip("/") + "/" + spec.name


def _trainable(spec: SweepSpec, out: Path, datasets: dict[tuple, Any]) -> Any:
    from suite.trainable import make_trainable

    # with_parameters puts the datasets into the object store once per sweep; every trial (on
    # any node) gets them from there instead of reloading the file
    fn = tune.with_parameters(make_trainable(spec, cache_dir=str((out / "splits").resolve())),
                              datasets=datasets)
    return tune.with_resources(fn, trial_resources(spec, datasets))


def trial_resources(spec: SweepSpec, datasets: dict[tuple, Any]) -> Any:
    """Per trial: its CPUs and GPUs, and its memory estimate as Ray's `memory` resource, so
    Ray never co-schedules trials that together exceed a node (two 17.6k-item EASE fits
    at 2 GiB each run side by side on 24 GiB; a 40k-item one runs alone or not at all)."""
    from suite.preflight import data_shape, trial_memory

    shapes = {key: data_shape(d) for key, d in datasets.items()}
    cpus, gpus = spec.resources.cpus, spec.resources.gpus

    def request(config: dict[str, Any]) -> tune.PlacementGroupFactory:
        cfg = spec.run_config(config)
        shape = shapes.get(cfg.data.key()) or next(iter(shapes.values()))
        bundle = {"CPU": cpus, "memory": trial_memory(cfg, shape)[0]}
        if gpus:
            bundle["GPU"] = gpus
        return tune.PlacementGroupFactory([bundle])

    return request


def cluster_memory_limit() -> int:
    """The largest `memory` resource of any alive node of the connected cluster."""
    import ray

    return int(max((n.get("Resources", {}).get("memory", 0) for n in ray.nodes()
                    if n.get("Alive")), default=0))


def _search(spec: SweepSpec) -> Any:
    if spec.search.algorithm == "optuna":
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch

        # Seeds are replicates, not a hyperparameter: TPE proposes a configuration and the
        # Repeater runs it once per seed (trial index i -> seeds[i], see SweepSpec.run_config).
        # A Repeater is a Searcher, so TuneConfig's max_concurrent_trials wraps it in a
        # ConcurrencyLimiter.
        return Repeater(OptunaSearch(seed=spec.search.seed), repeat=len(spec.seeds),
                        set_index=True)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # Seeded draws, constant across the seed (and other grid) axes, so every sampled
    # configuration is replicated over every seed. The concurrency cap goes here: Ray 2.60's
    # TuneConfig.max_concurrent_trials only wraps a `Searcher`, and for a SearchAlgorithm like
    # this one it is ignored with a log warning, which is why 4 one-CPU trials with a cap of 1
    # ran two at a time (issue 12, point 9).
    return BasicVariantGenerator(random_state=spec.search.seed, constant_grid_search=True,
                                 max_concurrent=spec.max_concurrent_trials or 0)


def _scheduler(spec: SweepSpec) -> Any:
    if spec.scheduler.type != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    max_t = max(spec.max_terms() + 1, spec.scheduler.grace_period + 1)
    return ASHAScheduler(time_attr="training_iteration", max_t=max_t,
                         grace_period=spec.scheduler.grace_period,
                         reduction_factor=spec.scheduler.reduction_factor)


def build_tuner(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], *,
                restore: bool = False) -> tune.Tuner:
    """The Tuner for a sweep: new, or restored from its experiment folder (public API only)."""
    from suite.spec import param_space

    trainable = _trainable(spec, out, datasets)
    if restore:
        return tune.Tuner.restore(experiment_path(spec, out), trainable=trainable,
                                  resume_unfinished=True, resume_errored=True,
                                  param_space=param_space(spec))
    optuna = spec.search.algorithm == "optuna"
    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.objective.metric, mode=spec.objective.mode, search_alg=_search(spec),
            scheduler=_scheduler(spec), num_samples=spec.tune_num_samples(),
            max_concurrent_trials=spec.max_concurrent_trials if optuna else None,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=spec.storage_path or str((out / "ray").resolve()),
            callbacks=[SweepCallback()], verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def fit(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: ResultsWriter, *,
        restore: bool = False) -> None:
    """Run one Tuner to its end (new, or restored); on a restore, then end in the results the
    trials Ray holds as ended that the writer does not (`end_missed_trials`)."""
    build_tuner(spec, out, datasets, restore=restore).fit()
    if restore:
        end_missed_trials(spec, out, writer)


def end_missed_trials(spec: SweepSpec, out: Path, writer: ResultsWriter) -> list[str]:
    """Record the end of every trial that Ray's experiment state holds as TERMINATED or ERROR
    while the writer still holds it as running or pending (or not at all); returns their ids.

    A trial that ends while the disk is full can lose its results-journal line (ENOSPC) after
    Ray has saved its TERMINATED status; a restored Tuner never reruns it, so without this the
    resumed sweep closed with "1 trial(s) unfinished, 4 of 4 started" (1 of 13 runs of
    test_disk's mid-sweep test). Its terms come from its last checkpoint.
    """
    try:  # Ray's public reader of the experiment state (local folder or storage URI)
        trials = tune.ExperimentAnalysis(experiment_path(spec, out)).trials
    except Exception:  # no saved state: nothing Ray finished without us
        return []
    missed = []
    for trial in trials:
        held = writer.trials.get(trial.trial_id)
        if trial.status not in ("TERMINATED", "ERROR") or (
                held is not None and held["status"] not in ("running", "pending")):
            continue
        if trial.status == "ERROR":
            writer.on_end(trial, error=failure_reason(error_text(trial), memory_request(trial)),
                          history=history_from_checkpoint(trial))
        else:
            writer.on_end(trial, history=history_from_checkpoint(trial))
        missed.append(trial.trial_id)
    return missed


def unreadable_state_files(spec: SweepSpec, out: Path) -> list[Path]:
    """Ray experiment-state JSON files that do not parse (a full disk or a kill mid-write).

    The one place the suite reads Ray's own files: no public Ray call says that a state file
    is truncated (Tuner.restore prints a JSONDecodeError traceback and falls back to an older
    one). Checked against Ray 2.60's names, `experiment_state-<timestamp>.json`; the slow S3
    test (tests/test_object_store.py) fails if Ray stops writing them."""
    import json

    path = experiment_path(spec, out)
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
