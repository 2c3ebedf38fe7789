"""Memory: estimates, the pre-flight refusal, Ray's `memory` requests, a released EASE run, and
a trial killed for memory recorded as a failure while the sweep goes on (issue 23)."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ocfb.baselines import BaselineRun
from ocfb.config import make_run_config
from ocfb.data import synthetic_influencer
from ocfb.footprint import GB, estimate
from suite.results import ended_trials, failure_reason
from tests.raytools import kill_all, ray_processes
from tests.test_sweep import CLI, REPO, sweep_yaml


def test_ease_estimate_grows_with_items_squared_and_names_it() -> None:
    cfg = make_run_config({"model": "ease"})
    small, big = estimate(cfg, 1892, 8_000, 92_834), estimate(cfg, 1892, 16_000, 92_834)
    # 4 x (16k^2 - 8k^2) bytes apart: only the n^2 matrix depends on the item count
    assert big.bytes - small.bytes == 4 * (16_000**2 - 8_000**2)
    assert "16,000 items^2 x 4 B = 0.95 GB" in big.detail
    # measured 1.75 GB peak at 17,632 items (module docstring): the estimate covers it
    assert 1.75 <= estimate(cfg, 1892, 17_632, 92_834).gb <= 2.5


def test_neural_estimate_counts_negatives() -> None:
    few = estimate(make_run_config({"model": "neumf", "negatives": "2x"}), 943, 1682, 100_000)
    many = estimate(make_run_config({"model": "neumf", "negatives": "8x"}), 943, 1682, 100_000)
    assert many.bytes - few.bytes == 320 * 600_000  # 6x more negatives, BYTES_PER_CELL each
    assert "900,000 training cells (800,000 negatives)" in many.detail


def test_failure_reason_names_memory_kills_and_the_estimate() -> None:
    oom = ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on "
           "memory.\nMemory on the node (IP: 10.0.0.1, ID: ab) was 22.44GB / 23.54GB (0.95), "
           "which exceeds the memory usage threshold")
    assert failure_reason(oom, 2 * GB) == (
        "killed for memory by Ray's memory monitor at 22.44GB / 23.54GB (0.95); its estimate "
        "was 2.0 GiB")
    died = "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing"
    assert failure_reason(died, None).startswith("worker killed (SIGKILL")
    assert failure_reason("ValueError: boom", GB) == "ValueError: boom"


def test_released_ease_run_returns_its_n2_memory() -> None:
    # two EASE fits in one process (a reused Ray worker): after release, the first run's
    # 4 x 3000^2 = 36 MB of weights are gone before the second fits
    data = synthetic_influencer(200, 3000, 4000, seed=0)
    cfg = make_run_config({"model": "ease", "l2": 50.0, "negatives": 500, "n_candidates": 20})
    # counted with tracemalloc (numpy reports its buffers to it), not RSS: in a long test
    # process the allocator reuses freed pages, and RSS then grew by 5 MB for a 36 MB fit
    n2_kb = 4 * 3000**2 // 1024
    runs = []
    tracemalloc.start()
    try:
        for _ in range(2):
            before = tracemalloc.get_traced_memory()[0] // 1024
            run = BaselineRun(cfg, data)
            run.step()
            held = tracemalloc.get_traced_memory()[0] // 1024 - before
            run.release()
            gc.collect()
            freed = held - (tracemalloc.get_traced_memory()[0] // 1024 - before)
            runs.append(run)
            assert held >= 0.9 * n2_kb, f"the fit should hold the n^2 weights, held {held} kB"
            assert freed >= 0.9 * n2_kb, f"release freed {freed} kB of {n2_kb} kB"
    finally:
        tracemalloc.stop()
    metrics = [{k: v for k, v in r.history[0].items() if not k.startswith("time_")}
               for r in runs]
    np.testing.assert_equal(metrics[0], metrics[1])  # the same run, twice (NaNs equal)


def _write_memory_sweep(tmp: Path, out: Path, n_items: int) -> Path:
    return sweep_yaml(tmp / "ease.yaml", out, name="ease-mem",
                      space={"model": {"grid": ["ease"]}, "l2": {"grid": [10.0, 100.0]}},
                      fixed={"negatives": 500, "n_candidates": 20},
                      extra={"data": {"source": "synthetic-influencer", "n_users": 200,
                                      "n_items": n_items, "n_interactions": 4000,
                                      "data_seed": 0}})


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_sweep_refuses_a_trial_larger_than_the_machine_before_ray(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from suite import preflight
    from suite.cli import main

    out = tmp_path / "out"
    cfg = _write_memory_sweep(tmp_path, out, 3000)
    monkeypatch.setattr(preflight, "local_memory_limit", lambda store: GB // 4)
    monkeypatch.setattr("suite.tuner.init_ray", lambda *a: pytest.fail("Ray started"))
    assert main(["sweep", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "model ease: one trial needs an estimated 1.0 GiB (EASE: 3,000 items^2" in err
    assert "this machine offers at most 0.2 GiB per trial" in err
    assert not out.exists()


def _kill_on_start(markers: Path, victim: str, kills: int, proc: subprocess.Popen,
                   deadline: float) -> int:
    """SIGKILL `victim`'s worker at each of its first `kills` starts (as the kernel's OOM
    killer would); returns how many kills were made."""
    done: set[str] = set()
    while len(done) < kills and proc.poll() is None and time.time() < deadline:
        for m in markers.glob(f"{victim}-from*.start") if markers.is_dir() else []:
            if m.name not in done:
                done.add(m.name)
                os.kill(int(m.stem.rsplit("-pid", 1)[1]), signal.SIGKILL)
        time.sleep(0.05)
    return len(done)


@pytest.mark.slow
def test_a_killed_worker_fails_its_trial_and_the_sweep_goes_on(tmp_path: Path) -> None:
    out, markers = tmp_path / "out", tmp_path / "marks"
    cfg = sweep_yaml(tmp_path / "k.yaml", out, name="killed",
                     space={"threshold": {"grid": [0.2, 0.5, 0.8]}},
                     fixed={"model": "mlp", "terms": 6, "epochs": 4, "epochs_per_term": 2,
                            "batch_size": 128}, extra={"max_concurrent_trials": 1})
    temp = f"/tmp/ocfbt-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OCFB_TRIAL_START_DIR": str(markers), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*CLI, "sweep", str(cfg), "--ray-temp-dir", temp], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first trial is killed at its start and at its one retry (max_failures: 1)
        assert _kill_on_start(markers, "*_00000", 2, proc, time.time() + 300) == 2
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(ray_processes(temp))
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "ocfb-suite resume" in err
    trials = pd.read_parquet(out / "trials.parquet").sort_values("trial_id")
    assert list(trials.status) == ["error", "completed", "completed"]
    assert trials.error.iloc[0].startswith("worker killed (SIGKILL"), trials.error.iloc[0]
    assert re.search(r"its estimate was \d+\.\d GiB$", trials.error.iloc[0])
    assert (out / "summary.md").is_file()
    # resume re-runs the failed trial and completes the sweep
    p = subprocess.run([*CLI, "resume", str(out), "--ray-temp-dir", temp], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=600)
    kill_all(ray_processes(temp))
    assert p.returncode == 0, p.stderr[-3000:]
    assert set(ended_trials(out).values()) == {"completed"}


@pytest.mark.slow
def test_two_ease_trials_too_big_together_never_overlap(tmp_path: Path) -> None:
    # a local Ray whose `memory` resource holds one EASE trial's request but not two: Ray
    # must run them one after the other although two CPUs are free
    out, markers = tmp_path / "out", tmp_path / "marks"
    cfg = _write_memory_sweep(tmp_path, out, 3000)
    from suite.preflight import trial_memory

    need = trial_memory(make_run_config({"model": "ease"}), (200, 3000, 4000))[0]
    script = (
        "import os, ray, sys\n"
        f"ray.init(address='local', num_cpus=2, _memory={int(need * 1.5)}, "
        "include_dashboard=False, log_to_driver=False)\n"
        "from suite.cli import main\n"
        f"sys.exit(main(['sweep', {str(cfg)!r}]))\n"
    )
    temp = f"/tmp/ocfbt-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OCFB_TRIAL_START_DIR": str(markers), "PYTHONPATH": str(REPO),
           "RAY_TMPDIR": temp}
    p = subprocess.run([CLI[0], "-c", script], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
    kill_all(ray_processes(temp))
    assert p.returncode == 0, p.stderr[-3000:]
    spans = {}
    for m in markers.iterdir():
        spans.setdefault(m.name.split("-from")[0], {})[m.suffix] = float(m.read_text())
    (a0, a1), (b0, b1) = sorted((s[".start"], s[".end"]) for s in spans.values())
    assert b0 >= a1, f"two EASE trials overlapped: {a0:.2f}-{a1:.2f} and {b0:.2f}-{b1:.2f}"
    assert yaml.safe_load(cfg.read_text())["resources"]["cpus"] == 1
    assert np.isfinite(pd.read_parquet(out / "trials.parquet")["best.val_hr@10"]).all()
