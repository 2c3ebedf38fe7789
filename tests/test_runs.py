"""`ocfb.runs.make_run`: one factory for the loop and the baselines, one frozen split for both."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ocfb import protocols
from ocfb.algorithm import OCFBRun
from ocfb.baselines import BaselineRun, Popularity, _csr
from ocfb.config import make_run_config
from ocfb.data import Interactions, synthetic_influencer
from ocfb.runs import make_run


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives."""
    return synthetic_influencer(100, 200, 800, seed=1)


def cfg(**kw: Any):
    """A tiny run configuration."""
    base: dict[str, Any] = {"user_dim": 8, "item_dim": 8, "layers": [8], "mf_dim": 4,
                            "negatives": 600, "terms": 1, "epochs": 1, "epochs_per_term": 1,
                            "batch_size": 512, "n_candidates": 20}
    return make_run_config({**base, **kw})


@pytest.mark.parametrize(("model", "kind"), [
    ("gmf", OCFBRun), ("mlp", OCFBRun), ("neumf", OCFBRun),
    ("popularity", BaselineRun), ("ease", BaselineRun), ("als", BaselineRun),
])
def test_make_run_picks_the_run_kind(model: str, kind: type, small: Interactions) -> None:
    run = make_run(cfg(model=model), small)
    assert type(run) is kind and run.cfg.model == model
    records = list(run)
    # a baseline ignores `terms`: one record at term 0, never "trained for N terms"
    assert [r["term"] for r in records] == ([0] if kind is BaselineRun else [0, 1])
    assert run.done and run.history == records


def test_one_frozen_split_scores_any_model_on_the_same_candidates(
    small: Interactions, tmp_path
) -> None:
    splits = tmp_path / "splits"
    neural = make_run(cfg(model="gmf", terms=0), small, cache_dir=splits)
    base = make_run(cfg(model="popularity", full_ranking="every"), small, cache_dir=splits)
    rec = base.step()
    (path,) = splits.glob("holdout-*.npz")
    assert neural.holdout.key() == base.holdout.key()
    # someone else, with only the file: refit popularity on the training cells and score it
    frozen = protocols.load_frozen_split(path)
    s = frozen.split
    pop = Popularity(frozen.n_users, frozen.n_items).fit(
        _csr(s.train_cells, frozen.n_users, frozen.n_items))
    got = protocols.evaluate_holdout_part(pop, s.test_users, s.test_items, s.test_candidates,
                                          frozen.known(), torch.device("cpu"), "test_")
    for key in ("test_hr@10", "test_ndcg@10", "test_full_hr@10", "test_auc"):
        assert got[key] == pytest.approx(rec[key], abs=1e-12), key  # calibration keeps order
    assert np.isfinite(rec["test_full_hr@10"])


@pytest.mark.parametrize("model", ["gmf", "ease"])
def test_load_history_reads_the_saved_records_without_building_the_run(
        model: str, small: Interactions, tmp_path) -> None:
    from ocfb.runs import STATE_FILE, load_history

    run = make_run(cfg(model=model, terms=2), small)
    run.step()
    run.save(tmp_path / STATE_FILE)
    got = load_history(tmp_path)
    assert [r["term"] for r in got] == [0] and repr(got) == repr(run.history)  # NaN: repr
    list(run)  # the rest of the run: a later save holds every term, in order
    run.save(tmp_path / STATE_FILE)
    assert [r["term"] for r in load_history(tmp_path)] == [r["term"] for r in run.history]
    with pytest.raises(FileNotFoundError):
        load_history(tmp_path / "nothing-here")


def test_data_key_is_the_source_and_its_load_settings() -> None:
    a, b = cfg().data, cfg(data={"n_users": 50}).data
    assert a.key() == cfg().data.key() and a.key() != b.key()
    assert a.key()[0] == "synthetic-influencer" and dict(a.key()[1]) == a.load_kwargs()
