"""`ocfb-suite train` and `ocfb-suite data describe`: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from ocfb.config import RunConfig
from ocfb.data import synthetic_influencer
from suite.cli import main

FREE_CELLS = 407 * 462 - 2000  # unobserved cells of the default synthetic-influencer grid


@pytest.fixture(scope="module", autouse=True)
def keep_threads() -> Iterator[None]:
    """`train` sets torch's thread count for the process; restore it for other test files."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def read_outputs(out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """history.parquet and summary.json of a finished run."""
    return pd.read_parquet(out / "history.parquet"), json.loads((out / "summary.json").read_text())


def test_train_defaults_write_history_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    t0 = time.perf_counter()
    rc = main(["train", "--out", str(out), "--quiet"])
    wall = time.perf_counter() - t0
    print(f"default `ocfb-suite train` (in process): {wall:.1f} s")  # reported, not asserted
    assert rc == 0
    hist, summary = read_outputs(out)
    assert hist["term"].tolist() == list(range(16))  # terms + 1 rows, term 0 included
    for key in ("n_replaced", "err_mean", "train_loss", "val_hr@10", "test_hr@10",
                "test_full_ndcg@20", "time_train", "time_score", "time_resample", "time_eval"):
        assert key in hist.columns, key
    assert {"config", "final", "best", "best_term", "data_hash", "versions"} <= summary.keys()
    want = RunConfig().model_dump(mode="json")
    # only the data settings that apply: the generator's sizes, no file column names
    want["data"] = {"source": "synthetic-influencer", "n_users": 407, "n_items": 462,
                    "n_interactions": 2000, "data_seed": 0}
    assert summary["config"] == want
    assert summary["data_hash"] == synthetic_influencer().content_hash()
    assert summary["final"]["term"] == 15
    assert summary["final"]["test_hr@10"] == pytest.approx(hist["test_hr@10"].iloc[-1])
    best = int(hist["val_hr@10"].idxmax())  # earliest term with the best objective
    assert summary["best_term"] == summary["best"]["term"] == int(hist["term"][best])
    assert summary["best"]["val_hr@10"] == pytest.approx(hist["val_hr@10"].max())
    assert {"ocfb", "torch", "numpy", "python"} <= summary["versions"].keys()


def test_console_script_smoke(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "ocfb-suite"
    if not exe.is_file():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    out = tmp_path / "smoke"
    proc = subprocess.run([str(exe), "train", "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    hist, summary = read_outputs(out)
    assert hist["term"].tolist() == [0, 1, 2]
    assert summary["config"]["terms"] == 2
    assert "val_hr@10" in proc.stdout  # the per-term table


def test_config_file_with_flag_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: gmf\nterms: 5\nepochs: 2\nepochs_per_term: 1\nstrategy: static\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--terms", "1", "--out", str(out),
                 "--quiet"]) == 0
    hist, summary = read_outputs(out)
    assert hist["term"].tolist() == [0, 1]
    assert summary["config"]["model"] == "gmf" and summary["config"]["strategy"] == "static"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--threshold", "-0.5"], ["threshold"]),
        (["--model", "svd"], ["model"]),
        (["--terms", "-1"], ["terms"]),
        (["--negatives", "200000"], ["negatives", str(FREE_CELLS)]),
        (["--protocol", "paper", "--negatives", "200000"], ["negatives", str(FREE_CELLS)]),
        (["--negatives", "0"], ["negatives"]),
        (["--strategy", "greedy"], ["strategy"]),
        (["--error", "hinge"], ["error"]),
        (["--threads", "0"], ["threads"]),
        (["--config", "{bad_config}"], ["tresh"]),
    ],
)
def test_bad_value_exits_2_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    flags: list[str], named: list[str],
) -> None:
    import ocfb.algorithm as alg

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("training started before the settings were validated")

    monkeypatch.setattr(alg, "train_epochs", no_training)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: mlp\ntresh: 0.3\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results\n")
    flags = [f.replace("{bad_config}", str(bad)) for f in flags]
    rc = main(["train", *flags, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    for word in named:
        assert word in err, err
    assert not (out / "history.parquet").exists()
    assert not (out / "summary.json").exists()
    assert (out / "keep.txt").read_text() == "earlier results\n"


def test_data_describe_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "describe", "--source", "synthetic-influencer", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert (info["users"], info["items"], info["interactions"]) == (407, 462, 2000)


def test_data_describe_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    assert main(["data", "describe", "--source", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_paper_protocol_prints_table_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--protocol", "paper", "--model", "mlp", "--smoke",
                 "--out", str(tmp_path / "p")]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.startswith("Classification report"))
    assert "MLP at term 2" in lines[start]
    assert lines[start + 1].split() == ["pre", "rec", "f1", "sup"]
    assert [ln.split()[0] for ln in lines[start + 2 : start + 6]] == [
        "negative(0)", "positive(1)", "accuracy", "average"]
    assert lines[start + 2].split()[-1] == "600"  # 30 % of 2,000 negative slots
    assert lines[start + 5].split()[-1] == "1200"
    hist, summary = read_outputs(tmp_path / "p")
    # validation selects (interface 2); "test_auc" only while the paper val split is not in
    assert summary["objective"] == ("val_auc" if "val_auc" in hist.columns else "test_auc")
    assert "test_auc" in hist.columns


def test_data_fetch_unknown_archive_exits_2_naming_the_choices(capsys) -> None:
    from suite.cli import main

    assert main(["data", "fetch", "ml-5m", "--cache", "/nonexistent-cache"]) == 2
    err = capsys.readouterr().err
    assert "unknown MovieLens archive 'ml-5m'" in err and "ml-100k" in err


def test_train_names_merged_duplicate_rows(tmp_path, capsys):
    """9,000 rows that are 3,000 pairs must not pass silently as 9,000 interactions."""
    from suite.cli import main

    rows = [f"{u},{i}" for u in range(40) for i in range(0, 30, 2)]
    path = tmp_path / "dup.csv"
    path.write_text("user,item\n" + "\n".join(rows * 3) + "\n")
    main(["train", "--data", str(path), "--smoke", "--negatives", "1x", "--n-candidates", "5",
          "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert f"{2 * len(rows):,} duplicate (user, item) rows merged" in err
    assert f"{len(rows):,} distinct interactions remain" in err
