"""A real two-node Ray cluster on this machine: `sweep --address` places trials on both nodes,
the results record each trial's node, and trials run where the data file does not exist.

No shared filesystem is assumed: the sweep reads its data from a CSV file that the test moves
away as soon as the driver has loaded it (the driver writes sweep.json after its pre-flight
load, before it joins Ray), so no trial on either node can open it. Trials get the data through
Ray's object store (`tune.with_parameters`); a trial that fell back to reading the file would
fail and the sweep would not complete.

Only the processes this test starts are stopped, by id: a plain `ray stop` would kill every Ray
process on the host. RAY_AUTH_MODE=disabled is set for this local test cluster only; the
deploy recipes keep token authentication on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.raytools import _procs, descendants, kill_all

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _new_ray_pids(before: set[int], marker: str) -> set[int]:
    procs = _procs()
    new = {p for p in procs if p not in before}
    roots = {p for p in new if marker in procs[p][1] or "ray" in procs[p][1]
             or "raylet" in procs[p][1] or "gcs_server" in procs[p][1]}
    return {p for p in descendants(roots, procs) if p != os.getpid()}


def _data_file(path: Path) -> Path:
    """The built-in paper-shaped data written as a CSV file (string ids, a timestamp)."""
    from ocfb.data import load_source

    d = load_source("synthetic-influencer", n_users=407, n_items=462, n_interactions=2000,
                    seed=0)
    pd.DataFrame({"user": [f"u{u}" for u in d.user_ids[d.users]],
                  "item": [f"i{i}" for i in d.item_ids[d.items]],
                  "ts": d.timestamps}).to_csv(path, index=False)
    return path


def _hide_when_loaded(data: Path, out: Path, proc: subprocess.Popen,
                      timeout: float) -> tuple[Path, float]:
    """Move `data` away once the driver has loaded it (its sweep.json exists); returns where
    it went and when."""
    deadline = time.time() + timeout
    while not (out / "sweep.json").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "the driver never wrote sweep.json"
        time.sleep(0.02)
    hidden = data.with_name(data.name + ".hidden")
    os.replace(data, hidden)
    return hidden, time.time()


def _cluster_sweep_file(path: Path, data: Path, out: Path) -> Path:
    """Four one-CPU MLP trials over `data` (a file only the driver's folder holds)."""
    path.write_text(yaml.safe_dump({
        "name": "cluster",
        "data": {"source": str(data), "user_col": "user", "item_col": "item",
                 "timestamp_col": "ts"},
        "protocol": "holdout",
        "fixed": {"model": "mlp", "terms": 3, "epochs": 8, "epochs_per_term": 2,
                  "full_ranking": "off"},
        "space": {"threshold": {"grid": [0.3, 0.5, 0.7, 0.9]}},
        "seeds": [0],
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_hr@10", "mode": "max"},
        "resources": {"cpus": 1},
        "wandb": {"mode": "disabled"},
        "output": str(out),
    }))
    return path


@pytest.mark.slow
def test_sweep_on_two_node_cluster_without_the_data_file(tmp_path: Path) -> None:
    before = set(_procs())
    temp = f"/tmp/ocfbc-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    markers = tmp_path / "starts"
    # trial start markers (suite.tuner's test hook) prove every trial began after the hiding
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO),
           "OCFB_TRIAL_START_DIR": str(markers)}
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    (tmp_path / "driver-only").mkdir()
    data = _data_file(tmp_path / "driver-only" / "interactions.csv")
    worker_dir = tmp_path / "worker-node"
    worker_dir.mkdir()
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp}",
                        "--include-dashboard=false", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        # the second node starts elsewhere: its working dir holds no data and no results
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                       cwd=worker_dir, check=True, capture_output=True, timeout=120)
        out = tmp_path / "out"
        cfg = _cluster_sweep_file(tmp_path / "cluster.yaml", data, out)
        proc = subprocess.Popen([sys.executable, "-m", "suite.cli", "sweep", str(cfg),
                                 "--address", f"127.0.0.1:{port}"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            hidden, hidden_at = _hide_when_loaded(data, out, proc, timeout=300)
            _, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-3000:]
        assert not data.exists() and hidden.exists()
        starts = [float(m.read_text()) for m in markers.glob("*.start")]
        assert len(starts) == 4 and min(starts) > hidden_at, (starts, hidden_at)
        trials = pd.read_parquet(out / "trials.parquet")
        assert len(trials) == 4
        assert set(trials.status) == {"completed"}, trials[["status", "error"]]
        # one CPU per node and one CPU per trial: both nodes must have run trials
        assert trials.node_id.nunique() == 2, trials[["trial_id", "node_id"]]
        assert trials.node_id.str.fullmatch(r"[0-9a-f]{56}").all(), trials.node_id
        terms = pd.read_parquet(out / "terms.parquet")
        assert len(terms) == 4 * 4 and terms["val_hr@10"].between(0, 1).all()
    finally:
        kill_all(_new_ray_pids(before, temp))
