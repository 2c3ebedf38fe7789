"""The built-in synthetic data set: seeded positive-only interactions with planted structure.

Shaped like the paper's influencer data by default (407 users x 462 items x 2,000 positives),
and realistic at MovieLens sizes: per-user activity follows a capped power law that always
leaves each user a share of the catalogue unobserved (the holdout protocol needs unobserved
items to sample candidates from), and item popularity follows a power law.

Without the cap, the Zipf head at MovieLens-1M's shape (6,040 x 3,706 x 1M) gave some users
every item, and the holdout protocol could not sample candidates for them. With it (reserve
max(100, 20 %) = 742 items) the paper's shape is unchanged bit for bit, since no user there
comes near its cap of 362.

Grids up to 2**26 cells (ML-1M is 22M) draw every user's items by Gumbel-top-k with its own
taste vector. Larger grids (ML-20M: 138,493 x 26,744 = 3.7e9 cells, where one Gumbel number per
cell would take ~400 s) give users one of 2**26 // n_items taste types and draw most of them by
successive sampling (:mod:`ocfb.data.successive`), which has the same law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocfb.data.interactions import Interactions
from ocfb.data.successive import race_top_k, successive_by_type

SYNTHETIC_SOURCE = "synthetic-influencer"


# Synthetic timestamps start 2020-01-01 UTC and spread over two years (or wider for huge sets).
_SYNTH_T0 = 1_577_836_800
_SYNTH_SPAN = 2 * 365 * 86_400
# Bound on the logits block held in memory at once (entries, float64): ~64 MB.
_SYNTH_BLOCK = 8_000_000
# Grids up to this many cells give every user its own taste vector and draw by Gumbel-top-k
# (the paper's 0.19M cells, ML-1M's 22M, the 1,900 x 17,600 real-data shape's 33M). Larger
# grids give users one of _EXACT_CELLS // n_items taste types (2,509 at ML-20M's 26,744 items)
# and draw light users by successive sampling: one Gumbel per cell would take ~400 s there.
_EXACT_CELLS = 1 << 26


def _power_law_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Zipf-like weights rank**-exponent, assigned to entities in random order."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -float(exponent)
    return weights[rng.permutation(n)]


def _activity_counts(
    rng: np.random.Generator, weights: np.ndarray, total: int, cap: int
) -> np.ndarray:
    """Per-user positive counts: each >= 1 and <= cap, summing exactly to total.

    Everyone gets one, the rest is spread multinomially by activity weight; what overflows a
    full user is redrawn among the others (each round fills at least one user, so it ends).
    """
    counts = np.ones(len(weights), dtype=np.int64)
    remaining = total - len(weights)
    while remaining > 0:
        room = cap - counts
        p = np.where(room > 0, weights, 0.0)
        add = np.minimum(rng.multinomial(remaining, p / p.sum()), room)
        counts += add
        remaining -= int(add.sum())
    return counts


def activity_cap(
    n_users: int,
    n_items: int,
    n_interactions: int,
    min_unobserved: int = 100,
    min_unobserved_share: float = 0.2,
) -> int:
    """Most positives one synthetic user may have: the catalogue minus the reserved unobserved.

    The reserve is ``max(min_unobserved, ceil(min_unobserved_share * n_items))`` when the
    catalogue is large enough for it (462 items -> 100, so at most 362 per user; 3,706 -> 742);
    a small catalogue keeps only the share; and the cap never drops below
    ``ceil(n_interactions / n_users)``, the least that can hold every positive (a full grid
    reserves nothing).
    """
    if min_unobserved < 0:
        raise ValueError(f"min_unobserved must be >= 0, got {min_unobserved}")
    if not 0.0 <= min_unobserved_share < 1.0:
        raise ValueError(f"min_unobserved_share must be in [0, 1), got {min_unobserved_share}")
    least = -(-n_interactions // n_users)  # ceil: the cap that just holds every positive
    share = int(np.ceil(min_unobserved_share * n_items))
    reserve = max(int(min_unobserved), share)
    if n_items - reserve < least:
        reserve = share
    return int(min(n_items, max(least, n_items - reserve)))


def synthetic_influencer(
    n_users: int = 407,
    n_items: int = 462,
    n_interactions: int = 2000,
    *,
    seed: int = 0,
    dim: int = 8,
    popularity_exponent: float = 1.0,
    activity_exponent: float = 1.0,
    temperature: float = 0.2,
    min_unobserved: int = 100,
    min_unobserved_share: float = 0.2,
) -> Interactions:
    """Seeded positive-only data shaped like the paper's (407 x 462 x 2,000 by default).

    Planted structure: user and item taste vectors ``N(0, I_dim)`` and Zipf item popularity
    ``rank**-popularity_exponent``. User ``u`` picks its ``k_u`` items without replacement with
    probabilities proportional to ``exp(u.v / (sqrt(dim) * temperature)) * popularity``, where
    ``k_u`` follows a Zipf activity law (``rank**-activity_exponent``), is >= 1, sums exactly
    to n_interactions and leaves every user ``max(min_unobserved, ceil(min_unobserved_share *
    n_items))`` items unobserved where the sizes allow (:func:`activity_cap`). The default
    temperature makes tastes dominate popularity (planted logits rank held-out positives at
    AUC ~0.97), yet leaves sampling noise; lower is sharper. Above ``_EXACT_CELLS`` cells users
    share taste types (module docstring). When n_interactions >= n_items every item also gets
    >= 1 positive (an empty item takes over the pair whose user likes it best relative to that
    pair's own item), so the set round-trips through a file unchanged. Timestamps are distinct
    seeded random seconds in 2020-2021, unrelated to tastes. Original ids are ``arange``.
    """
    n_users, n_items, n_interactions = int(n_users), int(n_items), int(n_interactions)
    _check_sizes(n_users, n_items, n_interactions, int(dim), temperature)
    cap = activity_cap(n_users, n_items, n_interactions, min_unobserved, min_unobserved_share)

    rng = np.random.default_rng(seed)
    exact = n_users * n_items <= _EXACT_CELLS
    tastes = rng.standard_normal((n_users if exact else _EXACT_CELLS // n_items, int(dim)))
    planted = _Planted(
        user_factors=tastes,
        item_factors=rng.standard_normal((n_items, int(dim))),
        log_popularity=np.log(_power_law_weights(rng, n_items, popularity_exponent)),
        scale=1.0 / (np.sqrt(int(dim)) * temperature),
    )
    counts = _activity_counts(
        rng, _power_law_weights(rng, n_users, activity_exponent), n_interactions, cap
    )
    if exact:
        users, items = _pick_items(rng, planted, counts, np.arange(n_users))
    else:
        planted, users, items = _pick_items_by_type(rng, planted, counts)
    if n_interactions >= n_items:
        _cover_items(users, items, planted)
    cells = users * np.int64(n_items) + items
    order = np.argsort(cells)
    return Interactions(
        users=users[order], items=items[order], n_users=n_users, n_items=n_items,
        user_ids=np.arange(n_users, dtype=np.int64), item_ids=np.arange(n_items, dtype=np.int64),
        timestamps=_timestamps(rng, n_interactions), name=SYNTHETIC_SOURCE,
        n_duplicates_dropped=0,
    )


def _pick_items_by_type(
    rng: np.random.Generator, types_planted: _Planted, counts: np.ndarray
) -> tuple[_Planted, np.ndarray, np.ndarray]:
    """Large grids: users get a uniformly drawn taste type; returns the per-user model + pairs.

    Users whose successive sampling would cost more than a Gumbel row draw by an exponential
    race (Gumbel-top-k in float32) on their type's logits, the rest by successive sampling;
    both are sampling without replacement proportional to the same weights.
    """
    tastes = types_planted.user_factors
    types = rng.integers(len(tastes), size=len(counts))
    planted = _Planted(tastes[types], types_planted.item_factors,
                       types_planted.log_popularity, types_planted.scale)

    def type_logits(rows: slice) -> np.ndarray:
        return (tastes[rows] @ planted.item_factors.T) * planted.scale + planted.log_popularity

    light_users, light_items, heavy = successive_by_type(
        rng, type_logits, len(tastes), planted.n_items, np.arange(len(counts)), types, counts
    )
    factors32 = planted.item_factors.T.astype(np.float32)
    shift32 = planted.log_popularity.astype(np.float32)

    def user_logits(rows: np.ndarray) -> np.ndarray:
        return (planted.user_factors[rows].astype(np.float32) @ factors32) * np.float32(
            planted.scale) + shift32

    heavy = np.sort(heavy)
    heavy_users, heavy_items = race_top_k(rng, user_logits, planted.n_items, heavy, counts)
    return (planted, np.concatenate([heavy_users, light_users]).astype(np.int64),
            np.concatenate([heavy_items, light_items]).astype(np.int64))


def _check_sizes(
    n_users: int, n_items: int, n_interactions: int, dim: int, temperature: float
) -> None:
    """ValueError naming the first impossible generator setting."""
    if n_users < 2 or n_items < 2:
        raise ValueError(f"need n_users >= 2 and n_items >= 2, got {n_users}, {n_items}")
    if not n_users <= n_interactions <= n_users * n_items:
        raise ValueError(
            f"n_interactions must be between n_users ({n_users}, one each) and "
            f"n_users * n_items ({n_users * n_items}), got {n_interactions}"
        )
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


@dataclass(frozen=True)
class _Planted:
    """The planted model: a user's logit for an item is taste . taste * scale + log popularity."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    log_popularity: np.ndarray
    scale: float

    @property
    def n_items(self) -> int:
        return len(self.item_factors)

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_items) logits of the given users."""
        return (self.user_factors[rows] @ self.item_factors.T) * self.scale + self.log_popularity


def _pick_items(
    rng: np.random.Generator, planted: _Planted, counts: np.ndarray, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``users``' ``counts[u]`` items without replacement, by Gumbel-top-k on logits.

    Heaviest users first, in blocks: a block's users need similar k, so one argpartition at
    the block's largest k serves all of them.
    """
    n_items = planted.n_items
    by_count = users[np.argsort(-counts[users], kind="stable")]
    block = max(1, _SYNTH_BLOCK // n_items)
    pair_users, pair_items = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for start in range(0, len(by_count), block):
        rows = by_count[start:start + block]
        k = counts[rows]
        k_max = int(k.max())
        keys = planted.logits(rows) + rng.gumbel(size=(len(rows), n_items))
        if k_max >= n_items:
            top = np.argsort(-keys, axis=1)
        else:
            part = np.argpartition(-keys, k_max - 1, axis=1)[:, :k_max]
            top = np.take_along_axis(
                part, np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1), axis=1
            )
        take = np.arange(top.shape[1])[None, :] < k[:, None]
        pair_users.append(np.broadcast_to(rows[:, None], top.shape)[take])
        pair_items.append(top[take])
    return (np.concatenate(pair_users).astype(np.int64),
            np.concatenate(pair_items).astype(np.int64))


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct integer seconds from 2020-01-01, in random order (unrelated to tastes)."""
    step = max(1, max(_SYNTH_SPAN, n) // n)
    stamps = _SYNTH_T0 + rng.permutation(n).astype(np.int64) * step + rng.integers(0, step, size=n)
    return stamps.astype(np.int64)


def _cover_items(users: np.ndarray, items: np.ndarray, planted: _Planted) -> None:
    """Give every item a positive, in place, without changing per-user counts or duplicating.

    Each empty item takes over the pair whose user prefers it most relative to the item the
    pair holds now, among items holding >= 2 pairs (so no item empties). Needs
    len(items) >= n_items (then an item with >= 2 pairs exists while one is empty).
    """
    user_factors, item_factors = planted.user_factors, planted.item_factors
    scale, log_popularity = planted.scale, planted.log_popularity
    item_count = np.bincount(items, minlength=planted.n_items)
    empty = np.flatnonzero(item_count == 0)
    if len(empty) == 0:
        return
    pair_logit = np.einsum("ij,ij->i", user_factors[users], item_factors[items]) * scale
    pair_logit += log_popularity[items]
    for j in empty:
        logit_j = (user_factors @ item_factors[j]) * scale + log_popularity[j]
        gain = logit_j[users] - pair_logit
        gain[item_count[items] < 2] = -np.inf
        p = int(np.argmax(gain))
        item_count[items[p]] -= 1
        item_count[j] += 1
        items[p] = j
        pair_logit[p] = logit_j[users[p]]


