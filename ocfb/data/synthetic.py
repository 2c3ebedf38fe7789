"""The built-in synthetic data set: seeded positive-only interactions with planted structure.

Shaped like the paper's influencer data by default (407 users x 462 items x 2,000 positives),
and realistic at MovieLens sizes: per-user activity follows a capped power law that always
leaves each user a share of the catalogue unobserved (the holdout protocol needs unobserved
items to sample candidates from), and item popularity follows a power law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocfb.data.interactions import Interactions

SYNTHETIC_SOURCE = "synthetic-influencer"


# Synthetic timestamps start 2020-01-01 UTC and spread over two years (or wider for huge sets).
_SYNTH_T0 = 1_577_836_800
_SYNTH_SPAN = 2 * 365 * 86_400
# Bound on the logits block held in memory at once (entries, float64): ~64 MB.
_SYNTH_BLOCK = 8_000_000


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
    probabilities proportional to ``exp(u.v / (sqrt(dim) * temperature)) * popularity``
    (Gumbel-top-k), where ``k_u`` follows a Zipf activity law (``rank**-activity_exponent``),
    is >= 1, sums exactly to n_interactions, and is capped so that every user leaves at least
    ``max(min_unobserved, ceil(min_unobserved_share * n_items))`` items unobserved whenever the
    sizes allow it (else as many as they allow; see :func:`activity_cap`). Without that cap the
    Zipf head at MovieLens-1M's shape gave some users every item, and the holdout protocol
    could not sample candidates for them. The default temperature makes
    tastes dominate popularity (planted logits rank held-out positives at AUC ~0.97), yet
    leaves sampling noise; lower is sharper.
    When n_interactions >= n_items every item also gets >= 1 positive (an item left empty
    takes over the pair whose user likes it best relative to that pair's own item, from an
    item with >= 2 positives), so the set round-trips through a file unchanged. Timestamps are
    distinct seeded random integer seconds in 2020-2021, unrelated to tastes, so leave-one-out
    by time holds out a random positive per user. Original ids are ``arange``.
    """
    n_users, n_items, n_interactions = int(n_users), int(n_items), int(n_interactions)
    _check_sizes(n_users, n_items, n_interactions, int(dim), temperature)
    cap = activity_cap(n_users, n_items, n_interactions, min_unobserved, min_unobserved_share)

    rng = np.random.default_rng(seed)
    planted = _Planted(
        user_factors=rng.standard_normal((n_users, int(dim))),
        item_factors=rng.standard_normal((n_items, int(dim))),
        log_popularity=np.log(_power_law_weights(rng, n_items, popularity_exponent)),
        scale=1.0 / (np.sqrt(int(dim)) * temperature),
    )
    counts = _activity_counts(
        rng, _power_law_weights(rng, n_users, activity_exponent), n_interactions, cap
    )
    users, items = _pick_items(rng, planted, counts)
    if n_interactions >= n_items:
        _cover_items(users, items, planted)

    cells = users * np.int64(n_items) + items
    order = np.argsort(cells)
    return Interactions(
        users=users[order],
        items=items[order],
        n_users=n_users,
        n_items=n_items,
        user_ids=np.arange(n_users, dtype=np.int64),
        item_ids=np.arange(n_items, dtype=np.int64),
        timestamps=_timestamps(rng, n_interactions),
        name=SYNTHETIC_SOURCE,
        n_duplicates_dropped=0,
    )


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
    rng: np.random.Generator, planted: _Planted, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``counts[u]`` items without replacement, by Gumbel-top-k on its logits.

    Heaviest users first, in blocks: a block's users need similar k, so one argpartition at
    the block's largest k serves all of them.
    """
    n_items = planted.n_items
    by_count = np.argsort(-counts, kind="stable")
    block = max(1, _SYNTH_BLOCK // n_items)
    pair_users, pair_items = [], []
    for start in range(0, len(counts), block):
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


