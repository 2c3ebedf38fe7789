"""The two evaluation protocols: the paper's labeled-set split, and a leakage-free holdout.

`paper` (Song & Song 2022): labeled set = positives + current negatives, stratified 70/30
split; negative *slots* are assigned to train or test once, and a replaced negative inherits its
slot, so OCF-B rewrites the test negatives too (the test set gets easier each term, as in the
paper). A validation part (`val_fraction` of the training side, stratified, seeded) is carved
from what is not test, so model selection never looks at the test part. The validation slots
are frozen: no strategy ever replaces them (`PaperSplit.frozen_slots`), so validation keeps its
term-0 negatives and selecting a term on it does not ride the easier-each-term artefact that
test shows (before, 189 of 504 trials in `results/paper` selected the last term).

`holdout` (the NCF protocol, He et al. 2017): positives are split first (leave-one-out by latest
timestamp, or a seeded fraction per user), validation is carved from training positives, and
test candidates (99 sampled unobserved items per held-out positive, plus full ranking) are frozen
once per data, seed and split, and saved with the original ids and the grid size so that any
other model can be scored on exactly the same candidates (`load_frozen_split`).

Scoring accepts a torch model or a fitted baseline (`ocfb.baselines`): anything with
`score_cells(users, items)` and `score_all_items(users)` returning logit-like scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import expit

from ocfb import metrics
from ocfb.atomicio import atomic_write
from ocfb.config import ConfigError
from ocfb.data import Interactions
from ocfb.scoring import (  # noqa: F401  (re-exported: callers use protocols.score_cells)
    FULL_BLOCK_CELLS,
    AnyScorer,
    Scorer,
    block_logits,
    row_blocks,
    score_all_items,
    score_cells,
    score_rows,
)

# Separate seed streams, so the split never depends on model, strategy or sampling draws.
SPLIT_STREAM = 7_001
# The paper protocol's validation carve has its own stream: adding it left the test assignment
# of every seed exactly as it was before validation existed.
PAPER_VAL_STREAM = 7_002

# -- paper ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperSplit:
    """Which positives and which negative slots are test, validation, or training."""

    pos_cells: np.ndarray
    pos_is_test: np.ndarray
    pos_is_val: np.ndarray
    neg_slot_is_test: np.ndarray
    neg_slot_is_val: np.ndarray

    @property
    def train_pos(self) -> np.ndarray:
        """Cells of the training positives (neither test nor validation)."""
        return self.pos_cells[~(self.pos_is_test | self.pos_is_val)]

    @property
    def train_slots(self) -> np.ndarray:
        """Indices of the negative slots the model trains on (neither test nor validation)."""
        return np.flatnonzero(~(self.neg_slot_is_test | self.neg_slot_is_val))

    @property
    def frozen_slots(self) -> np.ndarray:
        """Indices of the validation slots: they keep their term-0 negatives for the whole run.

        Were they rewritten like the others, validation would get easier each term with the
        same artefact as test, and selecting on it would favour the last term.
        """
        return np.flatnonzero(self.neg_slot_is_val)

    @property
    def open_slots(self) -> np.ndarray:
        """Indices of the slots strategies may rewrite: training and (as in the paper) test."""
        return np.flatnonzero(~self.neg_slot_is_val)


def make_paper_split(
    data: Interactions, n_negatives: int, test_fraction: float, val_fraction: float = 0.1,
    seed: int = 0,
) -> PaperSplit:
    """Stratified split: the same fraction of positives and of negative slots goes to test,
    then `val_fraction` of what is left (again of each class) to validation.

    The test masks are drawn first from the split stream, exactly as before validation
    existed, so a seed keeps its test set; validation comes from its own stream.
    """
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < value < 1.0:
            raise ConfigError(f"{name}: must lie strictly between 0 and 1, got {value!r}")
    rng = np.random.default_rng([seed, SPLIT_STREAM])

    def mask(n: int) -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        m[rng.permutation(n)[: int(round(test_fraction * n))]] = True
        return m

    pos_test, neg_test = mask(len(data)), mask(n_negatives)
    val_rng = np.random.default_rng([seed, PAPER_VAL_STREAM])

    def carve(is_test: np.ndarray) -> np.ndarray:
        rest = np.flatnonzero(~is_test)
        m = np.zeros(is_test.size, dtype=bool)
        m[val_rng.permutation(rest)[: int(round(val_fraction * rest.size))]] = True
        return m

    return PaperSplit(data.cells.copy(), pos_test, carve(pos_test), neg_test, carve(neg_test))


def evaluate_paper(
    scorer: AnyScorer,
    split: PaperSplit,
    negatives: np.ndarray,
    n_items: int,
    device: torch.device,
) -> dict[str, float]:
    """The paper's report (AUC, per-class P/R/F1/support, weighted, accuracy) on validation
    and on test: `val_*` and `test_*` keys. One forward scores both parts."""
    parts = (("val_", split.pos_is_val, split.neg_slot_is_val),
             ("test_", split.pos_is_test, split.neg_slot_is_test))
    cells = [np.concatenate([split.pos_cells[p], negatives[n]]) for _, p, n in parts]
    z = score_cells(scorer, np.concatenate(cells), n_items, device, logits=True)
    out: dict[str, float] = {}
    start = 0
    for (prefix, p, n), c in zip(parts, cells, strict=True):
        zp = z[start : start + c.size]
        start += c.size
        y = np.r_[np.ones(int(p.sum())), np.zeros(int(n.sum()))]
        # threshold on probabilities (the paper's 0.5), AUC on logits (no saturation ties)
        rep = metrics.classification_report(y, expit(zp), y_score=zp)
        out.update({f"{prefix}{k}": v for k, v in rep.items()})
    return out


# -- holdout: the split -------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutSplit:
    """Train positives, validation and test positives, and their frozen candidates."""

    train_cells: np.ndarray
    val_users: np.ndarray
    val_items: np.ndarray
    val_candidates: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    test_candidates: np.ndarray
    data_hash: str

    def key(self) -> str:
        """Content hash of the frozen split, to compare runs cheaply."""
        h = hashlib.sha256()
        for a in (self.train_cells, self.val_users, self.val_items, self.val_candidates,
                  self.test_users, self.test_items, self.test_candidates):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


_FIELDS = ("train_cells", "val_users", "val_items", "val_candidates", "test_users",
           "test_items", "test_candidates")
# What a frozen split file holds besides the split: enough to score another model on exactly
# the same candidates without the original data object.
_FROZEN_EXTRA = ("data_hash", "user_ids", "item_ids", "n_users", "n_items", "settings")


def _hold_out(
    data: Interactions, rows: np.ndarray, rng: np.random.Generator, how: str, fraction: float
) -> np.ndarray:
    """Boolean mask over `rows` (indices into data) of the pairs to hold out, per user."""
    users = data.users[rows]
    keys = rng.random(rows.size)
    if how == "loo" and data.timestamps is not None:
        # latest by timestamp; the random key breaks ties between equal timestamps
        order = np.lexsort((keys, -data.timestamps[rows].astype(np.float64), users))
    else:
        order = np.lexsort((keys, users))
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, sorted_users.size])
    pos_in_user = np.arange(sorted_users.size) - np.repeat(starts, counts)
    count = np.repeat(counts, counts)
    if how == "loo":
        take = (pos_in_user == 0) & (count >= 2)  # a user keeps at least one training positive
    else:
        n_out = np.minimum(np.floor(fraction * count), count - 1)
        take = pos_in_user < n_out
    mask = np.zeros(rows.size, dtype=bool)
    mask[order[take]] = True
    return mask


def _candidates(
    rng: np.random.Generator, users: np.ndarray, known: sp.csr_matrix, k: int
) -> np.ndarray:
    """k distinct items per row that the user never interacted with, uniformly (Gumbel top-k)."""
    n_items = known.shape[1]
    out = np.empty((users.size, k), dtype=np.int64)
    free = n_items - np.diff(known.indptr)[users]
    if users.size and free.min() < k:
        worst = int(np.argmin(free))
        raise ConfigError(
            f"n_candidates: {k} sampled candidates per held-out positive, but user "
            f"{int(users[worst])} (internal id) has only {int(free[worst])} items they never "
            "interacted with; lower n_candidates"
        )
    chunk = max(1, 4_000_000 // n_items)
    for s in range(0, users.size, chunk):
        u = users[s : s + chunk]
        keys = rng.random((u.size, n_items))
        keys[known[u].toarray()] = np.inf
        part = np.argpartition(keys, k - 1, axis=1)[:, :k]
        out[s : s + chunk] = np.take_along_axis(
            part, np.argsort(np.take_along_axis(keys, part, 1), axis=1), 1
        )
    return out


def known_matrix(data: Interactions) -> sp.csr_matrix:
    """Users x items boolean CSR of every known positive (all splits)."""
    return sp.csr_matrix(
        (np.ones(len(data), dtype=bool), (data.users, data.items)),
        shape=(data.n_users, data.n_items),
    )


def frozen_split_path(
    cache_dir: str | Path, data_hash: str, seed: int, split: str, fraction: float,
    n_candidates: int,
) -> Path:
    """Where the frozen split of these settings lives under `cache_dir` (callers pass
    `<out>/splits/`): `holdout-<16 hex digits of the settings' hash>.npz`."""
    tag = json.dumps([data_hash, seed, split, fraction, n_candidates])
    return Path(cache_dir) / f"holdout-{hashlib.sha256(tag.encode()).hexdigest()[:16]}.npz"


def make_holdout_split(
    data: Interactions,
    seed: int,
    *,
    split: str = "loo",
    fraction: float = 0.2,
    n_candidates: int = 99,
    cache_dir: str | Path | None = None,
) -> HoldoutSplit:
    """Split positives into train / validation / test and freeze the sampled test candidates.

    Depends only on the data, the seed and the split settings, never on model or strategy.
    With `cache_dir`, the split is saved there (with the data hash, original ids and grid size:
    `load_frozen_split`) and reused when present.
    """
    data_hash = data.content_hash()
    path = None
    if cache_dir is not None:
        path = frozen_split_path(cache_dir, data_hash, seed, split, fraction, n_candidates)
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                # files from before ids were stored lack n_users: rebuild and rewrite them
                if str(z["data_hash"]) == data_hash and "n_users" in z.files:
                    cached = HoldoutSplit(**{f: z[f] for f in _FIELDS}, data_hash=data_hash)
                    _note_left_out(cached, data.n_users, split)
                    return cached
    out = _split(data, seed, split, fraction, n_candidates, data_hash)
    _note_left_out(out, data.n_users, split)
    if path is not None:
        settings = {"seed": seed, "split": split, "holdout_fraction": fraction,
                    "n_candidates": n_candidates}
        write_npz(path, {
            **{f: getattr(out, f) for f in _FIELDS},
            "data_hash": data_hash,
            "user_ids": _id_array(data.user_ids),
            "item_ids": _id_array(data.item_ids),
            "n_users": data.n_users,
            "n_items": data.n_items,
            "settings": json.dumps(settings),
        })
    return out


def users_left_out(split: HoldoutSplit, n_users: int) -> int:
    """Users the split leaves out of evaluation: no test or no validation positive (under
    'loo' a user needs 3 positives, one each for test, validation and training)."""
    return n_users - np.intersect1d(split.val_users, split.test_users).size


def _note_left_out(split: HoldoutSplit, n_users: int, how: str) -> None:
    # said in the run's log: nine last.fm users with < 3 positives used to vanish silently
    n = users_left_out(split, n_users)
    if n:
        logging.getLogger(__name__).warning(
            "note: the %r split leaves %d of %d users out of evaluation (no test or no "
            "validation positive; 'loo' needs 3 positives per user)", how, n, n_users)


def _split(
    data: Interactions, seed: int, split: str, fraction: float, n_candidates: int,
    data_hash: str,
) -> HoldoutSplit:
    """Draw the holdout split (test first, then validation from the rest, then candidates)."""
    rng = np.random.default_rng([seed, SPLIT_STREAM])
    all_rows = np.arange(len(data))
    test_mask = _hold_out(data, all_rows, rng, split, fraction)
    rest = all_rows[~test_mask]
    val_mask_rest = _hold_out(data, rest, rng, split, fraction)
    val_rows, train_rows = rest[val_mask_rest], rest[~val_mask_rest]
    test_rows = all_rows[test_mask]
    if test_rows.size == 0 or val_rows.size == 0:
        raise ConfigError(
            f"split: the {split!r} holdout split of this data is empty (no test or no "
            "validation positive): a user needs at least 3 positives under 'loo', and "
            "enough for floor(holdout_fraction * count) >= 1 twice under 'fraction'"
        )
    known = known_matrix(data)
    return HoldoutSplit(
        train_cells=data.cells[train_rows],
        val_users=data.users[val_rows],
        val_items=data.items[val_rows],
        val_candidates=_candidates(rng, data.users[val_rows], known, n_candidates),
        test_users=data.users[test_rows],
        test_items=data.items[test_rows],
        test_candidates=_candidates(rng, data.users[test_rows], known, n_candidates),
        data_hash=data_hash,
    )


# -- frozen split files ----------------------------------------------------------------------


@dataclass(frozen=True)
class FrozenSplit:
    """A frozen holdout split read back from disk, with what is needed to use it elsewhere.

    `user_ids[u]` / `item_ids[i]` are the original ids of internal user u / item i; the grid
    is `n_users` x `n_items`; `settings` are the seed and split settings that produced it.
    """

    split: HoldoutSplit
    user_ids: np.ndarray
    item_ids: np.ndarray
    n_users: int
    n_items: int
    settings: dict[str, Any]

    def known(self) -> sp.csr_matrix:
        """Every positive of the split (train, validation, test): the full-ranking mask."""
        s, n = self.split, self.n_items
        cells = np.concatenate([s.train_cells, s.val_users * n + s.val_items,
                                s.test_users * n + s.test_items])
        return sp.csr_matrix((np.ones(cells.size, dtype=bool), (cells // n, cells % n)),
                             shape=(self.n_users, self.n_items))


def load_frozen_split(path: str | Path) -> FrozenSplit:
    """Read a frozen split written by `make_holdout_split(..., cache_dir=...)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frozen split {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in (*_FIELDS, *_FROZEN_EXTRA) if k not in z.files]
        if missing:
            raise ValueError(
                f"{path} is not a complete frozen split: missing {missing}; it was written "
                "by an older version, rerun the split to rewrite it"
            )
        split = HoldoutSplit(**{f: z[f] for f in _FIELDS}, data_hash=str(z["data_hash"]))
        return FrozenSplit(split, z["user_ids"], z["item_ids"], int(z["n_users"]),
                           int(z["n_items"]), json.loads(str(z["settings"])))


def _id_array(ids: np.ndarray) -> np.ndarray:
    """Original ids as a pickle-free array: numbers stay numbers, anything else becomes text."""
    arr = np.asarray(ids)
    return arr if arr.dtype.kind in "biufUS" else arr.astype(str)


def write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Write an npz atomically (temporary file, then rename) with mode 0o666 & ~umask, so
    teammates on shared storage can read it; the temporary file is removed on failure."""
    atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


# -- holdout: metrics ---------------------------------------------------------------------------


def evaluate_holdout_part(
    scorer: AnyScorer,
    users: np.ndarray,
    items: np.ndarray,
    candidates: np.ndarray,
    known: sp.csr_matrix,
    device: torch.device,
    prefix: str,
    *,
    full_ranking: bool = True,
) -> dict[str, float]:
    """HR/NDCG@K (sampled and full), AUC and P/R/F1 at 0.5 for one held-out set."""
    n_items = known.shape[1]
    # one forward over the (n, 1 + k) block: the held-out item, then its k frozen candidates
    block = np.concatenate([items[:, None], candidates], axis=1)
    z = block_logits(scorer, users, block, n_items, device)
    pos, neg = z[:, 0], z[:, 1:]
    # ranks and AUC from logits (no sigmoid saturation ties); thresholds on probabilities
    out = metrics.hit_ndcg(metrics.rank_of_positive(pos, neg), prefix=prefix)
    if full_ranking:
        ranks = full_ranks(scorer, users, items, known, device)
        out.update(metrics.hit_ndcg(ranks, prefix=f"{prefix}full_"))
    out[f"{prefix}auc"] = metrics.roc_auc(pos, neg)
    out.update(metrics.binary_at_threshold(expit(pos), expit(neg.ravel()), 0.5, prefix=prefix))
    return out


def evaluate_holdout(
    scorer: AnyScorer, split: HoldoutSplit, known: sp.csr_matrix, device: torch.device, *,
    full_ranking: bool,
) -> dict[str, float]:
    """`val_*` and `test_*` metrics of one scorer on a holdout split: the one loop the neural
    run and the baselines share, so both are scored by exactly the same code."""
    out: dict[str, float] = {}
    for prefix, users, items, cands in (
        ("val_", split.val_users, split.val_items, split.val_candidates),
        ("test_", split.test_users, split.test_items, split.test_candidates),
    ):
        out.update(evaluate_holdout_part(scorer, users, items, cands, known, device, prefix,
                                         full_ranking=full_ranking))
    return out


def full_ranks(
    scorer: AnyScorer, users: np.ndarray, items: np.ndarray, known: sp.csr_matrix,
    device: torch.device, *, block_cells: int = FULL_BLOCK_CELLS,
) -> np.ndarray:
    """0-based rank of each held-out item among every item its user never interacted with.

    Scores and ranks one row block at a time, so memory is one block of scores, never the
    whole users x items matrix. All known positives are excluded except the target itself
    (`full_rank_of_positive` never excludes the target), the same `known` mask for a neural
    model and a baseline.
    """
    n_items = known.shape[1]
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    ranks = np.empty(users.size, dtype=np.int64)
    for s, block in row_blocks(users, n_items, block_cells):
        scores = score_rows(scorer, block, n_items, device)
        ranks[s : s + block.size] = metrics.full_rank_of_positive(
            scores, items[s : s + block.size], known[block]
        )
    return ranks

