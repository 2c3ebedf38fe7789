"""`ocfb-suite train` and `ocfb-suite data describe`: outputs, exit codes and error messages."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from ocfb.config import RunConfig
from ocfb.data import synthetic_influencer
from suite.cli import main

REPO = Path(__file__).resolve().parents[1]
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


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
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


# -- data flags: one set for every command that loads data (issue 23, items 5-7) ----------------

DATA_COMMANDS = (("train",), ("sweep",), ("data", "describe"))
# what makes each command run up to its data loading (and not past it)


def _parser_of(*path: str) -> argparse.ArgumentParser:
    """The argparse parser of a (sub)command, e.g. ("data", "describe")."""
    from suite.cli import build_parser

    parser = build_parser()
    for name in path:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def _options(*path: str) -> set[str]:
    return set(_parser_of(*path)._option_string_actions)


def test_train_sweep_and_describe_have_one_data_flag_per_data_config_field() -> None:
    from ocfb.config import DataConfig
    from suite.cli import data_flag

    want = {"--data"} | {data_flag(k) for k in DataConfig.model_fields if k != "source"}
    assert {"--format", "--user-col", "--item-col", "--rating-col", "--sep",
            "--string-ids"} <= want
    for path in DATA_COMMANDS:
        assert want <= _options(*path), path
    assert "--source" in _options("data", "describe")  # the older spelling still works


def test_every_flag_the_data_loaders_name_exists_for_each_data_command() -> None:
    """Every `--flag` in ocfb/data's messages (and docstrings) is an option of train, sweep and
    data describe, since any of them may print the message."""
    named = set()
    for src in (REPO / "ocfb" / "data").glob("*.py"):
        named |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", src.read_text()))
    assert {"--format", "--user-col", "--sep", "--string-ids", "--data"} <= named
    for path in DATA_COMMANDS:
        assert named <= _options(*path), (path, named - _options(*path))


def _sweep_yaml(tmp_path: Path, data: dict[str, Any] | None = None) -> Path:
    doc = {"name": "df", "fixed": {"terms": 1, "epochs": 1, "model": "gmf", "n_candidates": 5,
                                   "negatives": "1x"},
           "objective": {"metric": "val_hr@10", "mode": "max"}, "wandb": {"mode": "disabled"},
           "output": str(tmp_path / "out")}
    if data:
        doc["data"] = data
    path = tmp_path / f"s{len(list(tmp_path.glob('s*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# bad data files: (file name, text, extra flags) -> each command's message names only its flags
BAD_FILES = [
    ("a.tsv", "user,item\n1,1\n2,2\n", []),  # comma-separated .tsv: --format csv
    ("a.csv", "user;item\n1;1\n2;2\n", []),  # semicolon: --sep ';'
    ("b.csv", "u,i\n1,1\n2,2\n", []),  # columns not found: --user-col, --item-col
    ("c.csv", "userId,movieId,rating,timestamp\n1,1,5,9\n2,2,5,9\n", ["--format", "csv"]),
    ("g.csv", "userId,movieId\n1,1\n2,2\n", []),  # --user-col userId --item-col movieId
    ("d.csv", "user,item\n" + "".join(f"{u},{u}\n" for u in range(30)) + "oops,1\n", []),
    ("e.csv", "user,item,r\n1,1,5\n2,2,4\n", ["--min-rating", "4"]),  # needs --rating-col
    ("f.json", "{}", []),  # no format from the name: --format
]


@pytest.mark.parametrize("name,text,extra", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_each_data_hint_names_flags_of_the_command_that_printed_it(
    tmp_path: Path, capsys, name: str, text: str, extra: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    runs = {("train",): ["train", "--data", str(path), *extra, "--out", str(tmp_path / "t")],
            ("sweep",): ["sweep", str(_sweep_yaml(tmp_path)), "--data", str(path), *extra],
            ("data", "describe"): ["data", "describe", "--data", str(path), *extra]}
    for cmd, argv in runs.items():
        assert main(argv) == 2, cmd
        err = capsys.readouterr().err
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", err))
        assert flags, (cmd, err)  # every case is a wrong setting with a flag to fix it
        assert flags <= _options(*cmd), (cmd, flags - _options(*cmd), err)
        assert str(path) in err and "Traceback" not in err


def test_sweep_data_flags_match_the_same_settings_in_the_file(tmp_path: Path,
                                                               monkeypatch) -> None:
    """`sweep --data x.tsv --format tsv --user-col a --item-col b` runs on the same data as a
    file whose data block says so (the run itself is replaced: only the settings matter)."""
    import suite.commands as commands

    path = tmp_path / "x.tsv"
    path.write_text("a\tb\tc\n" + "".join(f"u{u}\ti{(u * 7 + k) % 40}\t1\n"
                                            for u in range(30) for k in range(6)))
    seen: list[tuple[Any, Any]] = []

    def fake_run(spec: Any, out: Path, datasets: dict, **kw: Any) -> int:
        seen.append((spec, datasets))
        return 0

    monkeypatch.setattr(commands, "run_sweep", fake_run)
    flags = ["--data", str(path), "--format", "tsv", "--user-col", "a", "--item-col", "b"]
    assert main(["sweep", str(_sweep_yaml(tmp_path)), *flags]) == 0
    in_file = {"source": str(path), "format": "tsv", "user_col": "a", "item_col": "b"}
    assert main(["sweep", str(_sweep_yaml(tmp_path, in_file))]) == 0
    (spec_f, data_f), (spec_y, data_y) = seen
    assert spec_f.data == spec_y.data
    assert (spec_f.data.format, spec_f.data.user_col, spec_f.data.item_col) == ("tsv", "a", "b")
    (inter_f,), (inter_y,) = data_f.values(), data_y.values()
    assert inter_f.content_hash() == inter_y.content_hash()
    assert (inter_f.n_users, inter_f.n_items, len(inter_f)) == (30, 40, 180)
    # a file setting the flag does not give is kept; a flag overrides the file
    yml = _sweep_yaml(tmp_path, {**in_file, "format": "csv"})
    assert main(["sweep", str(yml), "--format", "tsv"]) == 0
    assert seen[-1][0].data == spec_y.data


def test_sep_and_string_ids_flags(tmp_path: Path, capsys) -> None:
    path = tmp_path / "semi.csv"
    rows = "".join(f"{u};{(u * 3 + k) % 20}\n" for u in range(30) for k in range(5))
    path.write_text("user;item\n" + rows)
    assert main(["data", "describe", "--data", str(path), "--sep", ";", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["interactions"] == 150
    tabbed = tmp_path / "t.csv"
    tabbed.write_text("user\titem\n" + rows.replace(";", "\t"))
    assert main(["data", "describe", "--data", str(tabbed), "--sep", "\\t", "--json"]) == 0
    capsys.readouterr()
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("user,item\n" + rows.replace(";", ",") + "oops,3\n")
    assert main(["data", "describe", "--data", str(mixed)]) == 2
    err = capsys.readouterr().err
    assert f"{mixed}: line 152, column 'user': user id 'oops' is not a number" in err
    assert "--string-ids" in err
    assert main(["data", "describe", "--data", str(mixed), "--string-ids", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == 31


def test_a_loss_above_max_loss_is_not_called_non_finite(tmp_path: Path, capsys) -> None:
    rc = main(["train", "--smoke", "--lr", "50", "--max-loss", "0.05", "--quiet",
               "--out", str(tmp_path / "r")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "is above max_loss 0.05 (an untrained model's loss is ln 2" in err
    assert "non-finite" not in err


def test_users_a_loo_split_leaves_out_are_counted(tmp_path: Path, caplog) -> None:
    """Users with fewer than 3 positives have no validation or test positive under 'loo': the
    run's log says how many (last.fm lost 9 users silently)."""
    import logging

    path = tmp_path / "few.csv"
    rows = [(u, (u * 7 + k) % 40) for u in range(30) for k in range(6)]
    rows += [(100, 1), (100, 2), (101, 3), (102, 4), (102, 5)]  # 3 users with 1-2 positives
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="ocfb.protocols"):
        assert main(["train", "--data", str(path), "--smoke", "--negatives", "1x",
                     "--n-candidates", "5", "--quiet", "--out", str(tmp_path / "r")]) == 0
    notes = [r.getMessage() for r in caplog.records if "out of evaluation" in r.getMessage()]
    assert notes == ["note: the 'loo' split leaves 3 of 33 users out of evaluation (no test or "
                     "no validation positive; 'loo' needs 3 positives per user)"]


