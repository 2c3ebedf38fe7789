"""A nearly full disk: pre-flight refuses a sweep that cannot fit, and a disk that fills up
mid-sweep stops it at once with one line, then `resume` completes it (issue 23). The sweeps
write into a small tmpfs, so these tests need root (they are skipped elsewhere)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from suite.results import ended_trials
from tests.raytools import kill_all, ray_processes
from tests.test_sweep import CLI, REPO, sweep_yaml


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A factory of tmpfs mounts of a given size (unmounted afterwards)."""
    mounts: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"fs{len(mounts)}"
        where.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
        mounts.append(where)
        return where

    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def test_sweep_into_a_too_small_disk_exits_2_before_ray(tmp_path: Path, tmpfs, monkeypatch,
                                                         capsys) -> None:
    from suite.cli import main

    small = tmpfs("64k")
    out = small / "out"
    cfg = sweep_yaml(tmp_path / "s.yaml", out, space={"threshold": {"grid": [0.2, 0.5, 0.8]}},
                     fixed={"model": "gmf"}, seeds=(0, 1))
    monkeypatch.setattr("suite.tuner.init_ray", lambda *a: pytest.fail("Ray started"))
    assert main(["sweep", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ocfb-suite: error: --out: {out} has 0.1 MiB free, but this sweep "
                          "writes an estimated "), err
    assert "6 trials x " in err and len(err.splitlines()) == 1
    assert not out.exists()


def _fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` with one file; returns it (delete it to free space)."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_disk_filling_up_mid_sweep_stops_it_and_resume_completes(tmp_path: Path,
                                                                  tmpfs) -> None:
    disk = tmpfs("64m")
    out, markers = disk / "out", tmp_path / "marks"
    cfg = sweep_yaml(tmp_path / "f.yaml", out, name="fills",
                     space={"threshold": {"grid": [0.2, 0.4, 0.6, 0.8]}},
                     fixed={"model": "mlp", "terms": 4, "epochs": 3, "epochs_per_term": 1,
                            "batch_size": 128}, extra={"max_concurrent_trials": 1})
    temp = f"/tmp/ocfbt-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OCFB_TRIAL_START_DIR": str(markers), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*CLI, "sweep", str(cfg), "--ray-temp-dir", temp], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not list(markers.glob("*.end")) and time.time() < deadline:
            time.sleep(0.1)
        filler = _fill(disk)  # the disk is full from the second trial on
        full_at = time.time()
        _, err = proc.communicate(timeout=300)
        stopped_after = time.time() - full_at
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(ray_processes(temp))
    assert proc.returncode == 1, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("ocfb-suite: error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] or "ENOSPC" in lines[0]
    assert f"ocfb-suite resume {out}" in lines[0]
    assert "Traceback" not in err, err[-3000:]
    assert stopped_after < 120, f"took {stopped_after:.0f} s to stop"
    filler.unlink()
    p = subprocess.run([*CLI, "resume", str(out), "--ray-temp-dir", temp], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=600)
    kill_all(ray_processes(temp))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert list(ended_trials(out).values()) == ["completed"] * 4
    terms = pd.read_parquet(out / "terms.parquet")
    assert len(terms) == 4 * 5  # every trial's term 0..4, none twice
