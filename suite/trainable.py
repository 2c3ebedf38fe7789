"""The Ray Tune trainable: one trial = one full OCF-B run, reported and checkpointed per term.

It only adapts `ocfb.algorithm.OCFBRun`: every per-term record is forwarded with `tune.report`
together with a checkpoint of the loop's full state, so ASHA can stop a trial after any term, a
failed trial retries from its last term, and `Tuner.restore` resumes an interrupted sweep.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ocfb.config import RunConfig

STATE_FILE = "ocfb_state.pt"
# Set by tests to count trial starts (one marker file per start or restore).
START_MARKER_ENV = "OCFB_TRIAL_START_DIR"


@functools.lru_cache(maxsize=4)
def _load_data(source: str, kwargs_items: tuple):
    # Cached per worker process: reused actors run many trials on the same data.
    from ocfb.data import load_source

    return load_source(source, **dict(kwargs_items))


def load_data_for(cfg: RunConfig):
    """The trial's interactions, loaded once per worker process."""
    return _load_data(cfg.data.source, tuple(sorted(cfg.data.load_kwargs().items())))


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


def make_trainable(spec: Any, cache_dir: str | None = None):
    """Build the function trainable for a sweep (`suite.spec.SweepSpec`).

    The trial's sampled parameters (Tune's `config`) are merged over the sweep's fixed settings
    and validated as a RunConfig by `spec.run_config`; the sweep file was validated up front.
    """

    def ocfb_trial(config: dict[str, Any]) -> None:
        import ray
        import torch
        from ray import tune

        from ocfb.algorithm import OCFBRun
        from ocfb.train import NonFiniteLossError

        cfg: RunConfig = spec.run_config(config)
        if _gpu_share() > 0 and cfg.device in ("cpu", "auto"):
            cfg = cfg.model_copy(update={"device": "cuda"})  # the trial holds a GPU share
        elif _gpu_share() == 0 and cfg.device == "auto":
            # Ray 2.60 no longer hides GPUs from zero-GPU actors: without a share, stay on CPU
            cfg = cfg.model_copy(update={"device": "cpu"})
        # one intra-op thread pool per CPU share, so concurrent trials do not oversubscribe
        torch.set_num_threads(_cpu_share())
        data = load_data_for(cfg)
        run = OCFBRun(cfg, data, cache_dir=cache_dir)
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                run.load(Path(d) / STATE_FILE)
        marker_dir = os.environ.get(START_MARKER_ENV)
        if marker_dir:
            ctx = tune.get_context()
            Path(marker_dir).mkdir(parents=True, exist_ok=True)
            name = f"{ctx.get_trial_id()}-from{run.term + 1}-{uuid.uuid4().hex[:6]}.start"
            (Path(marker_dir) / name).touch()
        node_id = ray.get_runtime_context().get_node_id()
        started = time.time()
        while not run.done:
            try:
                rec = run.step()
            except NonFiniteLossError as err:
                # A diverged trial ends cleanly with a marker record instead of crashing the
                # sweep; the results writer turns it into status "diverged".
                # The objective is NaN so schedulers and searchers see a result without a value.
                tune.report({"term": run.term + 1, spec.objective.metric: float("nan"),
                             "diverged": 1.0, "diverged_reason": str(err),
                             "node_id": node_id, "trial_wall_s": time.time() - started})
                return
            with tempfile.TemporaryDirectory() as d:
                run.save(Path(d) / STATE_FILE)
                tune.report(
                    {**rec, "diverged": 0.0, "node_id": node_id,
                     "trial_wall_s": time.time() - started},
                    checkpoint=tune.Checkpoint.from_directory(d),
                )

    return ocfb_trial
