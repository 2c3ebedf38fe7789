"""`summarize`, `resume` and `dashboard` on folders that are not (whole) sweep folders: exit 2
with one line naming the missing or unreadable file and what to do, never a traceback, and
nothing started (issue 23, item 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.cli import main
from suite.results import write_json, write_parquet

COMMANDS = ("summarize", "resume", "dashboard")


def _sweep(tmp_path: Path) -> Path:
    """A small finished sweep folder: a valid sweep.json and a two-trial trials.parquet."""
    from suite.spec import load_sweep

    doc = {"name": "fold", "fixed": {"terms": 1, "epochs": 1, "model": "gmf"},
           "space": {"threshold": {"grid": [0.3, 0.7]}},
           "objective": {"metric": "val_hr@10", "mode": "max"}, "wandb": {"mode": "disabled"},
           "output": str(tmp_path / "sweep")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    spec = load_sweep(tmp_path / "s.yaml")
    out = tmp_path / "sweep"
    write_json({**spec.to_json(), "wandb_mode": "disabled", "address": "local", "smoke": False},
               out / "sweep.json")
    write_parquet(pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed", "running"],
                                "config.threshold": [0.3, 0.7]}), out / "trials.parquet")
    return out


def _no_sweep_json(d: Path) -> None:
    (d / "sweep.json").unlink()


def _truncated(d: Path) -> None:
    data = (d / "trials.parquet").read_bytes()
    (d / "trials.parquet").write_bytes(data[: len(data) // 2])


def _garbage(d: Path) -> None:
    (d / "trials.parquet").write_bytes(b"this is not parquet at all\n" * 40)


def _bad_json(d: Path) -> None:
    (d / "sweep.json").write_text('{"name": "fold", "fixed": ')


def _foreign_parquet(d: Path) -> None:
    write_parquet(pd.DataFrame({"x": [1, 2]}), d / "terms.parquet")


# case -> (how to damage the folder, what the line must say, for which commands)
CASES: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...]]] = {
    "no-sweep-json": (_no_sweep_json, "sweep.json: missing, though {d} holds trials.parquet: "
                      "sweep.json records the sweep's settings", COMMANDS),
    "truncated-parquet": (_truncated, "trials.parquet: not a readable Parquet file (", COMMANDS),
    "garbage-parquet": (_garbage, "trials.parquet: not a readable Parquet file (", COMMANDS),
    "bad-json": (_bad_json, "sweep.json: unreadable (not JSON: ", COMMANDS),
    "foreign-terms": (_foreign_parquet, "terms.parquet: no trial_id, term column(s): not a "
                      "sweep's results file", ("summarize", "resume")),
}


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ocfb-suite: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_sweep_folder_exits_2_with_one_line(tmp_path: Path, capsys, case: str,
                                                      command: str) -> None:
    damage, needle, commands = CASES[case]
    d = _sweep(tmp_path)
    damage(d)
    before = sorted(p.name for p in d.iterdir())
    rc = main([command, str(d)])
    line = _one_error_line(capsys.readouterr().err) if command in commands else None
    if line is None:  # the dashboard reads what it finds in a results file it does not need
        assert rc == 0
        return
    assert rc == 2
    assert needle.format(d=d) in line, line
    assert "rerun the sweep with --out" in line or "copy it" in line  # what to do
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written, nothing moved


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_that_is_not_a_sweep_is_named(tmp_path: Path, capsys, command: str) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    (d / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main([command, str(d)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == (f"ocfb-suite: error: {d}: no sweep.json here, so this is not a sweep output "
                    "folder; pass the folder a sweep wrote (its `output`, e.g. runs/quickstart)")
    assert main([command, str(d / "cat.jpg")]) == 2
    assert "cat.jpg: not a folder" in _one_error_line(capsys.readouterr().err)
    assert main([command, str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder" in _one_error_line(capsys.readouterr().err)


def test_summarize_without_trials_says_resume(tmp_path: Path, capsys) -> None:
    d = _sweep(tmp_path)
    (d / "trials.parquet").unlink()
    assert main(["summarize", str(d)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith(f"trials.parquet: missing: no trial has ended yet, or the driver was "
                         f"killed before its first write; continue the sweep with: ocfb-suite "
                         f"resume {d}")


def test_resume_names_an_invalid_spec_in_one_line(tmp_path: Path, capsys) -> None:
    d = _sweep(tmp_path)
    import json

    meta = json.loads((d / "sweep.json").read_text())
    meta["fixed"] = {**meta["fixed"], "terms": -3, "epochs": 0}
    (d / "sweep.json").write_text(json.dumps(meta))
    assert main(["resume", str(d)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{d / 'sweep.json'}: not a valid sweep spec: " in line
    assert "(and 1 more)" in line and line.endswith(f"rerun the sweep with --out {d}")


def test_summarize_of_a_whole_folder_still_works(tmp_path: Path, capsys) -> None:
    d = _sweep(tmp_path)
    assert main(["summarize", str(d)]) == 0
    assert (d / "summary.md").is_file()
    assert f"wrote {d / 'summary.md'}" in capsys.readouterr().out


def test_resume_names_sweep_json_keys_not_flags_it_lacks(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    """The data changed since the sweep ran: resume has no --format flag, so the loader's hint
    names the data.* key of sweep.json instead (issue 23: every hint names what exists)."""
    import json

    from ray import tune

    d = _sweep(tmp_path)
    bad = tmp_path / "log.tsv"
    bad.write_text("user,item\n1,1\n2,2\n")  # comma-separated under a .tsv name
    meta = json.loads((d / "sweep.json").read_text())
    (d / "sweep.json").write_text(json.dumps({**meta, "data": {"source": str(bad)}}))
    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path: True))
    assert main(["resume", str(d)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "looks comma-separated; pass data.format csv" in line
    assert "--" not in line.replace("--out", "")
    assert line.endswith(f"restore the file, or fix the data keys in {d / 'sweep.json'})")