def test_resume_counts_the_trials_that_remained() -> None:
    """After a kill, trials that had ended but ran again (Ray's state lagged) are not counted
    as remaining ones: 36 remained, 41 trial ends were reported."""
    from types import SimpleNamespace

    from suite.driver import _finished_text

    trials = {f"t{k}": {"status": "completed"} for k in range(57)}
    spec = SimpleNamespace(expected_trials=lambda: 57)
    resumed = SimpleNamespace(ended_before={f"t{k}" for k in range(21)}, finished=41,
                              trials=trials)
    assert _finished_text(resumed, spec) == (
        "36 remaining trial(s) finished (5 that had already ended reran from their "
        "checkpoints); 57 of 57 ended in all")
    fresh = SimpleNamespace(ended_before=set(), finished=57, trials=trials)
    assert _finished_text(fresh, spec) == "57 trials finished"


def test_smoke_writes_to_output_smoke_unless_out_is_given(tmp_path: Path, monkeypatch) -> None:
    """README: `--smoke` writes to `<output>-smoke` (a real sweep's results are never replaced),
    and to DIR when `--out DIR` names the folder explicitly."""
    import suite.commands as commands

    outs: list[Path] = []
    monkeypatch.setattr(commands, "run_sweep", lambda spec, out, datasets, **kw: outs.append(
        out) or 0)
    cfg = _sweep_yaml(tmp_path)
    assert main(["sweep", str(cfg), "--smoke"]) == 0
    assert main(["sweep", str(cfg), "--smoke", "--out", str(tmp_path / "mine")]) == 0
    assert outs == [tmp_path / "out-smoke", tmp_path / "mine"]
