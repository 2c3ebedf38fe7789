"""Tune-then-confirm through the CLI: one `--smoke` command runs every family's search and then
the confirmation of each family's validation argmax, into one folder; resume reruns only the
stage that did not finish. Both tests start Ray (slow)."""

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
