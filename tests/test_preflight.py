"""Mistakes caught before Ray starts (exit 2, a named message) in `sweep`, `train`, `resume`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.cli import main

REPO = Path(__file__).resolve().parents[1]


def _sweep_file(tmp_path: Path, **over) -> Path:
    doc = {"name": "pf", "fixed": {"terms": 1, "epochs": 1, "model": "gmf"},
           "objective": {"metric": "val_hr@10", "mode": "max"},
           "wandb": {"mode": "disabled"}, "output": str(tmp_path / "out")}
    for k, v in over.items():
        doc[k] = {**doc[k], **v} if isinstance(doc.get(k), dict) else v
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _two_per_user(tmp_path: Path) -> Path:
    path = tmp_path / "two.csv"
    rows = [(u, (u + k) % 50) for u in range(40) for k in (0, 7)]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case,needle", [
    ({"fixed": {"n_candidates": 1000000}},
     "fixed.n_candidates: 1000000 sampled candidates per held-out positive, but the most active "
     "user has interacted with"),
    ({"seeds": [2**63]}, "seeds[0]: "),  # the spec names it
    ({"storage_path": "/proc/ocfb-storage"}, "storage_path: /proc/ocfb-storage is not writable"),
    ({"storage_path": "s3:///prefix"}, "storage_path: 's3:///prefix' names no bucket"),  # spec
    ({"storage_path": "ftp://host/x"}, "'ftp'"),  # the spec names it
    ("two-per-user", "the holdout split needs users with at least 3 positives"),
])
def test_sweep_preflight_exits_2_naming_the_problem(tmp_path: Path, capsys, case,
                                                    needle: str) -> None:
    if case == "two-per-user":
        case = {"data": {"source": str(_two_per_user(tmp_path))}}
    cfg = _sweep_file(tmp_path, **case)
    assert main(["sweep", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out,needle", [
    ("/proc/ocfb-out", "--out: /proc/ocfb-out is not writable"),
    ("/dev/null/x", "--out: /dev/null/x is not writable"),
    ("{file}", "is a file, not a folder"),
])
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_unwritable_out_exits_2(tmp_path: Path, capsys, out: str, needle: str,
                                command: str) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    out = out.replace("{file}", str(a_file))
    if command == "sweep":
        argv = ["sweep", str(_sweep_file(tmp_path)), "--out", out]
    else:
        argv = ["train", "--smoke", "--out", out, "--quiet"]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_train_config_directory_is_named(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err


def test_small_negative_count_is_refused_unless_total_is_said(tmp_path: Path, capsys) -> None:
    assert main(["train", "--negatives", "4", "--smoke", "--out", str(tmp_path / "a")]) == 2
    assert ("4 negatives in total for 2,000 positives; did you mean 4x?"
            in capsys.readouterr().err)
    assert main(["train", "--negatives-total", "40", "--smoke", "--terms", "0",
                 "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out = capsys.readouterr().out
    # --quiet still prints the one closing line, naming where the results went
    assert out.strip().splitlines() == [out.strip()] and str(tmp_path / "b") in out


def test_every_run_parameter_is_a_train_flag() -> None:
    from ocfb.config import RunConfig
    from suite.cli import build_parser, train_config_from_args

    flags = ["--full-ranking", "off", "--replace-fraction", "0.25", "--test-fraction", "0.2",
             "--val-fraction", "0.15", "--holdout-fraction", "0.3", "--max-redraws", "2",
             "--dns-candidates", "7", "--l2", "50", "--layers", "16,8", "--max-loss", "3.5",
             "--exclude-removed", "false", "--negatives", "4x", "--smoke"]
    args = build_parser().parse_args(["train", *flags])
    cfg = train_config_from_args(args)
    assert (cfg.full_ranking, cfg.replace_fraction, cfg.test_fraction, cfg.val_fraction,
            cfg.holdout_fraction, cfg.max_redraws, cfg.dns_candidates, cfg.l2, cfg.layers,
            cfg.max_loss, cfg.exclude_removed, cfg.negatives) == (
        "off", 0.25, 0.2, 0.15, 0.3, 2, 7, 50.0, (16, 8), 3.5, False, "4x")
    assert (cfg.terms, cfg.epochs) == (2, 2)  # names.SMOKE_SETTINGS
    for key in RunConfig.model_fields:
        if key != "data":
            assert hasattr(args, key), key


def _finished_sweep(tmp_path: Path, mode: str = "disabled") -> Path:
    from suite.results import write_json, write_parquet
    from suite.spec import load_sweep

    out = tmp_path / "done"
    spec = load_sweep(_sweep_file(tmp_path, space={"threshold": {"grid": [0.3, 0.7]}}))
    write_json({**spec.to_json(), "wandb_mode": mode, "address": "local", "smoke": False},
               out / "sweep.json")
    write_parquet(pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed", "stopped"]}),
                  out / "trials.parquet")
    return out


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_resuming_a_finished_sweep_does_nothing_and_starts_no_ray(tmp_path: Path) -> None:
    out = _finished_sweep(tmp_path, mode="offline")
    code = ("import sys\nfrom suite.cli import main\n"
            f"rc = main(['resume', {str(out)!r}])\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\nsys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "already complete (2 of 2 trials finished); nothing to resume" in p.stdout
    assert not (out / "wandb").exists() and not (out / "ray").exists()


def test_resume_refuses_a_folder_a_live_driver_holds(tmp_path: Path, capsys) -> None:
    from suite.folders import OutputLock

    out = _finished_sweep(tmp_path)
    (out / "trials.parquet").unlink()  # unfinished: resume would run
    import os

    with OutputLock(out, "ocfb-suite sweep s.yaml"):
        assert main(["resume", str(out)]) == 2
    assert f"in use by pid {os.getpid()}" in capsys.readouterr().err


def test_checkpoints_seconds_apart_are_all_kept_and_the_disk_estimate_counts_them() -> None:
    """Ray deletes a trial's older checkpoints as soon as a newer one comes, but saves its
    experiment state only once a second: with checkpoints seconds apart a kill can leave a state
    naming a deleted one (a resume failed that way on S3). Such sweeps keep every checkpoint."""
    from ocfb.footprint import checkpoint_bytes
    from suite import preflight
    from suite.spec import load_sweep

    spaced = load_sweep(REPO / "configs" / "quickstart.yaml")
    assert spaced.checkpoint_interval_s == 30 and preflight.checkpoints_kept(spaced) == 2
    per_term = spaced.model_copy(update={"checkpoint_interval_s": 0.0})
    assert preflight.checkpoints_kept(per_term) is None
    datasets = preflight.load_datasets(spaced)
    shape = preflight.shape_lookup(datasets)
    configs = preflight.sampled_configs(spaced)
    ckpt = max(checkpoint_bytes(c, *shape(c)) for c in configs)
    terms = {c.terms for c in configs}
    assert terms == {5}
    # three copies (two kept, the next being written) against one a term and the last
    more = preflight.sweep_disk_bytes(per_term, datasets)[0] - preflight.sweep_disk_bytes(
        spaced, datasets)[0]
    assert more == spaced.expected_trials() * (5 + 1 - 3) * ckpt
