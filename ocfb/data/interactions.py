"""The container every other module works on: :class:`Interactions`, built by :func:`from_pairs`.

Everything downstream (sampling, models, metrics, the suite) works on :class:`Interactions`:
distinct positive (user, item) pairs in a contiguous internal id space, with the original ids
kept for reporting and an optional timestamp per pair for leave-one-out splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad input data; the message names the file, the line/column and what was expected."""


# --------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Interactions:
    """Distinct positive (user, item) pairs in a contiguous id space, with original ids.

    Invariants: ``users``/``items`` are int64 in ``[0, n_users)`` / ``[0, n_items)``, one entry
    per distinct pair; ``user_ids[k]`` is the original id of internal user ``k``.
    """

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    name: str = "interactions"
    # Rows that repeated an earlier (user, item) pair and were merged at load; None = unknown
    # (built directly, or a subset). Reported, never silently lost: 9,000 rows that collapse
    # to 3,000 pairs are a different data set than the user may think.
    n_duplicates_dropped: int | None = None

    def __post_init__(self) -> None:
        # Cheap structural checks only (O(n)); duplicate-freedom is guaranteed by constructors.
        users, items = np.asarray(self.users), np.asarray(self.items)
        if users.dtype.kind not in "iu" or items.dtype.kind not in "iu":
            raise ValueError(f"users and items must be integer arrays, got {users.dtype}, "
                             f"{items.dtype}")
        users, items = users.astype(np.int64, copy=False), items.astype(np.int64, copy=False)
        if users.ndim != 1 or items.ndim != 1 or len(users) != len(items):
            raise ValueError("users and items must be 1-d arrays of equal length")
        n_users, n_items = int(self.n_users), int(self.n_items)
        if n_users < 1 or n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1, got {n_users}, {n_items}")
        if len(users) and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(f"user index out of range [0, {n_users})")
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"item index out of range [0, {n_items})")
        user_ids, item_ids = np.asarray(self.user_ids), np.asarray(self.item_ids)
        if len(user_ids) != n_users or len(item_ids) != n_items:
            raise ValueError(
                f"user_ids/item_ids must have n_users/n_items entries, got {len(user_ids)}, "
                f"{len(item_ids)} for {n_users}, {n_items}"
            )
        timestamps = self.timestamps
        if timestamps is not None:
            timestamps = np.asarray(timestamps)
            if timestamps.dtype.kind not in "iuf" or timestamps.shape != users.shape:
                raise ValueError("timestamps must be a numeric array with one entry per pair")
            timestamps = timestamps.astype(
                np.int64 if timestamps.dtype.kind in "iu" else np.float64, copy=False
            )
        dropped = self.n_duplicates_dropped
        if dropped is not None and (isinstance(dropped, bool) or int(dropped) != dropped
                                    or dropped < 0):
            raise ValueError(f"n_duplicates_dropped must be None or an integer >= 0, got "
                             f"{dropped!r}")
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "n_users", n_users)
        object.__setattr__(self, "n_items", n_items)
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "item_ids", item_ids)
        object.__setattr__(self, "timestamps", timestamps)

    def __len__(self) -> int:
        """Number of distinct positive pairs."""
        return int(len(self.users))

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={len(self)}, timestamps={self.timestamps is not None})"
        )

    @property
    def cells(self) -> np.ndarray:
        """Flat cell id ``user * n_items + item`` (int64) of every pair."""
        return self.users * np.int64(self.n_items) + self.items

    @property
    def sparsity(self) -> float:
        """Fraction of the user x item matrix that is not a known positive."""
        return 1.0 - len(self) / (self.n_users * self.n_items)

    def content_hash(self) -> str:
        """SHA-256 hex digest of the id space, the pair set and the timestamps.

        Independent of pair order, names and original ids; stable across runs and processes, so
        frozen test candidates can be tied to the exact data they were drawn from.
        """
        cells = self.cells
        order = np.argsort(cells, kind="stable")
        h = hashlib.sha256(b"ocfb.Interactions/v1\0")
        h.update(np.array([self.n_users, self.n_items, len(self)], dtype="<i8").tobytes())
        h.update(cells[order].astype("<i8").tobytes())
        if self.timestamps is None:
            h.update(b"timestamps:none")
        elif self.timestamps.dtype.kind == "i":
            h.update(b"timestamps:int64")
            h.update(self.timestamps[order].astype("<i8").tobytes())
        else:
            h.update(b"timestamps:float64")
            h.update(self.timestamps[order].astype("<f8").tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """Summary with plain Python types (for logs, W&B config and the CLI).

        Besides the shape it reports the distribution that decides whether a protocol can run:
        the heaviest and the median user, the fewest unobserved items any user has (sampled
        candidates need that many), the Gini coefficient of item popularity (0 = every item
        equally popular, near 1 = a few items take everything) and the duplicate rows merged
        at load (None when unknown).
        """
        per_user = np.bincount(self.users, minlength=self.n_users)
        return {
            "name": str(self.name),
            "users": int(self.n_users),
            "items": int(self.n_items),
            "interactions": len(self),
            "sparsity": float(self.sparsity),
            "has_timestamps": self.timestamps is not None,
            "max_items_per_user": int(per_user.max()),
            "median_items_per_user": float(np.median(per_user)),
            "min_unobserved_per_user": int(self.n_items - per_user.max()),
            "item_gini": gini(np.bincount(self.items, minlength=self.n_items)),
            "duplicates_dropped": (
                None if self.n_duplicates_dropped is None else int(self.n_duplicates_dropped)
            ),
        }

    def subset(self, mask: np.ndarray) -> Interactions:
        """Only the selected pairs, in the same id space (n_users, n_items and ids unchanged).

        ``mask`` is a boolean array with one entry per pair, or an integer index array.
        """
        mask = np.asarray(mask)
        if mask.dtype == bool and mask.shape != self.users.shape:
            raise ValueError(f"boolean mask has shape {mask.shape}, expected ({len(self)},)")
        if mask.dtype != bool and mask.dtype.kind not in "iu":
            raise ValueError(f"mask must be boolean or integer indices, got dtype {mask.dtype}")
        return Interactions(
            users=self.users[mask],
            items=self.items[mask],
            n_users=self.n_users,
            n_items=self.n_items,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            name=self.name,
        )

    def to_frame(self) -> pd.DataFrame:
        """Pairs with their original ids as a DataFrame (columns user, item[, timestamp]).

        Writing this to CSV and reading it back with :func:`load_file` gives the same data as
        long as every user and item has a positive (always true for the built-in sets).
        """
        frame = pd.DataFrame({"user": self.user_ids[self.users], "item": self.item_ids[self.items]})
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return frame


# --------------------------------------------------------------------------------------------
# Building from raw pairs
# --------------------------------------------------------------------------------------------


def _as_id_array(values: Any, what: str) -> np.ndarray:
    """1-d id array: int64 for integer ids, object otherwise; rejects missing values."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy(dtype=object) if values.hasnans else values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{what} ids must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind in "US":
        return arr.astype(object)
    missing = pd.isna(arr)
    if missing.any():
        k = int(np.flatnonzero(missing)[0])
        raise DataError(f"{what} id of pair {k} (0-based) is missing (NaN/None)")
    kind = pd.api.types.infer_dtype(arr, skipna=False) if arr.dtype == object else ""
    if kind == "integer":  # Python ints in an object array
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" or kind == "floating":
        arr = arr.astype(np.float64)
        fractional = arr != np.round(arr)
        if fractional.any():
            k = int(np.flatnonzero(fractional)[0])
            raise DataError(
                f"{what} id of pair {k} (0-based) is {float(arr[k])!r}; expected an integer"
            )
        return arr.astype(np.int64)
    return arr.astype(object, copy=False)


def _factorize(ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Map original ids to 0..n-1 in sorted order of the original ids."""
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError as exc:  # unorderable mix, e.g. str and tuple
        raise DataError(f"{what} ids cannot be ordered ({exc}); use one id type") from exc
    uniques = np.asarray(uniques)
    if uniques.dtype.kind in "iu":
        uniques = uniques.astype(np.int64, copy=False)
    return codes.astype(np.int64, copy=False), uniques


def _as_timestamps(values: Any) -> np.ndarray:
    arr = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if arr.dtype.kind == "M":
        return datetimes_to_seconds(pd.Series(arr))
    if arr.dtype.kind not in "iuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"timestamps must be numeric, got dtype {arr.dtype}") from exc
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"timestamp of pair {k} (0-based) is {arr[k]!r}; expected a number")
        return arr.astype(np.float64, copy=False)
    return arr.astype(np.int64, copy=False)


