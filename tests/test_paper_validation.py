"""The paper protocol's frozen validation negatives (issue 20).

Under `paper`, OCF-B rewrote every negative slot, validation's included, so validation got
easier each term with the same artefact as test and selection on it favoured the last term
(189 of 504 trials in the first `results/paper` run). Validation slots now keep their term-0
cells under every strategy; training and test slots are rewritten as in the paper; holdout is
unaffected.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ocfb import protocols
from ocfb.algorithm import OCFBRun
from ocfb.data import Interactions, synthetic_influencer
from ocfb.names import STRATEGIES
from tests.test_algorithm import same_records, small_cfg


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives (600 negatives: 180 test, 42 validation, 378 training)."""
    return synthetic_influencer(100, 200, 800, seed=1)


@pytest.fixture(scope="module")
def influencer() -> Interactions:
    """The built-in data set at the paper's shape (407 x 462 x 2,000)."""
    return synthetic_influencer()


def test_paper_frozen_and_open_slots_partition_the_slots(influencer: Interactions) -> None:
    s = protocols.make_paper_split(influencer, 1500, 0.3, 0.1, seed=2)
    np.testing.assert_array_equal(s.frozen_slots, np.flatnonzero(s.neg_slot_is_val))
    assert s.frozen_slots.size == 105 and s.open_slots.size == 1395
    np.testing.assert_array_equal(np.sort(np.r_[s.frozen_slots, s.open_slots]), np.arange(1500))
    assert np.isin(s.train_slots, s.open_slots).all()  # training and test slots stay open
    assert np.isin(np.flatnonzero(s.neg_slot_is_test), s.open_slots).all()


def test_paper_validation_scores_the_term_0_negatives_at_every_term(small: Interactions) -> None:
    # OCF-B still rewrites the test negatives; validation's report keeps its term-0 negatives,
    # so a later term's val_auc is the model's, not an easier validation set's.
    run = OCFBRun(small_cfg(threshold=0.2, terms=3), small)
    s = run.paper
    run.step()
    val0 = run.negatives[s.neg_slot_is_val].copy()
    test0 = run.negatives[s.neg_slot_is_test].copy()
    rec = list(run)[-1]
    assert (run.negatives[s.neg_slot_is_test] != test0).any()
    cells = np.concatenate([s.pos_cells[s.pos_is_val], val0])
    y = np.r_[np.ones(s.pos_is_val.sum()), np.zeros(val0.size)]
    z = protocols.score_cells(run.model, cells, small.n_items, run.device, logits=True)
    assert rec["val_auc"] == pytest.approx(roc_auc_score(y, z), abs=1e-12)


@pytest.mark.parametrize("strategy", ["ocfb", "resample-all"])
def test_paper_validation_slots_frozen_while_test_slots_change(
    small: Interactions, strategy: str
) -> None:
    # Issue 20: rewriting the validation negatives made validation easier each term with the
    # same artefact as test (189 of 504 trials in the first results/paper run chose the last term).
    run = OCFBRun(small_cfg(strategy=strategy, threshold=0.2, terms=4), small)
    p = run.paper
    val, test = p.neg_slot_is_val, p.neg_slot_is_test
    assert val.sum() == 42 and test.sum() == 180
    run.step()
    val0, test0 = run.negatives[val].copy(), run.negatives[test].copy()
    test_changed = []
    for rec in run:
        neg = run.negatives
        np.testing.assert_array_equal(neg[val], val0)  # every term: the term-0 cells
        test_changed.append(int((neg[test] != test0).sum()))
        # pool invariants over every slot, frozen ones included
        assert neg.size == rec["n_negatives"] == 600 == np.unique(neg).size
        assert not np.isin(neg, small.cells).any()
        assert rec["val_support_neg"] == 42 and rec["test_support_neg"] == 180
    assert test_changed[-1] > 0  # the paper's test rewriting is kept
    if strategy == "resample-all":  # a whole new set each term, but never in the val slots
        assert all(c > 150 for c in test_changed), test_changed
        assert rec["n_replaced"] == 558


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_paper_no_strategy_touches_or_duplicates_the_frozen_slots(
    small: Interactions, strategy: str
) -> None:
    run = OCFBRun(small_cfg(strategy=strategy, threshold=0.1, terms=2), small)
    run.step()
    frozen = run.negatives[run.paper.neg_slot_is_val].copy()
    for _ in run:
        neg = run.negatives
        np.testing.assert_array_equal(neg[run.paper.neg_slot_is_val], frozen)
        assert np.unique(neg).size == 600 and not np.isin(neg, small.cells).any()
        assert not np.isin(run.pool.negatives, frozen).any()  # the pool never draws them
        assert not np.isin(run.removed, frozen).any()  # nor marks them suspects


def test_holdout_has_no_frozen_slots(small: Interactions) -> None:
    # Holdout negatives are training-only: every slot stays open to every strategy.
    for strategy in ("ocfb", "resample-all"):
        run = OCFBRun(small_cfg(protocol="holdout", strategy=strategy, threshold=0.2), small)
        run.step()
        base0 = run.pool.base.copy()
        for rec in run:
            assert run.frozen.size == 0 and run.negatives is run.pool.negatives
            np.testing.assert_array_equal(run.pool.base, base0)  # nothing frozen into it
            if strategy == "resample-all":
                assert rec["n_replaced"] == 600
        assert run.state_dict()["val_slots_frozen"] is False


@pytest.mark.parametrize("strategy", ["resample-all", "srns"])
def test_paper_resume_keeps_the_frozen_slots(small: Interactions, strategy: str) -> None:
    cfg = small_cfg(strategy=strategy, terms=4, threshold=0.2)
    full = OCFBRun(cfg, small)
    hist = list(full)
    first = OCFBRun(cfg, small)
    for _ in range(2):
        first.step()
    resumed = OCFBRun(cfg, small)
    resumed.load_state_dict(first.state_dict())
    list(resumed)
    assert same_records(hist, resumed.history)
    np.testing.assert_array_equal(resumed.negatives, full.negatives)
    np.testing.assert_array_equal(resumed.pool.base, full.pool.base)


def test_paper_checkpoint_from_before_the_freeze_is_refused(small: Interactions) -> None:
    run = OCFBRun(small_cfg(terms=2), small)
    run.step()
    state = run.state_dict()
    del state["val_slots_frozen"]  # a term-0 checkpoint is the same under both behaviours
    OCFBRun(small_cfg(terms=2), small).load_state_dict(state)
    run.step()
    state = run.state_dict()
    del state["val_slots_frozen"]
    with pytest.raises(ValueError, match="before the paper protocol froze its validation"):
        OCFBRun(small_cfg(terms=2), small).load_state_dict(state)


def test_paper_selected_term_metrics_are_those_measured_at_that_term(small: Interactions) -> None:
    # paper rewrites its test negatives each term: the selected weights rescored at the end
    # would meet the final (easiest) test set, so `sel_*` must be the selected term's record
    run = OCFBRun(small_cfg(threshold=0.2, terms=4, seed=2), small)
    recs = list(run)
    final = recs[-1]
    sel_term = int(final["sel_term"])
    assert sel_term < 4  # this seed peaks on validation before the last term
    at_sel = recs[sel_term]
    shared = [k for k in at_sel if f"sel_{k}" in final]
    assert {"test_auc", "val_auc"} <= set(shared)
    for k in shared:
        assert final[f"sel_{k}"] == at_sel[k], k
    assert final["sel_test_auc"] != final["test_auc"]
