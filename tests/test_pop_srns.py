"""`pop`, `pop-ocfb`, `srns` (issue 22): distributions, the pool's rules, SRNS's choice, resume."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from ocfb.algorithm import OCFBRun
from ocfb.config import ConfigError, make_run_config
from ocfb.data import Interactions, synthetic_influencer
from ocfb.negatives import NegativePool
from ocfb.sampling import SamplingError, item_major, sample_weighted_cells
from ocfb.strategies import replace_negatives, window_std
from tests.test_algorithm import same_records, small_cfg
from tests.test_strategies import scorers


def no_scoring(cells: np.ndarray) -> np.ndarray:
    raise AssertionError("pop scores nothing")


def hand_pool() -> tuple[NegativePool, np.ndarray, np.ndarray, np.ndarray]:
    """6 x 5 grid; item popularity 0, 1, 2, 3, 4 from the training positives; 3 frozen cells."""
    n_users, n_items = 6, 5
    pos = np.array([u * n_items + i for i in range(n_items) for u in range(i)])  # item i: i users
    frozen = np.array([5 * n_items + 4, 5 * n_items + 3, 4 * n_items + 0])
    pool = NegativePool(n_users, n_items, np.union1d(pos, frozen), exclude_removed=True)
    pool.popularity = np.bincount(pos % n_items, minlength=n_items)
    np.testing.assert_array_equal(pool.popularity, [0, 1, 2, 3, 4])
    return pool, pos, frozen, np.setdiff1d(np.arange(30), np.union1d(pos, frozen))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_pop_draws_in_proportion_to_popularity_power(alpha: float) -> None:
    # one slot redrawn 30,000 times: P(cell) = pop(item) ** alpha / sum over the free cells
    pool, pos, frozen, free = hand_pool()
    cfg = make_run_config({"strategy": "pop", "pop_alpha": alpha})
    rng = np.random.default_rng(0)
    pool.set_all(pool.draw_fresh(rng, 1))
    counts = np.zeros(30, dtype=np.int64)
    for _ in range(30_000):
        rec = replace_negatives(cfg, pool, rng, np.zeros(1), no_scoring, no_scoring)
        counts[pool.negatives] += 1
    assert rec["n_replaced"] == 1
    assert counts[pos].sum() == 0 and counts[frozen].sum() == 0  # never a positive or frozen
    weight = (pool.popularity[free % 5].astype(float)) ** alpha
    expected = 30_000 * weight / weight.sum()
    seen = expected > 0
    assert counts[free[~seen]].sum() == 0  # item 0 (never a training positive) under alpha 1
    assert stats.chisquare(counts[free[seen]], expected[seen]).pvalue > 1e-3
    if alpha == 1.0:  # and the test can tell: the uniform expectation is rejected
        uniform = np.full(seen.sum(), 30_000 / seen.sum())
        assert stats.chisquare(counts[free[seen]], uniform).pvalue < 1e-6


def test_pop_sets_are_distinct_successive_draws_and_exhaust_popular_items() -> None:
    # 12 of the 15 free cells with weight: draws without replacement take every cell of an
    # exhausted item and fill up with the others; asking for more than exist is an error
    pool, pos, frozen, free = hand_pool()
    rng = np.random.default_rng(1)
    eligible = free[free % 5 != 0]
    for k in (1, 5, eligible.size):
        for _ in range(50):
            cells = pool.draw_popular(rng, k, 1.0)
            assert np.unique(cells).size == k and np.isin(cells, eligible).all()
    with pytest.raises(SamplingError, match=f"only {eligible.size} free"):
        pool.draw_popular(rng, eligible.size + 1, 1.0)


def test_weighted_cells_at_scale_match_numpys_successive_draws() -> None:
    # 400 x 50 grid, 10 % blocked, 2,000 distinct draws at a time: the per-item counts agree
    # with numpy's weighted choice without replacement on the free cells (two-sample chi-square)
    rng = np.random.default_rng(2)
    n_users, n_items = 400, 50
    blocked = np.sort(rng.choice(n_users * n_items, 2_000, replace=False))
    w = rng.uniform(0.2, 3.0, n_items)
    free_cells = np.setdiff1d(np.arange(n_users * n_items), blocked)
    p = w[free_cells % n_items] / w[free_cells % n_items].sum()
    ours, numpys = np.zeros(n_items), np.zeros(n_items)
    for _ in range(30):
        cells = sample_weighted_cells(rng, n_users, n_items, 2_000,
                                      item_major(blocked, n_users, n_items), w)
        assert np.unique(cells).size == 2_000 and not np.isin(cells, blocked).any()
        ours += np.bincount(cells % n_items, minlength=n_items)
        ref = rng.choice(free_cells, 2_000, replace=False, p=p)
        numpys += np.bincount(ref % n_items, minlength=n_items)
    assert stats.chi2_contingency(np.stack([ours, numpys])).pvalue > 1e-3
    # and the test has power: against uniform draws it fails
    uni = np.zeros(n_items)
    for _ in range(30):
        uni += np.bincount(rng.choice(free_cells, 2_000, replace=False) % n_items,
                           minlength=n_items)
    assert stats.chi2_contingency(np.stack([ours, uni])).pvalue < 1e-6


def test_pop_ocfb_filters_suspects_of_pop_draws() -> None:
    from tests.test_strategies import grid

    pos, logits = grid(0)
    error_of, logit_of = scorers(logits)
    pool = NegativePool(20, 30, pos, exclude_removed=True)
    pool.popularity = np.bincount(pos % 30, minlength=30)
    rng = np.random.default_rng(3)
    pool.set_all(pool.draw_fresh(rng, 100))
    cfg = make_run_config({"strategy": "pop-ocfb", "pop_alpha": 1.0, "max_redraws": 50})
    rec = replace_negatives(cfg, pool, rng, np.zeros(100), error_of, logit_of)
    assert rec["n_suspects"] > 0 and rec["n_kept_suspects"] == 0
    assert (error_of(pool.negatives) < 0.5).all()
    assert np.isin(pool.negatives % 30, np.flatnonzero(pool.popularity)).all()
    assert not np.isin(pool.negatives, pos).any()
    assert not np.isin(pool.negatives, pool.removed).any()
    assert np.unique(pool.negatives).size == 100


# -- srns ----------------------------------------------------------------------------------------


def test_window_std_counts_only_the_cells_own_scores() -> None:
    # ring of 3 steps, now at step 4 (plane 1); cell 0 has 3 scores, cell 1 only this one,
    # cell 2 the last two (planes 1 and 0)
    hist = np.array([[0.2, 9.0, 0.3], [0.4, 0.5, 0.6], [0.6, 9.0, 9.0]], dtype=np.float32)
    std = window_std(hist[:, None, :], np.array([[3, 1, 2]], dtype=np.int8), 4)
    np.testing.assert_allclose(std[0], [np.std([0.2, 0.4, 0.6]), 0.0, 0.15], atol=1e-7)


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_srns_chooses_the_fluctuating_candidate_over_the_planted_false_negative(
    alpha: float,
) -> None:
    # One slot, memory [current, fn, hard, filler]. Over five terms the hand-set table scores
    # fn 0.91 every term (high mean, no variance: a planted false negative) and hard
    # 0.7, 0.99, 0.7, 0.99, 0.9 (high mean, high variance); fillers 0.01 are the ones evicted.
    n_users, n_items = 4, 10
    pos = np.array([0, 11, 22])
    cur, fn, hard, filler = 5, 17, 33, 38
    pool = NegativePool(n_users, n_items, pos, exclude_removed=True)
    pool.set_all(np.array([cur]))
    pool.strategy_state.update(
        memory=np.array([[cur, fn, hard, filler]]),
        history=np.zeros((5, 1, 4), dtype=np.float32),
        age=np.zeros((1, 4), dtype=np.int8),
        step=np.zeros((), dtype=np.int64),
    )
    cfg = make_run_config({"strategy": "srns", "srns_memory": 4, "srns_candidates": 1,
                           "srns_alpha": alpha, "srns_warmup": 1})
    rng = np.random.default_rng(0)
    chosen = []
    seq = (0.7, 0.99, 0.7, 0.99, 0.9)
    for p_hard in seq:
        prob = np.full(n_users * n_items, 0.01)
        prob[cur], prob[fn], prob[hard] = 0.1, 0.91, p_hard
        logits = np.log(prob / (1 - prob)).reshape(n_users, n_items)
        error_of, logit_of = scorers(logits)
        rec = replace_negatives(cfg, pool, rng, error_of(pool.negatives), error_of, logit_of)
        chosen.append(int(pool.negatives[0]))
        assert rec["n_srns_fallback"] == 0
        mem = pool.strategy_state["memory"][0]
        assert mem[0] == pool.negatives[0] and {fn, hard} <= set(mem.tolist())
        assert not np.isin(mem, pos).any()
    if alpha == 1.0:
        # term 0: weight 0 (warm-up), the highest score wins; later the std decides
        assert chosen == [fn, hard, fn, hard, hard]
        st = pool.strategy_state
        std = window_std(st["history"], st["age"], int(st["step"]) - 1)[0]
        col = {int(c): j for j, c in enumerate(st["memory"][0])}
        assert std[col[fn]] < 1e-6
        assert std[col[hard]] == pytest.approx(np.std(seq), abs=1e-5)
    else:  # without the variance term srns is a memory-based dns: the false negative wins
        assert chosen == [fn, hard, fn, hard, fn]


def test_srns_keeps_the_pool_rules(small: Interactions) -> None:
    run = OCFBRun(small_cfg(protocol="holdout", strategy="srns", terms=4), small)
    h = run.holdout
    n_items = small.n_items
    frozen = np.concatenate([(h.val_users[:, None] * n_items + h.val_candidates).ravel(),
                             (h.test_users[:, None] * n_items + h.test_candidates).ravel()])
    hist = []
    for rec in run:
        hist.append(rec)
        mem = run.pool.strategy_state.get("memory")
        if mem is not None:
            assert not np.isin(mem, small.cells).any() and not np.isin(mem, frozen).any()
            np.testing.assert_array_equal(mem[:, 0], run.negatives)
        assert np.unique(run.negatives).size == 600 and not np.isin(run.negatives, frozen).any()
    assert all(0 < r["n_replaced"] <= 600 for r in hist[1:])
    assert [r["srns_weight"] for r in hist[1:]] == [0.0, 1.0, 1.0, 1.0]


def test_srns_config_errors_name_the_keys() -> None:
    with pytest.raises(ConfigError, match="srns_candidates=3 must be < srns_memory=3"):
        make_run_config({"strategy": "srns", "srns_memory": 3, "srns_candidates": 3})
    cfg = make_run_config({"strategy": "pop"})
    assert {"threshold", "srns_memory", "max_redraws", "exclude_removed"} <= set(
        cfg.inapplicable_keys())
    assert "pop_alpha" not in cfg.inapplicable_keys()
    filt = make_run_config({"strategy": "pop-ocfb"}).inapplicable_keys()
    assert not {"pop_alpha", "threshold", "max_redraws", "exclude_removed"} & set(filt)


# -- resume ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives (as tests/test_algorithm.py)."""
    return synthetic_influencer(100, 200, 800, seed=1)


