"""Negative sampler: never a positive, a current negative, an excluded cell, or a repeat."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ocfb.sampling import SamplingError, blocked_cells, sample_negatives, split_cells

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
