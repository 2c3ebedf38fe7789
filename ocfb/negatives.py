"""The negative set of one OCF-B run and its incremental bookkeeping.

A `NegativePool` holds the negative *slots* (one cell each; a slot keeps its position when its
cell is replaced, which the paper protocol's train/val/test slot assignment relies on), the
removed set (suspected positives never drawn again under `exclude_removed`), and two sorted
blocked sets that are updated by merging only what changed:

- `fixed` = base (every known positive, plus the frozen evaluation candidates under holdout)
  plus the removed set: what no draw may ever return;
- `blocked` = `fixed` plus the current negatives: what a draw that keeps the other slots must
  avoid.

Rebuilding and re-sorting these sets every term cost about 5 s at MovieLens-1M shape (5M ids);
the merges cost O(n + k log n) for k changed cells. The draws themselves are the same calls on
the same sets as before, so a seed gives exactly the negatives the rebuild-every-term
implementation gave (tests/test_sampling.py keeps a copy of it and compares).
"""

from __future__ import annotations

import numpy as np

from ocfb.sampling import (
    isin_sorted,
    item_major,
    merge_sorted,
    remove_sorted,
    sample_free_cells,
    sample_weighted_cells,
    sorted_unique,
)


class NegativePool:
    """Current negatives, removed suspects and the sorted sets that draws must avoid."""

    def __init__(
        self, n_users: int, n_items: int, base: np.ndarray, *, exclude_removed: bool
    ) -> None:
        self.n_users = n_users
        self.n_items = n_items
        self.base = sorted_unique(base)
        self.exclude_removed = exclude_removed
        self.negatives = np.empty(0, dtype=np.int64)
        self.removed = np.empty(0, dtype=np.int64)  # sorted, unique
        self.fixed = self.base
        self._blocked: np.ndarray | None = self.base
        # item weights of popularity draws (`pop`, `pop-ocfb`): the caller sets the training
        # positives' count per item; None until then
        self.popularity: np.ndarray | None = None
        # a strategy's own arrays that must survive a checkpoint (srns's memory and history)
        self.strategy_state: dict[str, np.ndarray] = {}
        self._fixed_t: tuple[np.ndarray, np.ndarray] | None = None  # (fixed, item-major copy)

    @property
    def blocked(self) -> np.ndarray:
        """`fixed` plus the current negatives, sorted; merged only when a draw needs it.

        resample-all and dns replace the whole set and never draw besides it, so they never pay
        for this merge (0.3-1.4 s at 4M negatives).
        """
        if self._blocked is None:
            self._blocked = merge_sorted(self.fixed, self.negatives)
        return self._blocked

    # -- draws ------------------------------------------------------------------------------

    def draw_fresh(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """k distinct cells outside `fixed` (a whole new set: old negatives may come back)."""
        return sample_free_cells(rng, self.n_users, self.n_items, k, self.fixed)

    def draw_besides(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """k distinct cells outside `blocked` (new cells for some slots while others stay)."""
        return sample_free_cells(rng, self.n_users, self.n_items, k, self.blocked)

    def draw_popular(self, rng: np.random.Generator, k: int, alpha: float, *,
                     besides: bool = False) -> np.ndarray:
        """k distinct cells outside `fixed` (or `blocked`); P(cell) ∝ item popularity ** alpha.

        alpha 0 is the uniform draw itself (the same call as `draw_fresh` / `draw_besides`).
        """
        if alpha == 0:
            return self.draw_besides(rng, k) if besides else self.draw_fresh(rng, k)
        if self.popularity is None:
            raise ValueError("draw_popular: the pool's item popularity was never set")
        weights = self.popularity.astype(np.float64) ** alpha
        if besides:
            blocked_t = item_major(self.blocked, self.n_users, self.n_items)
        else:
            if self._fixed_t is None or self._fixed_t[0] is not self.fixed:
                # `fixed` only changes when cells are removed: pop reuses one transposition
                self._fixed_t = (self.fixed, item_major(self.fixed, self.n_users, self.n_items))
            blocked_t = self._fixed_t[1]
        return sample_weighted_cells(rng, self.n_users, self.n_items, k, blocked_t, weights)

    # -- updates ----------------------------------------------------------------------------

    def set_all(self, negatives: np.ndarray) -> None:
        """Replace the whole set (term 0, resample-all, dns); cells must lie outside `fixed`."""
        self.negatives = np.asarray(negatives, dtype=np.int64)
        self._blocked = None

    def freeze(self, cells: np.ndarray) -> None:
        """Put `cells` out of every draw for good: they join `base` (and so `fixed`).

        The paper protocol's validation negatives, held outside the pool from term 0 on, so no
        strategy rewrites them and no draw duplicates them. Idempotent (a resumed run freezes
        the same cells again).
        """
        cells = np.asarray(cells, dtype=np.int64)
        self.base = sorted_unique(np.concatenate([self.base, cells]))
        self.fixed = sorted_unique(np.concatenate([self.fixed, cells]))
        self._blocked = None

    def mark_removed(self, cells: np.ndarray) -> None:
        """Add current negatives to the removed set (suspected positives; `exclude_removed`).

        They stay in `blocked` (still negatives until their slots are refilled), so only
        `fixed` and `removed` change.
        """
        if not self.exclude_removed or cells.size == 0:
            return
        _ = self.blocked  # materialise it first: afterwards `fixed` overlaps the negatives
        self.removed = merge_sorted(self.removed, cells)
        self.fixed = merge_sorted(self.fixed, cells)

    def replace_slots(self, slots: np.ndarray, fresh: np.ndarray) -> None:
        """Put `fresh` cells (drawn with `draw_besides`) into `slots` (indices)."""
        old = self.negatives[slots]
        blocked = merge_sorted(self.blocked, fresh)
        # an old cell stays blocked only if it went to the removed set
        leaving = old if not self.exclude_removed else old[~isin_sorted(old, self.removed)]
        self._blocked = remove_sorted(blocked, leaving)
        negatives = self.negatives.copy()
        negatives[slots] = fresh
        self.negatives = negatives

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the strategy's own state (for a checkpoint)."""
        return {k: v.copy() for k, v in self.strategy_state.items()}

    def load(
        self,
        negatives: np.ndarray,
        removed: np.ndarray,
        strategy_state: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Restore negatives, removed cells and strategy state (a checkpoint); rebuild the sets."""
        self.strategy_state = {k: np.array(v, copy=True) for k, v in
                               (strategy_state or {}).items()}
        self.negatives = np.asarray(negatives, dtype=np.int64).copy()
        self.removed = sorted_unique(removed)
        self.fixed = merge_sorted(self.base, self.removed)
        self._blocked = None

