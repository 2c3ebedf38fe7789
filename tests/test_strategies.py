"""`ocfb-resample` and `dns` against a stub scoring table whose logits are set by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from ocfb.models import predict_cell_logits
from ocfb.negatives import NegativePool
from ocfb.strategies import dns, dns_choose, ocfb_resample


class TableModel(nn.Module):
    """A scoring module whose logit for (user, item) is read from a hand-set table."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The table's logits for the pairs."""
        return self.table[users, items]


def scorers(logits: np.ndarray):
    """(error_of, logit_of) as the loop builds them, through the one prediction function."""
    model, n_items = TableModel(logits), logits.shape[1]

    def logit_of(cells: np.ndarray) -> np.ndarray:
        return predict_cell_logits(model, cells, n_items).numpy().astype(np.float64)

    def error_of(cells: np.ndarray) -> np.ndarray:
        return torch.sigmoid(predict_cell_logits(model, cells, n_items)).numpy().astype(np.float64)

    return error_of, logit_of


def grid(seed: int, n_users: int = 20, n_items: int = 30, n_pos: int = 60, p_suspect: float = 0.3):
    """Positives, and a logit table where a share of the cells are suspects (logit > 0)."""
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(n_users * n_items, n_pos, replace=False))
    logits = np.where(rng.random((n_users, n_items)) < p_suspect, 2.0, -2.0)
    logits += rng.normal(0, 0.1, logits.shape)  # distinct scores
    return pos, logits


# -- ocfb-resample ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_redraws", [0, 1, 3, 50])
def test_ocfb_resample_rounds_removed_set_and_kept_suspects(max_redraws: int) -> None:
    pos, logits = grid(0)
    is_suspect = (logits >= 0).ravel()
    error_of, _ = scorers(logits)
    rounds: list[np.ndarray] = []

    def recording(cells: np.ndarray) -> np.ndarray:
        rounds.append(cells.copy())
        return error_of(cells)

    pool = NegativePool(20, 30, pos, exclude_removed=True)
    pool.set_all(pool.draw_fresh(np.random.default_rng(5), 100))
    rec = ocfb_resample(pool, np.random.default_rng(6), recording, 0.5, max_redraws)
    final = set(pool.negatives.tolist())
    suspects = [c[is_suspect[c]] for c in rounds]
    assert len(rounds) == rec["n_redraw_rounds"] + 1
    assert rec["n_suspects"] == sum(s.size for s in suspects)
    for r, s in enumerate(suspects[:-1]):
        # a round remained: no suspect of round r is kept, and each one is in the removed set
        assert not final & set(s.tolist()), r
        assert np.isin(s, pool.removed).all()
    # after the last round a slot keeps its draw, suspect or not, and the record counts them
    assert rec["n_kept_suspects"] == suspects[-1].size == int(is_suspect[pool.negatives].sum())
    if max_redraws == 50:
        assert rec["n_kept_suspects"] == 0 and rec["n_redraw_rounds"] >= 2
    if max_redraws == 0:
        assert rec["n_kept_suspects"] > 10 and pool.removed.size == 0
    np.testing.assert_array_equal(pool.removed, np.sort(np.concatenate([*suspects[:-1], []])))
    # never a positive or a removed cell, never a repeat; every draw of a term is distinct
    assert not np.isin(pool.negatives, pos).any()
    assert not np.isin(pool.negatives, pool.removed).any()
    assert np.unique(pool.negatives).size == 100
    drawn = np.concatenate(rounds)
    assert np.unique(drawn).size == drawn.size


def test_ocfb_resample_draws_uniformly_among_the_cells_that_remain() -> None:
    # 6 x 8 grid: 8 positives, 10 suspects, 30 clean cells; 8 negatives per term.
    # By symmetry the final set must be a uniform 8-subset of the 30 clean cells.
    rng = np.random.default_rng(3)
    pos = np.sort(rng.choice(48, 8, replace=False))
    rest = np.setdiff1d(np.arange(48), pos)
    suspect_cells = rng.choice(rest, 10, replace=False)
    logits = np.full(48, -3.0)
    logits[suspect_cells] = 3.0
    error_of, _ = scorers(logits.reshape(6, 8))
    counts = np.zeros(48, dtype=np.int64)
    for _ in range(3_000):
        pool = NegativePool(6, 8, pos, exclude_removed=True)
        pool.set_all(pool.draw_fresh(rng, 8))
        ocfb_resample(pool, rng, error_of, 0.5, 20)
        counts[pool.negatives] += 1
    clean = np.setdiff1d(rest, suspect_cells)
    assert counts[pos].sum() == 0 and counts[suspect_cells].sum() == 0
    assert counts[clean].sum() == 24_000
    assert stats.chisquare(counts[clean]).pvalue > 1e-3


