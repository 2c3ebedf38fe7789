"""The public Python face: README's "From Python" examples run as written, and `import ocfb`
and `import suite` stay free of Ray, W&B and torch."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import suite

REPO = Path(__file__).resolve().parents[1]


def readme_example(name: str) -> str:
    """The ```python block right after `<!-- example: NAME -->` in README.md, verbatim."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no python block marked <!-- example: {name} -->"
    return found.group(1)


def run_example(name: str) -> tuple[str, dict]:
    """Execute a README example; return what it printed and its variables."""
    namespace: dict = {"__name__": "__readme__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(name), f"README.md:{name}", "exec"), namespace)  # noqa: S102
    return printed.getvalue(), namespace


def test_one_run_example_prints_one_record_per_term():
    printed, ns = run_example("one-run")
    lines = [line.split() for line in printed.strip().splitlines()]
    assert [int(line[0]) for line in lines] == [0, 1, 2]  # term 0 (initial fit) + 2 terms
    assert int(lines[0][1]) == 0  # nothing is replaced before the first boost
    assert all(int(line[1]) >= 0 for line in lines)
    assert all(0.0 <= float(line[2]) <= 1.0 for line in lines)  # val_hr@10
    assert ns["cfg"].selection_metric == "val_hr@10"


def test_one_run_example_is_reproducible():
    """Same config and seed, same numbers (CPU)."""
    assert run_example("one-run")[0] == run_example("one-run")[0]


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_imports_stay_light():
    """`import ocfb` brings neither torch (only a neural run does) nor Ray/W&B; `import suite`
    brings nothing heavy at all."""
    code = ("import sys, ocfb; a = sorted(m for m in ('torch', 'ray', 'wandb') if m in sys.modules)"
            "; import suite; print(a, 'pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    assert proc.stdout.strip() == "[] True"
    code = ("import sys, suite; "
            "print(sorted(m for m in ('pandas', 'ray', 'wandb') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_run_sweep_file_refuses_a_bad_file_before_any_work(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace:\n  threshold: {grid: [-1]}\n")
    with pytest.raises(suite.SweepFailed) as err:
        suite.run_sweep_file(bad, out=tmp_path / "out")
    assert err.value.exit_code == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="wandb: 'upload' is not one of online, offline"):
        suite.run_sweep_file(bad, wandb="upload")


# A two-trial stand-in for configs/quickstart.yaml, so the README's block runs as written
# in seconds: same name and output, one neural model and one baseline, one seed.
TINY_QUICKSTART = {
    "name": "quickstart", "output": "runs/quickstart",
    "data": {"source": "synthetic-influencer"}, "protocol": "holdout",
    "fixed": {"terms": 2, "epochs": 2, "epochs_per_term": 1, "batch_size": 512},
    "space": {"model": {"grid": ["gmf", "popularity"]}}, "seeds": [0],
    "search": {"algorithm": "grid"}, "scheduler": {"type": "fifo"},
    "objective": {"metric": "val_hr@10", "mode": "max"}, "resources": {"cpus": 1},
    "wandb": {"mode": "auto"},
}


@pytest.mark.slow  # starts Ray: about 12 s on 2 cores
def test_sweep_example_runs_and_returns_the_results_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "quickstart.yaml").write_text(yaml.safe_dump(TINY_QUICKSTART))
    printed, ns = run_example("sweep")
    folder = ns["folder"]
    assert folder == Path("runs/quickstart-smoke")  # the CLI's --smoke folder
    trials = pd.read_parquet(tmp_path / folder / "trials.parquet")
    assert sorted(trials["config.model"]) == ["gmf", "popularity"]
    assert (trials["status"] == "completed").all()
    assert "gmf" in printed and "popularity" in printed
    assert (tmp_path / folder / "summary.md").is_file()
    assert not (tmp_path / folder / "wandb").exists()  # disabled, though the file says auto
