"""Scoring for evaluation: a torch model or a fitted baseline, in bounded blocks.

Every evaluation path calls these, so the sampled metrics, full ranking and the paper report
use the same arithmetic for the same model. A scorer is a torch model (GMF / MLP / NeuMF get
structure-aware block scoring; any other module scores flattened pairs) or anything with
`score_cells(users, items)` and `score_all_items(users)` returning logit-like scores (the
baselines of `ocfb.baselines`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from ocfb.models import GMF, MLP, NeuMF, predict_cell_logits, score_matrix

# Full ranking scores and ranks row blocks of about this many (user, item) cells, so memory is
# bounded by the block (NeuMF's (rows, items, 32) hidden tensor: 16 MB at 2^17), never by
# users x items. benchmarks/bench_metrics.py, NeuMF 8 / 32-32 / [32, 16, 8], 1,900 x 17,600,
# validation + test (3,795 users), one thread, three runs on a shared 2-core machine:
# 2^15 cells 58 s, 2^16 24 s / 12.4 s, 2^17 19 s / 15.3 s, 2^18 26 s / 29 s / 14.1 s,
# 2^20 52 s, 2^22 79 s. 2^16-2^18 is a flat optimum (the hidden tensor fits the caches);
# 2^20 and up is 2-3x slower. 2^17 sits in the middle of it.
FULL_BLOCK_CELLS = 1 << 17


@runtime_checkable
class Scorer(Protocol):
    """A fitted non-torch model (a baseline): logit-like scores for cells and whole rows."""

    def score_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores (float64) of the given (user, item) pairs."""
        ...

    def score_all_items(self, users: np.ndarray) -> np.ndarray:
        """Scores (float32 or float64) of every item for each user: (len(users), n_items)."""
        ...


AnyScorer = nn.Module | Scorer


# -- scoring: a torch model or a baseline ----------------------------------------------------


