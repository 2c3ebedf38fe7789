"""Ray Tune wiring of a sweep, as Ray Tune's own examples read: the trainable, the Tuner (new or
restored) and the callback, plus Ray's start-up.

The trainable: one trial = one full OCF-B run. It only adapts the run `ocfb.runs.make_run`
builds (an OCF-B loop, or a reference baseline that reports one record): every per-term record
is forwarded with `tune.report`, with a checkpoint of the loop's full state at the last term and
every `checkpoint_every` terms (at most once per `checkpoint_interval_s`), so ASHA can stop a
trial after any term, a failed trial retries from its last checkpoint, and `Tuner.restore`
resumes an interrupted sweep. The data arrives through Ray's object store, never from a
per-trial reload.

Resume uses public Ray API only. The Tuner pickles its callbacks with the experiment, so the
one callback we give it, `SweepCallback`, holds no state at all: it forwards Tune's events to
the driver's *current* `SweepSession` (results writer + optional W&B callback), which
`run_sweep` registers before `fit()`. A restored Tuner therefore talks to this run's writer and
this run's W&B settings, through public Tuner options only.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from ocfb.config import RunConfig
from ocfb.runs import STATE_FILE, load_history, make_run
from suite.folders import unreadable_state_files
from suite.results import (
    OPEN_STATUSES,
    ResultsWriter,
    disk_full_line,
    error_text,
    failure_reason,
    memory_request,
)

if TYPE_CHECKING:
    from suite.spec import SweepSpec

# -- the trainable (runs in Ray's workers) ------------------------------------------------------

# Set by tests to count trial starts (one marker file per start or restore).
START_MARKER_ENV = "OCFB_TRIAL_START_DIR"


def data_for(cfg: RunConfig, datasets: dict[tuple, Any] | None) -> Any:
    """The trial's interactions: the copy the driver shipped through the object store (so a
    worker node needs no data file), else loaded here (a trial started outside a sweep)."""
    key = cfg.data.key()
    if datasets and key in datasets:
        return datasets[key]
    from ocfb import load_data

    return load_data(cfg)


def _mark(event: str, run_term: int) -> None:
    # test hook: one marker file per trial start or end, holding the wall-clock time
    marker_dir = os.environ.get(START_MARKER_ENV)
    if not marker_dir:
        return
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    # the pid lets a test kill this worker as the kernel's OOM killer would
    name = (f"{tune.get_context().get_trial_id()}-from{run_term}-{uuid.uuid4().hex[:6]}"
            f"-pid{os.getpid()}.{event}")
    (Path(marker_dir) / name).write_text(f"{time.time():.6f}\n")


def _cpu_share() -> int:
    try:
        res = tune.get_context().get_trial_resources()
        cpus = res.required_resources.get("CPU", 1)
    except Exception:  # outside a Tune session
        cpus = 1
    return max(1, int(math.floor(cpus)))


def _gpu_share() -> float:
    try:
        return float(tune.get_context().get_trial_resources().required_resources.get("GPU", 0))
    except Exception:
        return 0.0


def _device_for_share(cfg: RunConfig) -> RunConfig:
    if _gpu_share() > 0 and cfg.device in ("cpu", "auto"):
        return cfg.model_copy(update={"device": "cuda"})  # the trial holds a GPU share
    if _gpu_share() == 0 and cfg.device == "auto":
        # Ray 2.60 no longer hides GPUs from zero-GPU actors: without a share, stay on CPU
        return cfg.model_copy(update={"device": "cpu"})
    return cfg


def _splits_dir(cache_dir: str | None) -> str | None:
    # The driver froze the splits under DIR/splits; a worker node without that folder (no
    # shared filesystem) rebuilds them, identically, from the shipped data and the seed.
    if cache_dir is None or not Path(cache_dir).parent.is_dir():
        return None
    return cache_dir


def checkpoint_due(term: int, done: bool, every: int, since_s: float, interval_s: float) -> bool:
    """Whether a trial checkpoints after `term` (0-based): always after its last term, else on
    every `every`-th term once `interval_s` seconds passed since its last checkpoint (or its
    start). Resume is exact from any term, so this only sets how much work a kill re-runs."""
    return done or ((term + 1) % every == 0 and since_s >= interval_s)


def _release(run: Any) -> None:
    """Free a finished run's large arrays before this (reused) worker starts its next trial:
    an EASE run holds n_items^2 weights (1.24 GB at 17.6k items) that the next trial's
    estimate does not count. numpy returns such arrays to the OS when their last reference
    goes, so dropping them and collecting cycles is enough."""
    import gc

    release = getattr(run, "release", None)
    if release is not None:
        release()
    gc.collect()


def make_trainable(spec: SweepSpec, cache_dir: str | None = None):
    """Build the function trainable for a sweep (`suite.spec.SweepSpec`).

    The trial's sampled parameters (Tune's `config`) are merged over the sweep's fixed settings
    and validated as a RunConfig by `spec.run_config`; the sweep file was validated up front.
    Wrap it in `tune.with_parameters(..., datasets=...)` to ship the data once per sweep.
    A checkpoint is written at the last term and otherwise as `checkpoint_due` says (every
    `checkpoint_every` terms, at most once per `checkpoint_interval_s`); a trial restored from
    term t re-runs the terms after t exactly (the loop's RNG states are saved).
    """
    every = max(1, int(getattr(spec, "checkpoint_every", 1) or 1))
    interval = float(getattr(spec, "checkpoint_interval_s", 0.0))

    def ocfb_trial(config: dict[str, Any], datasets: dict[tuple, Any] | None = None) -> None:
        import ray
        import torch

        from ocfb.train import NonFiniteLossError  # DivergedError (loss > max_loss) is one

        cfg = _device_for_share(spec.run_config(config))
        # one intra-op thread pool per CPU share, so concurrent trials do not oversubscribe
        torch.set_num_threads(_cpu_share())
        run = make_run(cfg, data_for(cfg, datasets), cache_dir=_splits_dir(cache_dir))
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                run.load(Path(d) / STATE_FILE)
        _mark("start", run.term + 1)
        node_id = ray.get_runtime_context().get_node_id()
        started = last_ckpt = time.time()
        while not run.done:
            try:
                rec = run.step()
            except NonFiniteLossError as err:
                # A diverged trial ends cleanly with a marker record instead of crashing the
                # sweep; the results writer turns it into status "diverged". The objective is
                # NaN so schedulers and searchers see a result without a value.
                tune.report({"term": run.term + 1, spec.objective.metric: float("nan"),
                             "diverged": 1.0, "diverged_reason": str(err),
                             "node_id": node_id, "trial_wall_s": time.time() - started})
                break
            extra = {"diverged": 0.0, "node_id": node_id, "trial_wall_s": time.time() - started}
            if checkpoint_due(int(rec["term"]), run.done, every, time.time() - last_ckpt,
                              interval):
                with tempfile.TemporaryDirectory() as d:
                    run.save(Path(d) / STATE_FILE)
                    tune.report({**rec, **extra}, checkpoint=tune.Checkpoint.from_directory(d))
                last_ckpt = time.time()
            else:
                tune.report({**rec, **extra})
        _mark("end", run.term)
        _release(run)

    return ocfb_trial


# -- the driver's side: the callback, Ray, the Tuner ---------------------------------------------


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
            _record_end(_ACTIVE.writer, trial)
        self._each("on_trial_complete", iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            text = error_text(trial)
            full = disk_full_line(text)
            if full is not None:
                # the disk is full for every trial: stop now, with one line, instead of
                # failing each remaining trial in turn (3 minutes and 3,370 log lines)
                _ACTIVE.writer.fail(f"a trial's checkpoint or results ({full})")
            _record_end(_ACTIVE.writer, trial, error=text)
        self._each("on_trial_error", iteration, trials, trial, **info)

    def on_experiment_end(self, trials: list, **info: Any) -> None:  # noqa: D102
        if _ACTIVE is not None:
            _ACTIVE.writer.flush()
        self._each("on_experiment_end", trials, **info)


def _record_end(writer: ResultsWriter, trial: Any, error: str | None = None) -> None:
    """A trial's end in the results: completed (its checkpoint's records read only when the
    writer lacks a term: a torch.load per trial end cost 4.2 s of a quickstart driver, by
    cProfile, for terms it already held), or failed with `error` (Ray's error text) as one
    line naming a memory kill and the trial's estimate."""
    if error is None:
        writer.on_end(trial, history=[] if writer.has_all_terms(trial)
                      else history_from_checkpoint(trial))
    else:
        writer.on_end(trial, error=failure_reason(error, memory_request(trial)),
                      history=history_from_checkpoint(trial))


def history_from_checkpoint(trial: Any) -> list[dict[str, Any]]:
    """The loop's records in the trial's last checkpoint: terms reported to a driver that was
    killed before flushing them are recovered from there (never from W&B files)."""
    try:
        ckpt = trial.checkpoint
        if ckpt is None:
            return []
        with ckpt.as_directory() as d:
            return load_history(d)
    except Exception:  # no checkpoint, or unreadable: the reported terms stand as they are
        return []


def oom_crash(err: BaseException) -> bool:
    """Whether Ray Tune's controller died of a worker killed for memory. Ray 2.60's actor
    manager raises RuntimeError('Caught unexpected exception: ...') for an OutOfMemoryError
    of an actor task (only RayActorError and RayTaskError are handled as trial failures), so
    a memory-monitor kill ends `fit()` instead of failing one trial."""
    from ray.exceptions import OutOfMemoryError

    return isinstance(err, RuntimeError) and isinstance(err.__cause__, OutOfMemoryError)


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
    # with_parameters puts the datasets into the object store once per sweep; every trial (on
    # any node) gets them from there instead of reloading the file
    fn = tune.with_parameters(make_trainable(spec, cache_dir=str((out / "splits").resolve())),
                              datasets=datasets)
    return tune.with_resources(fn, trial_resources(spec, datasets))


def trial_resources(spec: SweepSpec, datasets: dict[tuple, Any]) -> Any:
    """Per trial: its CPUs and GPUs, and its memory estimate as Ray's `memory` resource, so
    Ray never co-schedules trials that together exceed a node (two 17.6k-item EASE fits
    at 2 GiB each run side by side on 24 GiB; a 40k-item one runs alone or not at all)."""
    from suite.preflight import shape_lookup, trial_memory

    shape = shape_lookup(datasets)
    cpus, gpus = spec.resources.cpus, spec.resources.gpus

    def request(config: dict[str, Any]) -> tune.PlacementGroupFactory:
        cfg = spec.run_config(config)
        bundle = {"CPU": cpus, "memory": trial_memory(cfg, shape(cfg))[0]}
        if gpus:
            bundle["GPU"] = gpus
        return tune.PlacementGroupFactory([bundle])

    return request


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
    from suite.preflight import checkpoints_kept
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
            checkpoint_config=tune.CheckpointConfig(num_to_keep=checkpoints_kept(spec)),
        ),
    )


