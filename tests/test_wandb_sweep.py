"""W&B from real sweeps: offline runs equal the results files; W&B never blocks or fails a sweep.

Every sweep runs in a subprocess with stdin closed, because wandb reads its environment once
per process and must be shown not to wait for input.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from suite.results import flat_config
from tests.raytools import kill_all, ray_processes
from tests.test_sweep import sweep_yaml
from tests.wandb_offline import offline_run_dirs, read_offline_run, read_table

REPO = Path(__file__).resolve().parents[1]
# Real sweeps in subprocesses (Ray start, two trials, W&B runs): about 30-90 s each.
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def _sweep(cfg: Path, env: dict[str, str], *args: str, timeout: int = 400):
    temp = f"/tmp/ocfbw-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run(
            ["timeout", str(timeout), sys.executable, "-m", "suite.cli", "sweep", str(cfg),
             "--ray-temp-dir", temp, *args],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout + 30)
    finally:
        kill_all(ray_processes(temp))


def _two_trials(tmp_path: Path, name: str) -> tuple[Path, Path]:
    out = tmp_path / name
    cfg = sweep_yaml(tmp_path / f"{name}.yaml", out, name=name,
                     space={"threshold": {"grid": [0.3, 0.7]}}, fixed={"model": "gmf"},
                     extra={"wandb": {"mode": "auto", "project": "ocfb-test"}})
    return cfg, out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def test_offline_runs_equal_results_files_and_hold_no_key(tmp_path: Path) -> None:
    from suite.spec import load_sweep

    out = tmp_path / "offline"
    cfg = sweep_yaml(tmp_path / "o.yaml", out, name="wb-offline",
                     extra={"wandb": {"mode": "offline", "project": "ocfb-test",
                                      "tags": ["smoke"]}})
    canary = "canary" + uuid.uuid4().hex  # 38 characters, shaped like nothing else we write
    p = _sweep(cfg, _env(WANDB_API_KEY=canary))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "wandb sync" in p.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    terms = pd.read_parquet(out / "terms.parquet")
    assert len(trials) == 4
    runs = {r.name: r for r in map(read_offline_run, offline_run_dirs(out))}
    spec = load_sweep(cfg)
    for _, row in trials.iterrows():
        run = runs[row.trial_id]
        assert run.group == "wb-offline" and run.job_type == "trial"
        assert "smoke" in run.tags and run.exit_code == 0
        params = {"model": row["config.model"], "threshold": row["config.threshold"],
                  "seed": int(row["config.seed"])}
        assert run.config == flat_config(spec.run_config(params))
        mine = terms[terms.trial_id == row.trial_id].sort_values("term")
        assert [h["term"] for h in run.history] == mine.term.tolist()
        for h, (_, t) in zip(run.history, mine.iterrows(), strict=True):
            keys = set(t.index) - {"trial_id"} - {k for k in t.index if k.startswith("config.")}
            assert set(h) == keys
            for k in keys:
                assert _same(h[k], t[k]), (row.trial_id, k, h[k], t[k])
    summary = runs["wb-offline-summary"]
    assert summary.job_type == "summary" and summary.group == "wb-offline"
    board = read_table(summary, "leaderboard")
    assert len(board) == 4
    assert any(a["type"] == "results" and {"trials.parquet", "terms.parquet"} <= set(a["files"])
               for a in summary.artifacts)
    # the API key never lands in a file the sweep wrote
    for f in out.rglob("*"):
        if f.is_file():
            assert canary.encode() not in f.read_bytes(), f


def test_no_key_no_mode_no_stdin_runs_offline(tmp_path: Path) -> None:
    cfg, out = _two_trials(tmp_path, "wb-nokey")
    p = _sweep(cfg, _env(HOME=str(tmp_path / "home")), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(pd.read_parquet(out / "trials.parquet")) == 2
    assert len(offline_run_dirs(out)) == 3  # two trials and the summary
    assert f"wandb sync {out}/wandb/offline-run-*" in p.stdout


def test_invalid_key_and_no_network_still_completes(tmp_path: Path) -> None:
    cfg, out = _two_trials(tmp_path, "wb-badkey")
    with socket.socket() as s:  # a local port nobody listens on: "no network"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(WANDB_API_KEY="x" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{port}",
               HOME=str(tmp_path / "home"), WANDB_HTTP_TIMEOUT="2")
    p = _sweep(cfg, env, "--wandb", "online", timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 2 and set(trials.status) == {"completed"}
    assert len(pd.read_parquet(out / "terms.parquet")) == 2 * 3
    assert (out / "summary.md").is_file()


@pytest.mark.parametrize("how", ["flag", "file"])
def test_disabled_writes_no_wandb_files(tmp_path: Path, how: str) -> None:
    cfg, out = _two_trials(tmp_path, f"wb-off-{how}")
    if how == "file":
        cfg.write_text(cfg.read_text().replace("mode: auto", "mode: disabled"))
    p = _sweep(cfg, _env(), *(["--wandb", "disabled"] if how == "flag" else []))
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "trials.parquet").is_file()
    assert not (out / "wandb").exists()
    assert not list(out.rglob("*.wandb"))


def test_no_key_sweep_leaves_publishable_dashboard_specs(tmp_path: Path) -> None:
    """No key, W&B's server a closed local port: the sweep exits 0, writes both dashboard specs,
    the report naming exactly the summary run's tables, and prints the publish command."""
    from suite.dashboard import load_spec
    from suite.tracking import summary_manifest

    cfg, out = _two_trials(tmp_path, "wb-dash")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = _sweep(cfg, _env(HOME=str(tmp_path / "home"), WANDB_BASE_URL=f"http://127.0.0.1:{port}"),
               timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    report = load_spec((out / "dashboard" / "report.json").read_text())
    load_spec((out / "dashboard" / "workspace.json").read_text())
    tables = [p.table_name for b in report.blocks for p in getattr(b, "panels", [])
              if type(p).__name__ == "WeavePanelSummaryTable" and not p.table_name.startswith(
                  "plots/")]
    assert tables == summary_manifest(out)["tables"]
    assert f"ocfb-suite dashboard {out} --wandb online" in p.stdout
