"""Negative sampler: never a positive, a current negative, an excluded cell, or a repeat."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ocfb.config import make_run_config
from ocfb.negatives import NegativePool
from ocfb.sampling import (
    SamplingError,
    blocked_below,
    blocked_cells,
    isin_sorted,
    merge_sorted,
    remove_sorted,
    sample_negatives,
    searchsorted_many,
    sorted_unique,
    split_cells,
)
from ocfb.strategies import replace_negatives

SHAPES = [(2, 2), (3, 7), (17, 5), (50, 40), (407, 462)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(8))
def test_draws_are_fresh_distinct_and_in_range(shape: tuple[int, int], seed: int) -> None:
    n_users, n_items = shape
    total = n_users * n_items
    rng = np.random.default_rng(seed)
    # random disjoint positive / current / excluded sets covering up to ~90 % of the grid
    perm = rng.permutation(total)
    a, b, c = (int(x * total) for x in rng.dirichlet([1, 1, 1]) * rng.uniform(0.1, 0.9))
    pos, cur, exc = perm[:a], perm[a : a + b], perm[a + b : a + b + c]
    free = total - a - b - c
    for k in sorted({0, 1, free // 2, free}):
        neg = sample_negatives(rng, n_users, n_items, k, pos, cur, exc)
        assert neg.size == k
        assert np.unique(neg).size == k
        assert neg.min(initial=0) >= 0 and neg.max(initial=0) < total
        assert not np.isin(neg, pos).any()
        assert not np.isin(neg, cur).any()
        assert not np.isin(neg, exc).any()
    # k == free must return exactly the free cells
    neg = sample_negatives(rng, n_users, n_items, free, pos, cur, exc)
    expected = np.setdiff1d(np.arange(total), np.concatenate([pos, cur, exc]))
    np.testing.assert_array_equal(np.sort(neg), expected)


def test_nearly_full_grid() -> None:
    rng = np.random.default_rng(3)
    total = 30 * 20
    pos = rng.choice(total, total - 3, replace=False)
    neg = sample_negatives(rng, 30, 20, 3, pos)
    np.testing.assert_array_equal(np.sort(neg), np.setdiff1d(np.arange(total), pos))


def test_too_many_is_an_error_that_counts_free_cells() -> None:
    rng = np.random.default_rng(0)
    pos = np.arange(10)
    with pytest.raises(SamplingError, match=r"asked for 7 negatives but only 6 free"):
        sample_negatives(rng, 4, 4, 7, pos)


def test_seeded_and_seed_sensitive() -> None:
    pos = np.arange(0, 2000, 7)
    a = sample_negatives(np.random.default_rng(5), 40, 50, 300, pos)
    b = sample_negatives(np.random.default_rng(5), 40, 50, 300, pos)
    c = sample_negatives(np.random.default_rng(6), 40, 50, 300, pos)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))


def test_uniform_over_free_cells() -> None:
    # 20,000 single draws over 10 free cells: a chi-square test must not reject uniformity
    rng = np.random.default_rng(11)
    pos = np.array([0, 3, 4, 9, 12, 13])
    blocked = blocked_cells(pos)
    counts: dict[int, int] = {}
    draws = np.concatenate([sample_negatives(rng, 4, 4, 1, blocked) for _ in range(20_000)])
    cells, n = np.unique(draws, return_counts=True)
    counts = dict(zip(cells.tolist(), n.tolist(), strict=True))
    assert set(counts) == set(range(16)) - set(pos.tolist())
    assert stats.chisquare(n).pvalue > 1e-3


def test_split_cells_roundtrip() -> None:
    users, items = split_cells(np.array([0, 5, 11]), 4)
    np.testing.assert_array_equal(users, [0, 1, 2])
    np.testing.assert_array_equal(items, [0, 1, 3])


# -- the sorted-set helpers ----------------------------------------------------------------------


def test_sorted_unique_merge_remove_and_membership(rng: np.random.Generator) -> None:
    raw = rng.integers(0, 10_000, 3_000)  # with repeats
    base = sorted_unique(raw)
    np.testing.assert_array_equal(base, np.unique(raw))
    new = rng.permutation(np.setdiff1d(np.arange(10_000), base))[:500]
    merged = merge_sorted(base, new)
    np.testing.assert_array_equal(merged, np.union1d(base, new))
    gone = rng.choice(merged, 700, replace=False)
    np.testing.assert_array_equal(remove_sorted(merged, gone), np.setdiff1d(merged, gone))
    probe = rng.integers(-5, 10_005, 2_000)
    np.testing.assert_array_equal(isin_sorted(probe, merged), np.isin(probe, merged))
    with pytest.raises(ValueError, match="not in the blocked set"):
        remove_sorted(base, np.array([-1]))


# -- incremental bookkeeping gives exactly the old implementation's negatives -------------------


class OldNegatives:
    """The rebuild-every-term bookkeeping as it was before NegativePool (kept to compare)."""

    def __init__(self, n_users: int, n_items: int, base: np.ndarray, cfg, rng) -> None:
        self.n_users, self.n_items, self.base, self.cfg, self.rng = n_users, n_items, base, cfg, rng
        self.negatives = np.empty(0, dtype=np.int64)
        self.removed = np.empty(0, dtype=np.int64)

    def draw(self, k: int, current: np.ndarray | None) -> np.ndarray:
        exclude = self.removed if self.cfg.exclude_removed else None
        parts = [p for p in (self.base, current, exclude) if p is not None and p.size]
        blocked = np.unique(np.concatenate(parts))
        free = self.n_users * self.n_items - blocked.size
        ranks = self.rng.choice(free, size=k, replace=False).astype(np.int64)
        shifted = blocked - np.arange(blocked.size, dtype=np.int64)
        return ranks + np.searchsorted(shifted, ranks, side="right").astype(np.int64)

    def replace(self, errors: np.ndarray) -> int:
        cfg, n = self.cfg, self.negatives.size
        if cfg.strategy == "ocfb":
            mask = errors >= cfg.threshold
        elif cfg.strategy == "random-replace":
            k = (int(round(cfg.replace_fraction * n)) if cfg.replace_fraction is not None
                 else int((errors >= cfg.threshold).sum()))
            mask = np.zeros(n, dtype=bool)
            mask[self.rng.choice(n, size=k, replace=False)] = True
        elif cfg.strategy == "resample-all":
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.zeros(n, dtype=bool)
        k = int(mask.sum())
        if k == 0:
            return 0
        if cfg.strategy == "resample-all":
            self.negatives = self.draw(n, current=None)
            return k
        if cfg.strategy == "ocfb" and cfg.exclude_removed:
            self.removed = np.union1d(self.removed, self.negatives[mask])
        fresh = self.draw(k, current=self.negatives)
        negatives = self.negatives.copy()
        negatives[np.flatnonzero(mask)] = fresh
        self.negatives = negatives
        return k


OLD_CASES = [  # (n_users, n_items, positives, negatives, threshold)
    (7, 9, 20, 12, 0.7), (50, 40, 300, 500, 0.8), (407, 462, 2_000, 8_000, 0.9),
    (300, 1_000, 30_000, 60_000, 0.95),
]
OLD_STRATEGIES = [
    {"strategy": "ocfb"}, {"strategy": "ocfb", "exclude_removed": False},
    {"strategy": "random-replace"}, {"strategy": "random-replace", "replace_fraction": 0.25},
    {"strategy": "resample-all"}, {"strategy": "static"},
]


@pytest.mark.parametrize("case", OLD_CASES)
@pytest.mark.parametrize("strategy", OLD_STRATEGIES, ids=lambda s: "-".join(map(str, s.values())))
def test_incremental_bookkeeping_gives_the_old_negatives(case: tuple, strategy: dict) -> None:
    n_users, n_items, n_pos, n_neg, threshold = case
    cfg = make_run_config({**strategy, "threshold": threshold})
    setup = np.random.default_rng(n_pos)
    base = np.sort(setup.choice(n_users * n_items, n_pos, replace=False))
    old = OldNegatives(n_users, n_items, base, cfg, np.random.default_rng(9))
    pool, rng = NegativePool(n_users, n_items, base, exclude_removed=cfg.exclude_removed), \
        np.random.default_rng(9)
    old.negatives = old.draw(n_neg, current=None)
    pool.set_all(pool.draw_fresh(rng, n_neg))
    errors_rng = np.random.default_rng(1)
    for _ in range(6):
        np.testing.assert_array_equal(pool.negatives, old.negatives)
        np.testing.assert_array_equal(pool.removed, old.removed)
        errors = errors_rng.random(n_neg)
        k_old = old.replace(errors)

        def no_scoring(cells: np.ndarray) -> np.ndarray:
            raise AssertionError("the four original strategies score nothing extra")

        rec = replace_negatives(cfg, pool, rng, errors, no_scoring, no_scoring)
        assert rec["n_replaced"] == k_old
        # the incrementally kept sets equal the rebuilt ones
        np.testing.assert_array_equal(pool.fixed, np.union1d(base, pool.removed))
        np.testing.assert_array_equal(
            pool.blocked, np.unique(np.concatenate([base, pool.removed, pool.negatives]))
        )
    np.testing.assert_array_equal(pool.negatives, old.negatives)
    assert (old.removed.size > 0) == (cfg.strategy == "ocfb" and cfg.exclude_removed)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("big", [False, True])
def test_searchsorted_many_equals_numpy(rng: np.random.Generator, side: str, big: bool) -> None:
    sorted_set = np.sort(rng.choice(10**7, 50_000, replace=False))
    queries = rng.integers(0, 2**62 if big else 10**7, 100_000)  # big: the argsort fallback
    queries[:1000] = sorted_set[:1000]  # exact hits, where left and right differ
    np.testing.assert_array_equal(searchsorted_many(sorted_set, queries, side),
                                  np.searchsorted(sorted_set, queries, side=side))


@pytest.mark.parametrize("n_blocked", [0, 1, 63, 64, 65, 1_000, 200_003])
@pytest.mark.parametrize("clustered", [False, True])
def test_blocked_below_equals_the_search_over_the_shifted_array(
    rng: np.random.Generator, n_blocked: int, clustered: bool
) -> None:
    # the strided search (few ranks) and the full one (many) both give
    # searchsorted(blocked - arange, r, "right") for every rank, including ranks that sit
    # exactly on a shifted value, inside long runs of consecutive blocked cells (clustered:
    # many equal shifted values), and beyond the last blocked cell
    total = 10 * n_blocked + 100
    if clustered:  # runs of 100 consecutive cells
        starts = rng.choice(total // 100, n_blocked // 100 + 1, replace=False) * 100
        blocked = np.unique((starts[:, None] + np.arange(100)).ravel())[:n_blocked]
    else:
        blocked = np.sort(rng.choice(total, n_blocked, replace=False))
    shifted = blocked - np.arange(blocked.size)
    free = total - blocked.size
    for k in (1, 7, max(1, blocked.size // 200), blocked.size + 5):
        ranks = rng.integers(0, free, k)
        if shifted.size:
            ranks[: min(k, 3)] = shifted[rng.integers(0, shifted.size, min(k, 3))]
        ranks[-1] = free - 1
        np.testing.assert_array_equal(blocked_below(ranks, blocked),
                                      np.searchsorted(shifted, ranks, side="right"))
