"""Positive-only interaction data: the container, the built-in synthetic set and file loaders.

Everything downstream (sampling, models, metrics, the suite) works on :class:`Interactions`:
distinct positive (user, item) pairs in a contiguous internal id space, with the original ids
kept for reporting and an optional timestamp per pair for leave-one-out splits.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FORMATS",
    "MOVIELENS_ARCHIVES",
    "DataError",
    "Interactions",
    "fetch_movielens",
    "from_pairs",
    "load_file",
    "load_source",
    "synthetic_influencer",
]

FORMATS: tuple[str, ...] = (
    "auto",
    "csv",
    "tsv",
    "parquet",
    "movielens-100k",
    "movielens-1m",
    "movielens-csv",
)

SYNTHETIC_SOURCE = "synthetic-influencer"

# Fixed column layout of the MovieLens files: (names in the file, or None when headerless,
# separator, user, item, rating, timestamp).
_MOVIELENS_LAYOUT: dict[str, tuple[list[str] | None, str, str, str, str, str]] = {
    "movielens-100k": (["user", "item", "rating", "timestamp"], "\t",
                       "user", "item", "rating", "timestamp"),
    "movielens-1m": (["user", "item", "rating", "timestamp"], "::",
                     "user", "item", "rating", "timestamp"),
    "movielens-csv": (None, ",", "userId", "movieId", "rating", "timestamp"),
}

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"

# name -> (url, md5 of the archive, ratings file inside the archive). ml-latest-small is
# re-issued by GroupLens from time to time, so no constant can pin it: its md5 is read from the
# `.md5` file GroupLens publishes next to the archive (None below).
MOVIELENS_ARCHIVES: dict[str, tuple[str, str | None, str]] = {
    "ml-100k": (f"{_GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k/u.data"),
    "ml-1m": (f"{_GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m/ratings.dat"),
    "ml-latest-small": (f"{_GROUPLENS}/ml-latest-small.zip", None,
                        "ml-latest-small/ratings.csv"),
}
_MOVIELENS_ALIASES = {
    "100k": "ml-100k", "movielens-100k": "ml-100k",
    "1m": "ml-1m", "movielens-1m": "ml-1m",
    "latest-small": "ml-latest-small", "movielens-latest-small": "ml-latest-small",
}

# Canonical decimal integers only: "007" or "+7" stay strings so that distinct original ids can
# never collide when converted to int.
_INT_ID = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


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
        """Summary with plain Python types (for logs, W&B config and the CLI)."""
        return {
            "name": str(self.name),
            "users": int(self.n_users),
            "items": int(self.n_items),
            "interactions": len(self),
            "sparsity": float(self.sparsity),
            "has_timestamps": self.timestamps is not None,
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
        return _datetimes_to_seconds(pd.Series(arr))
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
    duplicate pairs collapse to one, keeping the latest timestamp; pairs come out sorted by
    (user, item). Raises DataError with fewer than 2 distinct users or items.
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
    )


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------

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
) -> Interactions:
    """Seeded positive-only data shaped like the paper's (407 x 462 x 2,000 by default).

    Planted structure: user and item taste vectors ``N(0, I_dim)`` and Zipf item popularity
    ``rank**-popularity_exponent``. User ``u`` picks its ``k_u`` items without replacement with
    probabilities proportional to ``exp(u.v / (sqrt(dim) * temperature)) * popularity``
    (Gumbel-top-k), where ``k_u`` follows a Zipf activity law (``rank**-activity_exponent``),
    is >= 1 and <= n_items, and sums exactly to n_interactions. The default temperature makes
    tastes dominate popularity (planted logits rank held-out positives at AUC ~0.97), yet
    leaves sampling noise; lower is sharper.
    When n_interactions >= n_items every item also gets >= 1 positive (an item left empty
    takes over the pair whose user likes it best relative to that pair's own item, from an
    item with >= 2 positives), so the set round-trips through a file unchanged. Timestamps are
    distinct seeded random integer seconds in 2020-2021, unrelated to tastes, so leave-one-out
    by time holds out a random positive per user. Original ids are ``arange``.
    """
    n_users, n_items, dim = int(n_users), int(n_items), int(dim)
    n_interactions = int(n_interactions)
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

    rng = np.random.default_rng(seed)
    user_factors = rng.standard_normal((n_users, dim))
    item_factors = rng.standard_normal((n_items, dim))
    log_popularity = np.log(_power_law_weights(rng, n_items, popularity_exponent))
    counts = _activity_counts(
        rng, _power_law_weights(rng, n_users, activity_exponent), n_interactions, n_items
    )
    scale = 1.0 / (np.sqrt(dim) * temperature)

    def logits_for(rows: np.ndarray) -> np.ndarray:
        return (user_factors[rows] @ item_factors.T) * scale + log_popularity

    # Heaviest users first, in blocks: a block's users need similar k, so one argpartition at
    # the block's largest k serves all of them.
    by_count = np.argsort(-counts, kind="stable")
    block = max(1, _SYNTH_BLOCK // n_items)
    pair_users, pair_items = [], []
    for start in range(0, n_users, block):
        rows = by_count[start:start + block]
        k = counts[rows]
        k_max = int(k.max())
        keys = logits_for(rows) + rng.gumbel(size=(len(rows), n_items))
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
    users = np.concatenate(pair_users).astype(np.int64)
    items = np.concatenate(pair_items).astype(np.int64)

    if n_interactions >= n_items:
        _cover_items(users, items, n_items, user_factors, item_factors, scale, log_popularity)

    cells = users * np.int64(n_items) + items
    order = np.argsort(cells)
    step = max(1, max(_SYNTH_SPAN, n_interactions) // n_interactions)
    timestamps = (
        _SYNTH_T0
        + rng.permutation(n_interactions).astype(np.int64) * step
        + rng.integers(0, step, size=n_interactions)
    )
    return Interactions(
        users=users[order],
        items=items[order],
        n_users=n_users,
        n_items=n_items,
        user_ids=np.arange(n_users, dtype=np.int64),
        item_ids=np.arange(n_items, dtype=np.int64),
        timestamps=timestamps.astype(np.int64),
        name=SYNTHETIC_SOURCE,
    )


def _cover_items(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    scale: float,
    log_popularity: np.ndarray,
) -> None:
    """Give every item a positive, in place, without changing per-user counts or duplicating.

    Each empty item takes over the pair whose user prefers it most relative to the item the
    pair holds now, among items holding >= 2 pairs (so no item empties). Needs
    len(items) >= n_items (then an item with >= 2 pairs exists while one is empty).
    """
    item_count = np.bincount(items, minlength=n_items)
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


# --------------------------------------------------------------------------------------------
# File loading
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """Raw columns of a file with the location label of every row (file line or parquet row)."""

    frame: pd.DataFrame
    rows: np.ndarray  # 1-based file line (text) or row number (parquet) of each frame row
    unit: str  # "line" or "row"


def _detect_format(path: Path, user_col: str, item_col: str) -> str:
    name = path.name.lower()
    if name == "u.data":
        return "movielens-100k"
    if name == "ratings.dat":
        return "movielens-1m"
    # pandas decompresses CSV / TSV by suffix, so look through a compression suffix
    for compression in (".gz", ".bz2", ".xz", ".zst"):
        if name.endswith(compression):
            name = name[: -len(compression)]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv"):
        if name == "ratings.csv" and (user_col, item_col) == ("user", "item"):
            # A MovieLens ratings.csv, unless its header says otherwise.
            header = _read_header(path, ",")
            if {"userId", "movieId"} <= set(header):
                return "movielens-csv"
        return "csv"
    raise DataError(
        f"{path}: cannot infer the format from the file name; pass format= one of {FORMATS}"
    )


def _read_header(path: Path, sep: str) -> list[str]:
    try:
        return [str(c).strip() for c in pd.read_csv(path, sep=sep, nrows=0, dtype=str).columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError):
        return []


def _read_text(path: Path, sep: str, names: list[str] | None) -> _Table:
    """Read a delimited text file as strings; row k of the frame is file line rows[k].

    Line numbers assume one record per line (a quoted field spanning lines shifts them).
    """
    source: Any = path
    if len(sep) > 1:
        # Multi-character separators (MovieLens-1M's "::") would force pandas' slow Python
        # engine; swapping them for a tab keeps the C engine and the line numbering.
        try:
            source = io.StringIO(path.read_text(encoding="utf-8").replace(sep, "\t"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
        sep = "\t"
    try:
        frame = pd.read_csv(
            source,
            sep=sep,
            header=None if names is not None else 0,
            names=names,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty; expected a header and data rows") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    first_line = 1 if names is not None else 2
    rows = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    if len(frame.columns):
        blank = (frame == "").all(axis=1).to_numpy()
        if blank.any():  # blank lines (e.g. a trailing one) are not records
            frame, rows = frame.loc[~blank].reset_index(drop=True), rows[~blank]
    return _Table(frame=frame, rows=rows, unit="line")


def _read_parquet(path: Path) -> _Table:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a corrupt or non-parquet file
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from exc
    frame.columns = [str(c) for c in frame.columns]
    return _Table(frame=frame.reset_index(drop=True),
                  rows=np.arange(1, len(frame) + 1, dtype=np.int64), unit="row")


def _where(path: Path, table: _Table, k: int, column: str) -> str:
    return f"{path}: {table.unit} {int(table.rows[k])}, column {column!r}"


def _first_bad(path: Path, table: _Table, bad: np.ndarray, column: str) -> tuple[int, str]:
    k = int(np.flatnonzero(bad)[0])
    return k, _where(path, table, k, column)


def _parse_ids(path: Path, table: _Table, column: str, what: str) -> np.ndarray:
    series = table.frame[column]
    missing = series.isna().to_numpy()
    if series.dtype.kind not in "iufb":
        missing = missing | (series.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        _, where = _first_bad(path, table, missing, column)
        raise DataError(f"{where}: missing {what} id; expected a value")
    kind = series.dtype.kind
    if kind in "iu":
        return series.to_numpy(dtype=np.int64)
    if kind == "f":
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            k, where = _first_bad(path, table, bad, column)
            raise DataError(f"{where}: {what} id {float(values[k])!r} is not an integer; expected "
                            "integer or string ids")
        return values.astype(np.int64)
    strings = series.astype(str).str.strip()
    if strings.str.fullmatch(_INT_ID).all():
        return strings.astype(np.int64).to_numpy()
    return strings.to_numpy(dtype=object)


def _shown(raw: Any) -> str:
    if raw is None or raw is pd.NA or (isinstance(raw, float) and np.isnan(raw)):
        return "a missing value"
    if str(raw).strip() == "":
        return "an empty value"
    return f"value {raw!r}"


def _parse_numbers(path: Path, table: _Table, column: str) -> np.ndarray:
    series = table.frame[column]
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values)
    if bad.any():
        k, where = _first_bad(path, table, bad, column)
        raise DataError(f"{where}: bad rating, {_shown(series.iloc[k])}; expected a number")
    return values


def _datetimes_to_seconds(values: pd.Series) -> np.ndarray:
    if getattr(values.dt, "tz", None) is None:
        values = values.dt.tz_localize("UTC")
    seconds = ((values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.float64
    )
    return seconds


def _integral_if_possible(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f" and np.all(values == np.round(values)) and (
        len(values) == 0 or np.abs(values).max() < 2**53
    ):
        return values.astype(np.int64)
    return values


def _parse_timestamps(path: Path, table: _Table, column: str) -> np.ndarray:
    """Numeric timestamps as they are; ISO-8601 datetime strings to epoch seconds (UTC)."""
    series = table.frame[column]
    if series.dtype.kind == "M":
        bad = series.isna().to_numpy()
        expected = "a date/time"
        parsed = series
    else:
        numeric = pd.to_numeric(series, errors="coerce")
        numbers = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        # The first value decides the column's kind: numbers, or datetime strings.
        if not np.isnan(numbers[0]):
            bad = np.isnan(numbers)
            if bad.any():
                k, where = _first_bad(path, table, bad, column)
                raise DataError(f"{where}: bad timestamp, {_shown(series.iloc[k])}; expected "
                                "a number (epoch seconds) like the first row")
            if numeric.dtype.kind in "iu":  # exact, even beyond float64's 2**53
                return numeric.to_numpy(dtype=np.int64)
            return _integral_if_possible(numbers)
        parsed = pd.to_datetime(series.astype(str), format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        expected = "an ISO-8601 date/time like the first row"
    if bad.any():
        k, where = _first_bad(path, table, bad, column)
        raise DataError(f"{where}: bad timestamp, {_shown(series.iloc[k])}; expected {expected}")
    return _integral_if_possible(_datetimes_to_seconds(parsed))


def _require_columns(path: Path, table: _Table, needed: dict[str, str]) -> None:
    found = list(table.frame.columns)
    for role, column in needed.items():
        if column not in found:
            raise DataError(
                f"{path}: {role} column {column!r} not found; columns found: {found}"
            )


def load_file(
    path: str | Path,
    *,
    format: str = "auto",
    user_col: str = "user",
    item_col: str = "item",
    timestamp_col: str | None = None,
    rating_col: str | None = None,
    min_rating: float | None = None,
    sep: str | None = None,
) -> Interactions:
    """Load positive pairs from a CSV / TSV / Parquet / MovieLens file, fully validated.

    A row is a positive when ``rating >= min_rating`` (all rows when min_rating is None).
    MovieLens formats use their fixed columns (the *_col arguments are ignored) and always keep
    timestamps. Any problem raises DataError naming the file, the line or column and what was
    expected; nothing is returned half-loaded.
    """
    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"{path}: unknown format {format!r}; expected one of {FORMATS}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); expected data rows")
    fmt = _detect_format(path, user_col, item_col) if format == "auto" else format

    if fmt in _MOVIELENS_LAYOUT:
        names, ml_sep, user_col, item_col, ml_rating, timestamp_col = _MOVIELENS_LAYOUT[fmt]
        rating_col = ml_rating if min_rating is not None else None
        table = _read_text(path, sep or ml_sep, names)
    else:
        if min_rating is not None and rating_col is None:
            raise DataError(f"{path}: min_rating={min_rating} needs rating_col (which column "
                            "holds the rating?)")
        if fmt == "parquet":
            table = _read_parquet(path)
        else:
            table = _read_text(path, sep or ("\t" if fmt == "tsv" else ","), None)

    needed = {"user": user_col, "item": item_col}
    if rating_col is not None:
        needed["rating"] = rating_col
    if timestamp_col is not None:
        needed["timestamp"] = timestamp_col
    _require_columns(path, table, needed)
    if len(table.frame) == 0:
        raise DataError(f"{path}: no data rows (only a header or blank lines); expected pairs")

    users = _parse_ids(path, table, user_col, "user")
    items = _parse_ids(path, table, item_col, "item")
    timestamps = None if timestamp_col is None else _parse_timestamps(path, table, timestamp_col)
    what = f"{len(users):,} rows"
    if rating_col is not None:
        ratings = _parse_numbers(path, table, rating_col)
        if min_rating is not None:
            keep = ratings >= float(min_rating)
            what = f"{int(keep.sum()):,} of {len(users):,} rows with {rating_col} >= {min_rating}"
            users, items = users[keep], items[keep]
            timestamps = None if timestamps is None else timestamps[keep]

    n_users, n_items = len(pd.unique(users)), len(pd.unique(items))
    if n_users < 2 or n_items < 2:
        raise DataError(
            f"{path}: {what} leave {n_users} distinct users and {n_items} distinct items; "
            "expected at least 2 of each"
        )
    name = fmt if fmt in _MOVIELENS_LAYOUT else path.name
    return from_pairs(users, items, timestamps, name=name)


def load_source(source: str, **kwargs: Any) -> Interactions:
    """Load a named source: "synthetic-influencer" (generator kwargs) or a file path."""
    if str(source) == SYNTHETIC_SOURCE:
        return synthetic_influencer(**kwargs)
    return load_file(source, **kwargs)


# --------------------------------------------------------------------------------------------
# MovieLens download
# --------------------------------------------------------------------------------------------


def _download(url: str, dest: Path) -> None:
    """Stream url to dest (the one network call; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _published_md5(url: str, cache_dir: Path) -> str:
    md5_path = cache_dir / (url.rsplit("/", 1)[-1] + ".md5.part")
    try:
        _download(url + ".md5", md5_path)
        text = md5_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"could not download {url}.md5: {exc}") from exc
    finally:
        md5_path.unlink(missing_ok=True)
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise DataError(f"{url}.md5 holds no MD5 checksum")
    return match.group(0).lower()


