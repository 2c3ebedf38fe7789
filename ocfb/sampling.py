"""Uniform negative sampling over the unobserved (user, item) cells of the interaction grid.

Cells are flat ids `user * n_items + item`. Drawing is exact and vectorized: k distinct ranks
are drawn among the free cells, and each rank is mapped to its cell by skipping the blocked
cells below it (a searchsorted over the sorted blocked set), so there is no rejection loop and no
Python loop per sample.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class SamplingError(ValueError):
    """More negatives were asked for than there are free cells."""


def blocked_cells(*cell_sets: Iterable[int] | np.ndarray | None) -> np.ndarray:
    """Sorted unique union of cell-id arrays (positives, current negatives, excluded suspects)."""
    parts = [np.asarray(c, dtype=np.int64).ravel() for c in cell_sets if c is not None]
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))


def free_cell_count(n_users: int, n_items: int, blocked: np.ndarray) -> int:
    """Number of cells not in the sorted unique `blocked` array."""
    return n_users * n_items - int(blocked.size)


def sample_free_cells(
    rng: np.random.Generator, n_users: int, n_items: int, k: int, blocked: np.ndarray
) -> np.ndarray:
    """Draw k distinct cells uniformly from the cells not in `blocked` (sorted, unique).

    Raises SamplingError naming how many free cells exist when k exceeds them.
    """
    if k < 0:
        raise SamplingError(f"number of negatives must be >= 0 (got {k})")
    total = n_users * n_items
    if blocked.size and (blocked[0] < 0 or blocked[-1] >= total):
        raise SamplingError(f"blocked cell ids must lie in [0, {total})")
    free = total - int(blocked.size)
    if k > free:
        raise SamplingError(
            f"asked for {k} negatives but only {free} free (user, item) cells exist on the "
            f"{n_users} x {n_items} grid ({int(blocked.size)} are positives, current negatives "
            "or excluded)"
        )
    if k == 0:
        return np.empty(0, dtype=np.int64)
    ranks = rng.choice(free, size=k, replace=False).astype(np.int64)
    # The r-th free cell is r + j, where j counts blocked cells b with b - (its index) <= r.
    shifted = blocked - np.arange(blocked.size, dtype=np.int64)
    return ranks + np.searchsorted(shifted, ranks, side="right").astype(np.int64)


def sample_negatives(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    k: int,
    positives: np.ndarray,
    current: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Draw k new negatives: never a positive, a current negative, an excluded cell, or a repeat."""
    return sample_free_cells(rng, n_users, n_items, k, blocked_cells(positives, current, exclude))


def split_cells(cells: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat cell ids back to (users, items)."""
    return cells // n_items, cells % n_items
