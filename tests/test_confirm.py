"""Tune-then-confirm through the CLI: one `--smoke` command runs every family's search and then
the confirmation of each family's validation argmax, into one folder; resume reruns only the
stage that did not finish. The CLI test starts Ray (slow); the closing line of a family with
no completed search trial is checked on faked stage results (fast)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

SWEEP = """\
    name: tc
    data: {source: synthetic-influencer}
    protocol: holdout
    fixed: {terms: 2, strategy: static, n_candidates: 20}
    space:
      model: {grid: [neumf, popularity, ease]}
    per_model:
      neumf: {lr: {loguniform: [1.0e-3, 1.0e-2]}}
    tune_per_model: {proposals: 3, confirm_seeds: [7, 8]}
    seeds: [0]
    search: {algorithm: random, seed: 0}
    max_concurrent_trials: 2
    smoke: {epochs: 1, epochs_per_term: 1, batch_size: 1024}
"""


def _sweep(tmp_path: Path) -> tuple[int, Path]:
    from suite.cli import main

    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent(SWEEP))
    out = tmp_path / "out"
    return main(["sweep", str(cfg), "--smoke", "--out", str(out), "--wandb", "disabled"]), out


@pytest.mark.slow
def test_smoke_sweep_holds_both_stages_and_resume_reruns_only_the_confirmation(
        tmp_path: Path) -> None:
    code, out = _sweep(tmp_path)
    assert code == 0
    trials = pd.read_parquet(out / "trials.parquet")
    # smoke: 2 proposals for NeuMF and EASE each (seed 0), then 3 families x 1 confirm seed
    assert len(trials) == 2 * 2 + 3 and set(trials.status) == {"completed"}
    search = trials[trials["config.stage"] == "search"]
    confirm = trials[trials["config.stage"] == "confirm"]
    assert set(search["config.seed"]) == {0} and set(confirm["config.seed"]) == {7}
    assert sorted(search["config.model"]) == ["ease", "ease", "neumf", "neumf"]
    assert dict(zip(confirm["config.model"], confirm["config.budget"], strict=True)) == {
        "neumf": "searched, 2 proposals", "ease": "searched, 2 proposals",
        "popularity": "fixed defaults"}
    # each confirmed configuration is its family's validation argmax
    chosen = json.loads((out / "chosen.json").read_text())["chosen"]
    for model, key in (("neumf", "lr"), ("ease", "l2")):
        rows = search[search["config.model"] == model]
        best = rows.loc[rows["best.val_hr@10"].idxmax(), f"config.{key}"]
        assert chosen[model] == {key: pytest.approx(best)}
        got = confirm.loc[confirm["config.model"] == model, f"config.{key}"].item()
        assert got == pytest.approx(best)
    terms = pd.read_parquet(out / "terms.parquet")
    assert set(terms["config.stage"]) == {"search", "confirm"}

    # as if the driver died after the search: the confirmation's rows and experiment are gone
    from suite.cli import main

    keep = set(search.trial_id)
    pd.read_parquet(out / "trials.parquet").query("trial_id in @keep").to_parquet(
        out / "trials.parquet", index=False)
    pd.read_parquet(out / "terms.parquet").query("trial_id in @keep").to_parquet(
        out / "terms.parquet", index=False)
    shutil.rmtree(out / "ray" / "tc-confirm")
    assert main(["resume", str(out)]) == 0
    again = pd.read_parquet(out / "trials.parquet")
    assert len(again) == 7 and set(again.trial_id) >= keep  # no search trial ran again
    redo = again[again["config.stage"] == "confirm"]
    assert sorted(redo["config.model"]) == ["ease", "neumf", "popularity"]
    assert set(redo.trial_id).isdisjoint(set(confirm.trial_id))


def _fake_stage(stage, out: Path, datasets: dict, writer, *, restore: bool) -> bool:
    """Stands in for `driver._run_stage` (no Ray): reports every trial of the stage to the
    writer, as Ray's callbacks would; every trial of NeuMF's search fails."""
    from types import SimpleNamespace

    fails = stage.name.endswith("-search-neumf")
    for model in stage.families():
        for seed in stage.seeds:
            for k in range(stage.search.num_samples):
                trial = SimpleNamespace(trial_id=f"{stage.name}-{model}-{seed}-{k}",
                                        config={"model": model, "seed": seed})
                writer.on_start(trial)
                if fails:
                    writer.on_end(trial, error="RuntimeError: boom")
                    continue
                cfg = writer.trials[trial.trial_id]["config"]
                for term in range(1 if cfg.is_baseline else cfg.terms + 1):
                    writer.on_result(trial, {"term": term, "val_hr@10": 0.1 * (k + 1)})
                writer.on_end(trial)
    return True


def test_a_family_whose_search_trials_all_failed_is_named_not_called_interrupted(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """Every NeuMF search trial failed: EASE and popularity are confirmed, NeuMF has nothing to
    confirm. The closing line names NeuMF, in one line, exit 1; it used to say "interrupted ...
    resume", which would not run them again. Fast: the stages' trials are faked, no Ray."""
    from suite import driver
    from suite.results import ResultsWriter
    from suite.spec import load_sweep

    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent(SWEEP))
    spec = load_sweep(cfg)
    out = tmp_path / "out"
    out.mkdir()
    writer = ResultsWriter(out, spec, verbose=False)
    monkeypatch.setattr(driver, "_run_stage", _fake_stage)
    monkeypatch.setattr(driver, "finish", lambda *a: None)  # no summary
    driver.run_stages(spec, out, {}, writer)
    assert json.loads((out / "chosen.json").read_text())["chosen"].keys() == {
        "ease", "popularity"}
    capsys.readouterr()
    assert driver._close(spec, out, writer, "disabled", 1.0, False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" not in err, err
    assert "no search trial of neumf completed, so it has no confirmation" in err, err