def from_pairs(
    users: Any,
    items: Any,
    timestamps: Any = None,
    *,
    name: str = "interactions",
) -> Interactions:
    """Build :class:`Interactions` from raw (user, item[, timestamp]) pairs with arbitrary ids.

    Original ids (str or int) map to contiguous internal ids in sorted order of the originals;
    duplicate pairs collapse to one, keeping the latest timestamp, and their number is kept as
    ``n_duplicates_dropped``; pairs come out sorted by (user, item). Raises DataError with
    fewer than 2 distinct users or items.
    """
    u = _as_id_array(users, "user")
    i = _as_id_array(items, "item")
    if len(u) != len(i):
        raise DataError(f"got {len(u)} user ids but {len(i)} item ids")
    ts = None if timestamps is None else _as_timestamps(timestamps)
    if ts is not None and len(ts) != len(u):
        raise DataError(f"got {len(ts)} timestamps for {len(u)} pairs")
    user_codes, user_ids = _factorize(u, "user")
    item_codes, item_ids = _factorize(i, "item")
    n_users, n_items = len(user_ids), len(item_ids)
    if n_users < 2 or n_items < 2:
        raise DataError(
            f"need at least 2 distinct users and 2 distinct items, got {n_users} users and "
            f"{n_items} items"
        )
    cells = user_codes * np.int64(n_items) + item_codes
    if ts is None:
        keep_cells = np.unique(cells)
        out_ts = None
    else:
        # Sort by (cell, timestamp); the last row of each cell group is its latest timestamp.
        order = np.lexsort((ts, cells))
        sorted_cells = cells[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = sorted_cells[1:] != sorted_cells[:-1]
        keep_cells = sorted_cells[last]
        out_ts = ts[order][last]
    return Interactions(
        users=keep_cells // n_items,
        items=keep_cells % n_items,
        n_users=n_users,
        n_items=n_items,
        user_ids=user_ids,
        item_ids=item_ids,
        timestamps=out_ts,
        name=name,
        n_duplicates_dropped=int(len(cells) - len(keep_cells)),
    )


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when all equal, (n-1)/n when one has all.

    Used on item popularity: MovieLens-100K's is 0.63 (ratings concentrate on a few hundred
    films), the built-in generator's 0.53 at the paper's shape; uniform data gives about 0.
    """
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), float(values.sum())
    if n == 0 or total == 0.0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, values) / (n * total) - (n + 1) / n)




def datetimes_to_seconds(values: pd.Series) -> np.ndarray:
    """Epoch seconds (float64) of datetimes; naive ones are taken as UTC."""
    if getattr(values.dt, "tz", None) is None:
        values = values.dt.tz_localize("UTC")
    seconds = ((values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.float64
    )
    return seconds