def test_ocfb_resample_without_exclude_removed_still_redraws() -> None:
    pos, logits = grid(1)
    error_of, _ = scorers(logits)
    pool = NegativePool(20, 30, pos, exclude_removed=False)
    pool.set_all(pool.draw_fresh(np.random.default_rng(0), 100))
    rec = ocfb_resample(pool, np.random.default_rng(1), error_of, 0.5, 50)
    assert pool.removed.size == 0
    assert rec["n_suspects"] > 0 and rec["n_kept_suspects"] == 0
    np.testing.assert_array_equal(pool.blocked, np.union1d(pos, pool.negatives))


# -- dns ---------------------------------------------------------------------------------------


def test_dns_choose_argmax_and_contested_cells() -> None:
    cand = np.array([[10, 11, 12], [13, 14, 15], [12, 16, 17], [12, 18, 19]])
    scores = np.array([[0.1, 0.2, 0.9], [0.5, 0.4, 0.3], [3.0, 2.0, 1.0], [5.0, 1.0, 4.0]])
    chosen, pending = dns_choose(cand, scores)
    # rows 0, 2 and 3 all want cell 12 most: the lowest row (0) gets it, the others their next
    np.testing.assert_array_equal(chosen, [12, 13, 16, 19])
    assert pending.size == 0
    # a row whose candidates are all taken is reported, not given a repeat
    chosen, pending = dns_choose(np.array([[1, 2], [1, 2], [1, 2]]), np.zeros((3, 2)))
    np.testing.assert_array_equal(chosen, [1, 2, -1])
    np.testing.assert_array_equal(pending, [2])


@pytest.mark.parametrize("seed", range(3))
def test_dns_keeps_the_best_free_candidate_and_never_a_blocked_cell(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 40
    logits = rng.normal(0, 1, (n_users, n_items))
    cells = rng.permutation(n_users * n_items)
    positives, frozen, removed = cells[:100], cells[100:150], cells[150:200]
    pool = NegativePool(n_users, n_items, np.union1d(positives, frozen), exclude_removed=True)
    pool.load(cells[200:260], removed)  # 60 current negatives, 50 removed suspects
    _, logit_of = scorers(logits)
    blocks: list[np.ndarray] = []

    def recording(c: np.ndarray) -> np.ndarray:
        blocks.append(c.copy())
        return logit_of(c)

    rec = dns(pool, rng, recording, 5)
    assert len(blocks) == 1 and blocks[0].size == 60 * 5  # one forward over the whole block
    cand = blocks[0].reshape(60, 5)
    score = logits.ravel()
    chosen = pool.negatives
    assert rec["n_dns_fallback"] == 0
    assert np.unique(chosen).size == 60
    for c in (cand.ravel(), chosen):
        assert not np.isin(c, positives).any()
        assert not np.isin(c, frozen).any()
        assert not np.isin(c, removed).any()
    n_argmax = 0
    for i in range(60):
        assert chosen[i] in cand[i]
        better = cand[i][score[cand[i]] > score[chosen[i]]]
        # a better candidate of this slot is only skipped when another slot holds it
        assert np.isin(better, np.delete(chosen, i)).all()
        n_argmax += better.size == 0
    assert n_argmax >= 48  # contested bests are few: 300 candidates over 1,000 free cells
    np.testing.assert_array_equal(pool.blocked, np.union1d(pool.fixed, chosen))


def test_dns_on_a_nearly_full_grid_falls_back_to_uniform_draws() -> None:
    # 4 x 5 grid, 5 positives, 14 negatives: 15 free cells, so candidates collide a lot
    rng = np.random.default_rng(0)
    pos = np.arange(0, 20, 4)
    pool = NegativePool(4, 5, pos, exclude_removed=True)
    pool.set_all(pool.draw_fresh(rng, 14))
    _, logit_of = scorers(rng.normal(size=(4, 5)))
    fallbacks = 0
    for _ in range(20):
        fallbacks += dns(pool, rng, logit_of, 2)["n_dns_fallback"]
        assert np.unique(pool.negatives).size == 14
        assert not np.isin(pool.negatives, pos).any()
    assert fallbacks > 0
