"""Object-store storage for real: a smoke sweep with `storage_path: s3://bucket/prefix` against
an S3-compatible server on loopback (moto's server mode), its driver SIGKILLed mid-sweep and
resumed from the bucket. The sweep runs through deploy/run-sweep.sh, the script the KubeRay
RayJob uses: it adds storage_path from OCFB_STORAGE_PATH and copies the driver's results folder
to OCFB_RESULTS_URI. Credentials reach every process through the environment only (pyarrow and
boto3 read AWS_ENDPOINT_URL and the keys from there); the sweep file holds none.

Only 127.0.0.1 is used, and only processes this test started are killed, by id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from suite.results import ended_trials
from tests.raytools import (
    _procs,
    descendants,
    kill_all,
    ray_processes,
    state_names_running_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "suite.cli"]
BUCKET = "ocfb-test"
NAME = "s3resume"
SPACE = {"threshold": {"grid": [0.2, 0.4, 0.6, 0.8]}}
# --smoke applies these: enough terms that the kill lands inside a running trial
SMOKE = {"terms": 6, "epochs": 4, "epochs_per_term": 2, "batch_size": 64}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with an empty bucket; the environment that reaches it."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    try:
        _client(boto3, env).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.stop()


def _client(boto3, env: dict[str, str]):  # noqa: ANN001, ANN202 - boto3 client
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def _keys(env: dict[str, str], prefix: str) -> list[str]:
    import boto3

    pages = _client(boto3, env).get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                         Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _sweep_file(path: Path, out: Path, name: str) -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "data": {"source": "synthetic-influencer"}, "protocol": "holdout",
        "fixed": {"model": "mlp", "full_ranking": "off"}, "space": SPACE, "seeds": [0],
        "smoke": SMOKE, "search": {"algorithm": "grid"},
        "objective": {"metric": "val_hr@10", "mode": "max"}, "resources": {"cpus": 1},
        "max_concurrent_trials": 1, "wandb": {"mode": "disabled"}, "output": str(out),
        "checkpoint_interval_s": 0,  # a checkpoint per term: the kill lands after one
    }))
    return path


def _completed(out: Path) -> set[str]:
    return {t for t, s in ended_trials(out).items() if s == "completed"}


def _running_trial_checkpointed(env: dict[str, str], out: Path) -> bool:
    """Ray's experiment state in the bucket names a checkpoint of term 1 or later of a trial
    that has not finished (so resume restores it from there)."""
    import boto3

    client = _client(boto3, env)
    texts = []
    for key in _keys(env, f"ray/{NAME}/"):
        if key.count("/") != 2 or not key.rsplit("/", 1)[1].startswith("experiment_state-"):
            continue
        try:
            texts.append(client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())
        except client.exceptions.NoSuchKey:  # replaced between the listing and the read
            continue
    return state_names_running_checkpoint(texts, _completed(out))


def _wait_for(pred, timeout: float, what: str, poll: float = 0.2) -> None:  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_driver(script: subprocess.Popen, temp: str) -> None:
    """SIGKILL the sweep driver (the script's python child) and its Ray processes; the script
    itself goes on and copies the partial results, as it does on a cluster."""
    procs = _procs()
    drivers = [p for p in descendants({script.pid}, procs)
               if p != script.pid and p in procs and "ocfb-suite sweep" in procs[p][1]]
    assert drivers, "the sweep driver is not running"
    # the script's own command line names the temp dir too: it must survive to copy results
    pids = ray_processes(temp, roots=set(drivers), spare={script.pid})
    for pid in drivers:
        os.kill(pid, signal.SIGKILL)
    # the second scan catches Ray processes started meanwhile; by then the script may have
    # started its results copy, which is its child and must live
    kill_all(pids | ray_processes(temp, spare={script.pid}))


@pytest.mark.slow
def test_a_wrapper_spared_from_the_kill_keeps_the_children_it_starts_later() -> None:
    """The CI failure this guards: the driver was killed, run-sweep.sh started its results copy,
    and a second scan for the temp dir (which the script's own command line names) killed the
    copy as the script's descendant, so nothing reached the bucket."""
    marker = f"/tmp/ocfbspare-{uuid.uuid4().hex[:8]}"
    ray_like = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    wrapper = subprocess.Popen(["bash", "-c", "sleep 60 & wait", "run-sweep", marker])
    try:
        deadline = time.time() + 10
        while not descendants({wrapper.pid}) - {wrapper.pid} and time.time() < deadline:
            time.sleep(0.05)
        copy = descendants({wrapper.pid}) - {wrapper.pid}
        assert copy, "the wrapper's child did not start"
        assert copy <= ray_processes(marker), "without spare the child is collected too"
        spared = ray_processes(marker, spare={wrapper.pid})
        assert ray_like.pid in spared and not spared & (copy | {wrapper.pid}), spared
    finally:
        kill_all(descendants({wrapper.pid, ray_like.pid}))


@pytest.mark.slow
def test_s3_storage_kill_resume_equals_local(tmp_path: Path, s3_env: dict[str, str]) -> None:
    out = tmp_path / "s3"
    markers = tmp_path / "starts"
    temp = f"/tmp/ocfbs3-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **s3_env, "PYTHONPATH": str(REPO), "OCFB_TRIAL_START_DIR": str(markers),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "OCFB_STORAGE_PATH": f"s3://{BUCKET}/ray", "OCFB_RESULTS_URI": f"s3://{BUCKET}/results"}
    env.pop("RAY_ADDRESS", None)
    cfg = _sweep_file(tmp_path / "s3.yaml", out, NAME)
    assert "storage_path" not in cfg.read_text() and "testing" not in cfg.read_text()
    script = subprocess.Popen(["bash", str(REPO / "deploy" / "run-sweep.sh"), str(cfg), str(out),
                               "--smoke", "--wandb", "disabled", "--ray-temp-dir", temp],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(_completed(out)) >= 1, 300, "a finished trial")
        _wait_for(lambda: _running_trial_checkpointed(s3_env, out), 300,
                  "a running trial's checkpoint of term >= 1 in the bucket")
        _kill_driver(script, temp)
        _, err = script.communicate(timeout=120)
    finally:
        if script.poll() is None:
            kill_all(descendants({script.pid}))
        kill_all(ray_processes(temp))
    assert script.returncode != 0, "a killed sweep must not exit 0"
    # the script copied the driver's partial results to the bucket, Ray's folder left out
    copied = _keys(s3_env, "results/")
    assert "results/sweep.json" in copied and "results/trials.parquet" in copied, (copied, err)
    assert not any(k.startswith("results/ray/") for k in copied)
    done_before = _completed(out)
    assert 1 <= len(done_before) < 4

    p = subprocess.run([*CLI, "resume", str(out), "--ray-temp-dir", temp + "r"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    kill_all(ray_processes(temp + "r"))
    assert p.returncode == 0, p.stderr[-3000:]

    # local results on the driver; each trial once, all completed
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 4 and trials.trial_id.is_unique and set(trials.status) == {"completed"}
    terms = pd.read_parquet(out / "terms.parquet")
    assert len(terms) == 4 * (SMOKE["terms"] + 1)
    assert not terms.duplicated(["trial_id", "term"]).any()
    assert (out / "summary.md").is_file()
    assert not (out / "ray").exists(), "checkpoints went to the local disk, not the bucket"
    starts = [m.name for m in markers.iterdir() if m.suffix == ".start"]
    for tid in done_before:  # finished trials are not rerun
        assert sum(s.startswith(tid) for s in starts) == 1, starts
    assert any("-from0-" not in s for s in starts), f"nothing resumed from a checkpoint: {starts}"

    _assert_bucket_holds_ray_state(s3_env, trials)
    _assert_equals_uninterrupted_local_sweep(tmp_path, env, temp, trials)


def _assert_bucket_holds_ray_state(s3_env: dict[str, str], trials: pd.DataFrame) -> None:
    """Ray's experiment state and every trial's checkpoints are in the bucket, one folder a
    trial, each with its last term's checkpoint."""
    keys = _keys(s3_env, f"ray/{NAME}/")
    top = {k.split("/")[2] for k in keys}
    assert any(n.startswith("experiment_state") and n.endswith(".json") for n in top), top
    assert "tuner.pkl" in top, top
    trial_dirs = {k.split("/")[2] for k in keys if "/checkpoint_" in k}
    assert len(trial_dirs) == 4
    for tid in trials.trial_id:
        own = [d for d in trial_dirs if tid in d]
        assert len(own) == 1, (tid, trial_dirs)
        last = f"checkpoint_{SMOKE['terms']:06d}"
        assert any(k.endswith(f"{own[0]}/{last}/ocfb_state.pt") for k in keys), (tid, last)



def _assert_equals_uninterrupted_local_sweep(tmp_path: Path, env: dict[str, str], temp: str,
                                             trials: pd.DataFrame) -> None:
    """The resumed S3 sweep's results equal the same sweep run on local storage, uninterrupted."""
    ref_out = tmp_path / "local"
    ref_cfg = _sweep_file(tmp_path / "local.yaml", ref_out, NAME + "-local")
    p = subprocess.run([*CLI, "sweep", str(ref_cfg), "--smoke", "--out", str(ref_out),
                        "--ray-temp-dir", temp + "f"], cwd=REPO,
                       env={**env, "OCFB_TRIAL_START_DIR": str(tmp_path / "ref-starts")},
                       capture_output=True, text=True, timeout=600)
    kill_all(ray_processes(temp + "f"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert (ref_out / "ray" / (NAME + "-local")).is_dir()
    ref = pd.read_parquet(ref_out / "trials.parquet").set_index("config.threshold")
    got = trials.set_index("config.threshold")
    cols = [c for c in ref.columns if c.startswith(("final.", "best.")) and "time_" not in c]
    assert len(cols) > 10
    for th in ref.index:
        np.testing.assert_allclose(got.loc[th, cols].to_numpy(float),
                                   ref.loc[th, cols].to_numpy(float), rtol=1e-6,
                                   err_msg=f"threshold {th}")
