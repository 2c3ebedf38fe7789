"""The Ray Tune trainable: one trial = one full OCF-B run, reported per term, checkpointed as
`checkpoint_due` says.

It only adapts the run `ocfb.runs.make_run` builds (an OCF-B loop, or a reference baseline that
reports one record): every per-term record is forwarded with `tune.report`, with a checkpoint of
the loop's full state at the last term and every `checkpoint_every` terms (at most once per
`checkpoint_interval_s`), so ASHA can stop a trial
after any term, a failed trial retries from its last checkpoint, and `Tuner.restore` resumes an
interrupted sweep. The data arrives through Ray's object store, never from a per-trial reload.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocfb.config import RunConfig
from ocfb.runs import STATE_FILE, make_run

if TYPE_CHECKING:
    from suite.spec import SweepSpec

# Set by tests to count trial starts (one marker file per start or restore).
START_MARKER_ENV = "OCFB_TRIAL_START_DIR"


def data_for(cfg: RunConfig, datasets: dict[tuple, Any] | None) -> Any:
    """The trial's interactions: the copy the driver shipped through the object store (so a
    worker node needs no data file), else loaded here (a trial started outside a sweep)."""
    key = cfg.data.key()
    if datasets and key in datasets:
        return datasets[key]
    from ocfb.data import load_source

    return load_source(cfg.data.source, **cfg.data.load_kwargs())


def _mark(event: str, run_term: int) -> None:
    # test hook: one marker file per trial start or end, holding the wall-clock time
    marker_dir = os.environ.get(START_MARKER_ENV)
    if not marker_dir:
        return
    from ray import tune

    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    # the pid lets a test kill this worker as the kernel's OOM killer would
    name = (f"{tune.get_context().get_trial_id()}-from{run_term}-{uuid.uuid4().hex[:6]}"
            f"-pid{os.getpid()}.{event}")
    (Path(marker_dir) / name).write_text(f"{time.time():.6f}\n")


def _cpu_share() -> int:
    try:
        from ray import tune

        res = tune.get_context().get_trial_resources()
        cpus = res.required_resources.get("CPU", 1)
    except Exception:  # outside a Tune session
        cpus = 1
    return max(1, int(math.floor(cpus)))


def _gpu_share() -> float:
    try:
        from ray import tune

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
        from ray import tune

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