def score_cells(
    scorer: AnyScorer, cells: np.ndarray, n_items: int, device: torch.device, *,
    logits: bool = False,
) -> np.ndarray:
    """Probabilities (float64, from the logits) or the logits of flat cell ids.

    One call scores the whole block: torch models go through the models' one chunked
    prediction function (`ocfb.models.predict_cell_logits`), baselines through their own.
    """
    cells = np.asarray(cells, dtype=np.int64)
    if isinstance(scorer, nn.Module):
        z = predict_cell_logits(scorer, cells, n_items, device).cpu().numpy().astype(np.float64)
    elif isinstance(scorer, Scorer):
        z = np.asarray(scorer.score_cells(cells // n_items, cells % n_items), dtype=np.float64)
    else:
        raise TypeError(
            f"scorer must be a torch model or have score_cells/score_all_items, got "
            f"{type(scorer).__name__}"
        )
    return z if logits else expit(z)


@torch.no_grad()
def score_all_items(
    scorer: AnyScorer, users: np.ndarray, n_items: int, device: torch.device, *,
    logits: bool = True, block_cells: int = FULL_BLOCK_CELLS,
) -> np.ndarray:
    """(len(users), n_items) logits (or probabilities), scored in row blocks of bounded size."""
    users = np.asarray(users, dtype=np.int64)
    out = np.empty((users.size, n_items), dtype=np.float32)
    for s, block in row_blocks(users, n_items, block_cells):
        out[s : s + block.size] = score_rows(scorer, block, n_items, device)
    return out if logits else expit(out)


def row_blocks(
    users: np.ndarray, n_items: int, block_cells: int
) -> list[tuple[int, np.ndarray]]:
    """(start, users) blocks of about `block_cells` cells each (at least one row)."""
    rows = max(1, block_cells // max(n_items, 1))
    return [(s, users[s : s + rows]) for s in range(0, users.size, rows)]


def score_rows(
    scorer: AnyScorer, users: np.ndarray, n_items: int, device: torch.device
) -> np.ndarray:
    """Logits of every item for a block of users (float32 for torch models)."""
    if isinstance(scorer, nn.Module):
        u = torch.as_tensor(users, device=device)
        items = torch.arange(n_items, device=device)
        return score_matrix(scorer, u, items, logits=True).cpu().numpy()
    if isinstance(scorer, Scorer):
        return np.asarray(scorer.score_all_items(users))
    raise TypeError(
        f"scorer must be a torch model or have score_cells/score_all_items, got "
        f"{type(scorer).__name__}"
    )


# -- sampled candidates: one forward over the (n, 1 + k) block ----------------------------------

# Rows of the candidate block per forward: bounds the (rows, 1 + k, hidden) intermediates to
# a few MB (2,048 x 100 x 32 floats = 26 MB) whatever the number of held-out positives.
_BLOCK_ROWS = 2_048


@torch.no_grad()
def block_logits(
    scorer: AnyScorer, users: np.ndarray, items: np.ndarray, n_items: int,
    device: torch.device,
) -> np.ndarray:
    """Logits (float64) of users[r] with each of items[r, :], shape items.shape.

    For GMF / MLP / NeuMF the user-side terms are computed once per row and the first MLP layer
    is split into a user part and an item part (precomputed for the whole catalogue), as
    `ocfb.models.score_matrix` does for full ranking, so both rankings use the same arithmetic;
    other models and baselines score the flattened pairs.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    kind = _structured(scorer)
    if kind is None:
        cells = (users[:, None] * n_items + items).ravel()
        return score_cells(scorer, cells, n_items, device, logits=True).reshape(items.shape)
    was_training = scorer.training
    scorer.eval()
    try:
        item_part = _item_parts(scorer, kind, device)
        out = np.empty(items.shape, dtype=np.float64)
        for s in range(0, users.size, _BLOCK_ROWS):
            u = torch.as_tensor(users[s : s + _BLOCK_ROWS], device=device)
            i = torch.as_tensor(items[s : s + _BLOCK_ROWS], device=device)
            out[s : s + _BLOCK_ROWS] = _rows(scorer, kind, item_part, u, i).cpu().numpy()
        return out
    finally:
        scorer.train(was_training)


def _structured(scorer: AnyScorer) -> str | None:
    """'gmf' / 'mlp' / 'neumf' for the library's models, None for anything else."""
    for cls in (NeuMF, MLP, GMF):
        if type(scorer) is cls:
            return cls.__name__.lower()
    return None


def _item_parts(model: nn.Module, kind: str, device: torch.device) -> torch.Tensor | None:
    """W_item q_i for every item: the item half of the first MLP layer (None for GMF)."""
    mlp = model if kind == "mlp" else getattr(model, "mlp", None)
    if mlp is None:
        return None
    first: nn.Linear = mlp.tower[0]
    d_u = mlp.user.embedding_dim
    return mlp.item.weight @ first.weight[:, d_u:].T


def _mlp_rows(mlp: MLP, part: torch.Tensor, u: torch.Tensor, i: torch.Tensor,
              head: torch.Tensor) -> torch.Tensor:
    """head . tower(...) for each (row user, row item) pair, from the split first layer."""
    first: nn.Linear = mlp.tower[0]
    d_u = mlp.user.embedding_dim
    a = mlp.user(u) @ first.weight[:, :d_u].T + first.bias  # (R, h1)
    h = torch.relu(a[:, None, :] + part[i])  # (R, K, h1)
    for layer in list(mlp.tower)[2:]:
        h = layer(h)
    return h @ head


def _rows(model: nn.Module, kind: str, part: torch.Tensor | None, u: torch.Tensor,
          i: torch.Tensor) -> torch.Tensor:
    """Logits (R, K) for one block of rows."""
    w, bias = model.out.weight[0], model.out.bias
    if kind == "gmf":
        return (model.user(u)[:, None, :] * model.item(i)) @ w + bias
    if kind == "mlp":
        return _mlp_rows(model, part, u, i, w) + bias
    mf = model.gmf.user.embedding_dim
    gmf = (model.gmf.user(u)[:, None, :] * model.gmf.item(i)) @ w[:mf]
    return gmf + _mlp_rows(model.mlp, part, u, i, w[mf:]) + bias
