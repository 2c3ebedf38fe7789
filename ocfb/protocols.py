"""The two evaluation protocols: the paper's labeled-set split, and a leakage-free holdout.

`paper` (Song & Song 2022): labeled set = positives + current negatives, stratified 70/30 split;
negative *slots* are assigned to train or test once, and a replaced negative inherits its slot,
so OCF-B rewrites the test negatives too (the test set gets easier each term, as in the paper).

`holdout` (the NCF protocol, He et al. 2017): positives are split first (leave-one-out by latest
timestamp, or a seeded fraction per user), validation is carved from training positives, and
test candidates (99 sampled unobserved items per held-out positive, plus full ranking) are frozen
once per data, seed and split. OCF-B only ever touches training negatives.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import expit
from torch import nn

from ocfb import metrics
from ocfb.config import ConfigError
from ocfb.data import Interactions
from ocfb.models import predict_logits, score_matrix

# Separate seed streams, so the split never depends on model, strategy or sampling draws.
SPLIT_STREAM = 7_001


@dataclass(frozen=True)
class PaperSplit:
    """Which positives and which negative slots are in the 30 % report set."""

    pos_cells: np.ndarray
    pos_is_test: np.ndarray
    neg_slot_is_test: np.ndarray


def make_paper_split(
    data: Interactions, n_negatives: int, test_fraction: float, seed: int
) -> PaperSplit:
    """Stratified split: the same fraction of positives and of negative slots goes to test."""
    rng = np.random.default_rng([seed, SPLIT_STREAM])

    def mask(n: int) -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        m[rng.permutation(n)[: int(round(test_fraction * n))]] = True
        return m

    return PaperSplit(data.cells.copy(), mask(len(data)), mask(n_negatives))


def evaluate_paper(
    model: nn.Module,
    split: PaperSplit,
    negatives: np.ndarray,
    n_items: int,
    device: torch.device,
) -> dict[str, float]:
    """The paper's report on the 30 % split: AUC, per-class P/R/F1/support, weighted, accuracy."""
    pos = split.pos_cells[split.pos_is_test]
    neg = negatives[split.neg_slot_is_test]
    cells = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    p = score_cells(model, cells, n_items, device)
    rep = metrics.classification_report(y, p)
    return {f"test_{k}": v for k, v in rep.items()}


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
    With `cache_dir`, the split is saved there (with the data hash) and reused when present.
    """
    data_hash = data.content_hash()
    path = None
    if cache_dir is not None:
        tag = json.dumps([data_hash, seed, split, fraction, n_candidates])
        name = hashlib.sha256(tag.encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"holdout-{name}.npz"
        if path.is_file():
            z = np.load(path, allow_pickle=False)
            if str(z["data_hash"]) == data_hash:
                return HoldoutSplit(**{f: z[f] for f in _FIELDS}, data_hash=data_hash)
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
    out = HoldoutSplit(
        train_cells=data.cells[train_rows],
        val_users=data.users[val_rows],
        val_items=data.items[val_rows],
        val_candidates=_candidates(rng, data.users[val_rows], known, n_candidates),
        test_users=data.users[test_rows],
        test_items=data.items[test_rows],
        test_candidates=_candidates(rng, data.users[test_rows], known, n_candidates),
        data_hash=data_hash,
    )
    if path is not None:
        _save_npz(path, {**{f: getattr(out, f) for f in _FIELDS}, "data_hash": data_hash})
    return out


_FIELDS = ("train_cells", "val_users", "val_items", "val_candidates", "test_users",
           "test_items", "test_candidates")


def _save_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)


def score_cells(
    model: nn.Module, cells: np.ndarray, n_items: int, device: torch.device, *,
    logits: bool = False,
) -> np.ndarray:
    """Predicted probabilities (float64, from the logits) or the logits for flat cell ids."""
    c = torch.as_tensor(cells, dtype=torch.int64, device=device)
    z = predict_logits(model, c // n_items, c % n_items).cpu().numpy().astype(np.float64)
    return z if logits else expit(z)


@torch.no_grad()
def score_all_items(
    model: nn.Module, users: np.ndarray, n_items: int, device: torch.device, *,
    logits: bool = True,
) -> np.ndarray:
    """(len(users), n_items) logits (or probabilities), in row chunks to bound memory."""
    out = np.empty((users.size, n_items), dtype=np.float32)
    items = torch.arange(n_items, device=device)
    chunk = max(1, 1_000_000 // n_items)
    for s in range(0, users.size, chunk):
        u = torch.as_tensor(users[s : s + chunk], device=device)
        out[s : s + chunk] = score_matrix(model, u, items, logits=logits).cpu().numpy()
    return out


def evaluate_holdout_part(
    model: nn.Module,
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
    # ranks and AUC from logits (no sigmoid saturation ties); thresholds on probabilities
    pos = score_cells(model, users * n_items + items, n_items, device, logits=True)
    cand_cells = (users[:, None] * n_items + candidates).ravel()
    neg = score_cells(model, cand_cells, n_items, device, logits=True).reshape(candidates.shape)
    out = metrics.hit_ndcg(metrics.rank_of_positive(pos, neg), prefix=prefix)
    if full_ranking:
        scores = score_all_items(model, users, n_items, device)
        # rank against every item the user has not interacted with: all known positives are
        # excluded except the target itself (full_rank_of_positive never excludes the target)
        ranks = metrics.full_rank_of_positive(scores, items, known[users])
        out.update(metrics.hit_ndcg(ranks, prefix=f"{prefix}full_"))
    out[f"{prefix}auc"] = metrics.roc_auc(pos, neg.ravel())
    out.update(metrics.binary_at_threshold(expit(pos), expit(neg.ravel()), 0.5, prefix=prefix))
    return out
