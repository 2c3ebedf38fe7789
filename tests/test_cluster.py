"""A real two-node Ray cluster on this machine: `sweep --address` places trials on both nodes.

Only the processes this test starts are stopped, by id: a plain `ray stop` would kill every Ray
process on the host.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


@pytest.mark.slow
def test_sweep_on_two_node_cluster(tmp_path: Path) -> None:
    before = set(_procs())
    temp = f"/tmp/ocfbc-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp}",
                        "--include-dashboard=false", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                       check=True, capture_output=True, timeout=120)
        out = tmp_path / "out"
        cfg = tmp_path / "cluster.yaml"
        cfg.write_text(yaml.safe_dump({
            "name": "cluster",
            "data": {"source": "synthetic-influencer"},
            "protocol": "holdout",
            "fixed": {"model": "mlp", "terms": 3, "epochs": 8, "epochs_per_term": 2,
                      "full_ranking": False},
            "space": {"threshold": {"grid": [0.3, 0.5, 0.7, 0.9]}},
            "seeds": [0],
            "search": {"algorithm": "grid"},
            "objective": {"metric": "val_hr@10", "mode": "max"},
            "resources": {"cpus": 1},
            "wandb": {"mode": "disabled"},
            "output": str(out),
        }))
        p = subprocess.run([sys.executable, "-m", "suite.cli", "sweep", str(cfg), "--address",
                            f"127.0.0.1:{port}"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        trials = pd.read_parquet(out / "trials.parquet")
        assert len(trials) == 4
        assert set(trials.status) == {"completed"}
        # one CPU per node and one CPU per trial: both nodes must have run trials
        assert trials.node_id.nunique() == 2, trials[["trial_id", "node_id"]]
    finally:
        kill_all(_new_ray_pids(before, temp))