def fit(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: ResultsWriter, *,
        restore: bool = False) -> None:
    """Run one Tuner to its end (new, or restored); on a restore, then end in the results the
    trials Ray holds as ended that the writer does not (`end_missed_trials`)."""
    if restore:
        set_aside_truncated_state(spec, out)
    build_tuner(spec, out, datasets, restore=restore).fit()
    if restore:
        end_missed_trials(spec, out, writer)


def set_aside_truncated_state(spec: SweepSpec, out: Path) -> None:
    """Move Ray's truncated experiment-state files of this experiment aside before a restore:
    Ray would print a JSONDecodeError traceback and fall back to an older state. Here, so each
    tune-then-confirm stage's experiment is checked too (the resume command checked only the
    sweep's own name, under which a staged sweep keeps no state)."""
    for bad in unreadable_state_files(experiment_path(spec, out)):
        aside = bad.with_name(bad.name + ".truncated")
        os.replace(bad, aside)
        print(f"note: Ray's state file {bad.name} is truncated (the disk filled or the driver "
              f"died while writing it); moved it to {aside.name} and resuming from the trials' "
              f"checkpoints and {out / 'terms.parquet'}", file=sys.stderr)


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
                held is not None and held["status"] not in OPEN_STATUSES):
            continue
        _record_end(writer, trial, error=error_text(trial) if trial.status == "ERROR" else None)
        missed.append(trial.trial_id)
    return missed