def fetch_movielens(name: str, cache_dir: Path) -> Path:
    """Download, verify (MD5) and unpack a MovieLens archive once; return its ratings file.

    ``name`` is ml-100k, ml-1m or ml-latest-small (aliases: 100k, movielens-100k, ...). A
    cached, verified copy is reused without network access. Failures raise DataError naming
    the URL.
    """
    key = _MOVIELENS_ALIASES.get(name, name)
    if key not in MOVIELENS_ARCHIVES:
        raise DataError(f"unknown MovieLens archive {name!r}; expected one of "
                        f"{tuple(MOVIELENS_ARCHIVES)}")
    url, expected, member = MOVIELENS_ARCHIVES[key]
    cache_dir = Path(cache_dir)
    target = cache_dir / member
    marker = cache_dir / key / ".ocfb-verified"
    if target.is_file() and marker.is_file():
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"{key}.zip.part"
    try:
        _download(url, archive)
    except OSError as exc:  # URLError, timeouts and HTTP errors are all OSErrors
        archive.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url}: {exc}; without a network, place the archive's "
            f"{member} under {cache_dir} and load it with load_file"
        ) from exc
    try:
        if expected is None:
            expected = _published_md5(url, cache_dir)
        got = _md5(archive)
        if got != expected:
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {expected}, got {got}; the "
                "download is corrupt or the archive changed, so it was discarded"
            )
        staging = cache_dir / f".{key}.extracting"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    # Never write outside the staging folder (zip-slip).
                    if info.filename.startswith(("/", "\\")) or ".." in Path(info.filename).parts:
                        raise DataError(f"{url}: unsafe path in archive: {info.filename!r}")
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{url}: downloaded file is not a zip archive ({exc})") from exc
        if not (staging / member).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise DataError(f"{url}: archive has no {member}")
        shutil.rmtree(cache_dir / key, ignore_errors=True)
        (staging / key).rename(cache_dir / key)
        shutil.rmtree(staging, ignore_errors=True)
        marker.write_text(f"md5 {expected}\n", encoding="utf-8")
    finally:
        archive.unlink(missing_ok=True)
    return target