@pytest.mark.parametrize("strategy", ["pop", "pop-ocfb", "srns"])
@pytest.mark.parametrize("protocol", ["paper", "holdout"])
def test_resume_after_any_term_reproduces_the_run(
    small: Interactions, strategy: str, protocol: str, tmp_path: Any
) -> None:
    cfg = small_cfg(protocol=protocol, strategy=strategy, terms=4, threshold=0.3)
    whole = OCFBRun(cfg, small)
    full = list(whole)
    for k in range(cfg.terms):  # stop after term k, save, continue in a new run
        first = OCFBRun(cfg, small)
        for _ in range(k + 1):
            first.step()
        first.save(tmp_path / f"run{k}.pt")
        resumed = OCFBRun(cfg, small)
        resumed.load(tmp_path / f"run{k}.pt")
        list(resumed)
        assert same_records(full, resumed.history), (strategy, k)
        np.testing.assert_array_equal(resumed.negatives, whole.negatives)
        assert resumed.pool.strategy_state.keys() == whole.pool.strategy_state.keys()
        for key, v in whole.pool.strategy_state.items():  # srns: memory, history, step
            np.testing.assert_array_equal(resumed.pool.strategy_state[key], v)
    assert bool(whole.pool.strategy_state) == (strategy == "srns")
