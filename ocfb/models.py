"""GMF, MLP and NeuMF (He et al. 2017, "Neural Collaborative Filtering"), returning logits.

Every model maps (user ids, item ids) to one logit per pair; the trainer applies BCE with logits
and scoring applies a sigmoid. Embeddings are initialised N(0, 0.01) as in He et al.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _init(module: nn.Module, generator: torch.Generator | None) -> None:
    # He et al. 2017 initialise embeddings from N(0, 0.01); dense layers get Kaiming-uniform
    # (ReLU tower) and the output layer LeCun-uniform, as in the reference NCF code.
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
        elif isinstance(m, nn.Linear):
            if getattr(m, "_is_output", False):
                bound = (3.0 / m.in_features) ** 0.5
                nn.init.uniform_(m.weight, -bound, bound, generator=generator)
            else:
                nn.init.kaiming_uniform_(m.weight, a=0.0, nonlinearity="relu", generator=generator)
            nn.init.zeros_(m.bias)


def _output(in_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, 1)
    layer._is_output = True  # type: ignore[attr-defined]
    return layer


class GMF(nn.Module):
    """Generalized matrix factorization: element-wise product of embeddings, then a linear layer."""

    def __init__(self, n_users: int, n_items: int, mf_dim: int = 8) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, mf_dim)
        self.item = nn.Embedding(n_items, mf_dim)
        self.out = _output(mf_dim)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The GMF layer (before the output), shared with NeuMF."""
        return self.user(users) * self.item(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        return self.out(self.features(users, items)).squeeze(-1)


class MLP(nn.Module):
    """Concatenated user and item embeddings (sizes set separately) through a ReLU tower."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_dim: int = 32,
        item_dim: int = 32,
        layers: Sequence[int] = (32, 16, 8),
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("MLP needs at least one hidden layer in `layers`")
        self.user = nn.Embedding(n_users, user_dim)
        self.item = nn.Embedding(n_items, item_dim)
        tower: list[nn.Module] = []
        width = user_dim + item_dim
        for h in layers:
            tower += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.tower = nn.Sequential(*tower)
        self.out_dim = width
        self.out = _output(width)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden layer, shared with NeuMF."""
        return self.tower(torch.cat([self.user(users), self.item(items)], dim=-1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        return self.out(self.features(users, items)).squeeze(-1)


class NeuMF(nn.Module):
    """GMF and MLP branches with their own embeddings, last layers concatenated, linear output."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        mf_dim: int = 8,
        user_dim: int = 32,
        item_dim: int = 32,
        layers: Sequence[int] = (32, 16, 8),
    ) -> None:
        super().__init__()
        self.gmf = GMF(n_users, n_items, mf_dim)
        self.mlp = MLP(n_users, n_items, user_dim, item_dim, layers)
        # the branch output layers are unused inside NeuMF; drop them so Adam does not track them
        del self.gmf.out, self.mlp.out
        self.out = _output(mf_dim + self.mlp.out_dim)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        h = torch.cat([self.gmf.features(users, items), self.mlp.features(users, items)], dim=-1)
        return self.out(h).squeeze(-1)


def build_model(
    name: str,
    n_users: int,
    n_items: int,
    *,
    mf_dim: int = 8,
    user_dim: int = 32,
    item_dim: int = 32,
    layers: Sequence[int] = (32, 16, 8),
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Construct a model by name ('gmf', 'mlp', 'neumf') and initialise it from `generator`."""
    if name == "gmf":
        model: nn.Module = GMF(n_users, n_items, mf_dim)
    elif name == "mlp":
        model = MLP(n_users, n_items, user_dim, item_dim, layers)
    elif name == "neumf":
        model = NeuMF(n_users, n_items, mf_dim, user_dim, item_dim, layers)
    else:
        raise ValueError(f"unknown model {name!r}; expected one of 'gmf', 'mlp', 'neumf'")
    reset_parameters(model, generator)
    return model


def reset_parameters(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-initialise every weight (used by `refit: fresh`), reproducibly from `generator`."""
    _init(model, generator)


# Pairs per forward when scoring. Measured at MovieLens-1M shape (NeuMF, 1 thread): 8k-16k
# pairs per forward 0.66-0.84 s per 2M pairs, 262k pairs 1.4-2.8 s (the intermediates of a
# small chunk stay near the cache). The factored path below, with its buffers reused, scored
# 4M cells in 0.57 s at 8k-16k pairs, 0.60 s at 4k and 0.61 s at 32k (the old allocating
# loop: 0.89 s at 4k).
PREDICT_CHUNK = 16_384
FACTORED_CHUNK = 16_384


class _Factored(NamedTuple):
    """A pair model as per-user / per-item tables plus the rest of its MLP tower."""

    # (U + I, h1): rows 0..U-1 are W_u p_u + b of the first tower layer, rows U.. are W_i q_i,
    # so one bag-sum of rows (u, U + i) is the first layer's pre-activation for a pair
    mlp_table: torch.Tensor | None
    n_users: int
    user_gmf: torch.Tensor | None  # (U, mf): GMF user factors times the output weights
    item_gmf: torch.Tensor | None  # (I, mf)
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (W^T contiguous, bias), each + ReLU
    head: torch.Tensor | None  # output weights over the last hidden layer
    bias: torch.Tensor  # output bias, shape (1,)


def _factored_tables(model: nn.Module) -> _Factored | None:
    """Per-user and per-item tables that turn scoring a pair into row gathers.

    The first MLP layer is linear in [p_u; q_i], so W [p; q] + b = (W_u p + b) + W_i q is
    computed once per user and per item; GMF's output weight folds into the user factor. A pair
    then costs a bag-sum of two rows, the rest of the tower and a dot product. Separate
    contiguous tables for the two branches (not one 40-wide table sliced per chunk) let every
    op write into a reused buffer. None for a model this does not know (scored by its forward).
    """
    if type(model) is GMF:
        w = model.out.weight[0]
        return _Factored(None, model.user.num_embeddings, (model.user.weight * w).contiguous(),
                         model.item.weight.contiguous(), [], None, model.out.bias)
    if type(model) is MLP:
        gmf, mlp, head, bias = None, model, model.out.weight[0], model.out.bias
    elif type(model) is NeuMF:
        gmf, mlp, bias = model.gmf, model.mlp, model.out.bias
        mf = gmf.user.embedding_dim
        head = model.out.weight[0][mf:]
    else:
        return None
    first: nn.Linear = mlp.tower[0]
    d_u = mlp.user.embedding_dim
    user_mlp = torch.addmm(first.bias, mlp.user.weight, first.weight[:, :d_u].T)
    item_mlp = mlp.item.weight @ first.weight[:, d_u:].T
    layers = [(m.weight.T.contiguous(), m.bias) for m in list(mlp.tower)[2:]
              if isinstance(m, nn.Linear)]
    user_gmf = item_gmf = None
    if gmf is not None:
        user_gmf = (gmf.user.weight * model.out.weight[0][:mf]).contiguous()
        item_gmf = gmf.item.weight.contiguous()
    return _Factored(torch.cat([user_mlp, item_mlp]), mlp.user.num_embeddings, user_gmf,
                     item_gmf, layers, head.contiguous(), bias)


class _Buffers:
    """Per-chunk intermediates, allocated once per call and sliced for the last chunk.

    Allocating a dozen tensors per chunk, slicing one 40-wide table per branch and ops that
    were not in place: 0.89 s to score 4M NeuMF cells, 0.55 s without them (1 thread).
    """

    def __init__(self, f: _Factored, step: int, ref: torch.Tensor) -> None:
        def new(*shape: int) -> torch.Tensor:
            return torch.empty(*shape, dtype=ref.dtype, device=ref.device)

        mf = [] if f.user_gmf is None else [f.user_gmf.shape[1]] * 2
        self.h = [new(step, w.shape[1]) for w, _ in f.layers]  # after the first layer
        self.g = [new(step, w) for w in mf]
        self.ones = new(mf[0]).fill_(1.0) if mf else None

    def view(self, n: int) -> _Buffers:
        """The buffers' first n rows (the last, shorter chunk)."""
        out = object.__new__(_Buffers)
        out.h = [b[:n] for b in self.h]
        out.g = [b[:n] for b in self.g]
        out.ones = self.ones
        return out


def _factored_chunk(f: _Factored, users: torch.Tensor, items: torch.Tensor,
                    buf: _Buffers, out: torch.Tensor) -> None:
    """Logits of one chunk of pairs into `out`, every intermediate in `buf`.

    Measured on 4M NeuMF cells, 1 thread: 0.59 s before the two changes below, 0.49-0.50 s
    after, with bit-identical logits (tests/test_models.py compares with the forward).
    """
    if f.user_gmf is not None:
        a, b = buf.g
        torch.index_select(f.user_gmf, 0, users, out=a)
        torch.index_select(f.item_gmf, 0, items, out=b)
    out.copy_(f.bias.expand_as(out))
    if f.user_gmf is not None:
        # a matrix-vector product sums the GMF columns: 0.02 s per 4M pairs against 0.06 s
        # for torch.sum over dim 1
        torch.addmv(out, a.mul_(b), buf.ones, out=out)
    if f.mlp_table is None:
        return
    # one bag-sum reads the user and the item row and writes their sum once, where two
    # gathers and an add wrote and re-read two (n, h1) buffers: 0.13 s against 0.19 s per 4M
    # pairs. 0 + a + b is exactly a + b, so the logits do not move.
    h = F.embedding_bag(torch.stack([users, items + f.n_users], 1), f.mlp_table,
                        mode="sum").relu_()
    for (w, bias), nxt in zip(f.layers, buf.h, strict=True):
        # mm then an in-place bias add: addmm broadcasts the bias into the output first, which
        # cost 0.08 s per 4M pairs at 16 -> 8 against 0.027 s for mm (bit-identical results)
        h = torch.mm(h, w, out=nxt).add_(bias).relu_()
    torch.addmv(out, h, f.head, out=out)


@torch.no_grad()
def predict_logits(
    model: nn.Module, users: torch.Tensor, items: torch.Tensor,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Logits for many pairs, in chunks to bound memory: the one chunked prediction function.

    GMF, MLP and NeuMF are scored through their factored tables (equal to the forward up to
    float rounding, about 1e-6); any other module through its forward. Rank on logits, not
    probabilities: a float32 sigmoid is exactly 1.0 from a logit of about 17, which would turn
    confident, distinct scores into ties.
    """
    return _predict(model, users.shape[0], lambda s, e: (users[s:e], items[s:e]), batch_size,
                    users.device)


@torch.no_grad()
def predict_cell_logits(
    model: nn.Module, cells: np.ndarray, n_items: int, device: torch.device | str = "cpu",
    batch_size: int | None = None,
) -> torch.Tensor:
    """Logits (float32, on `device`) for flat cell ids `user * n_items + item`.

    Cells are split into (user, item) per chunk, in int32 where they fit: 0.03 s per 4M cells
    where the int64 division of the whole array up front took 0.085 s (index_select takes either).
    """
    cells = np.asarray(cells)
    small = cells.size == 0 or int(cells.max()) < 2**31
    c = torch.as_tensor(cells.astype(np.int32 if small else np.int64, copy=False), device=device)

    def pairs(s: int, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        users = torch.div(c[s:e], n_items, rounding_mode="floor")
        # int64 once here: index_select converts int32 ids on every call (4 per chunk)
        return users.long(), (c[s:e] - users * n_items).long()

    return _predict(model, c.shape[0], pairs, batch_size, c.device)


def _predict(
    model: nn.Module, n: int,
    pairs: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
    batch_size: int | None, device: torch.device,
) -> torch.Tensor:
    """Logits of pairs [0, n) given by `pairs(start, stop)`, chunk by chunk."""
    was_training = model.training
    model.eval()
    out = torch.empty(n, dtype=torch.float32, device=device)
    tables = _factored_tables(model)
    try:
        if tables is None:
            step = batch_size or PREDICT_CHUNK
            for s in range(0, n, step):
                out[s:s + step] = model(*pairs(s, s + step))
            return out
        step = batch_size or FACTORED_CHUNK
        buf = _Buffers(tables, min(step, n), out)
        for s in range(0, n, step):
            e = min(s + step, n)
            _factored_chunk(tables, *pairs(s, e), buf if e - s == step else buf.view(e - s),
                            out[s:e])
        return out
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_proba(
    model: nn.Module, users: torch.Tensor, items: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Sigmoid scores for many pairs, in chunks to bound memory."""
    return torch.sigmoid(predict_logits(model, users, items, batch_size))


def _mlp_logit_matrix(mlp: MLP, users: torch.Tensor, items: torch.Tensor,
                      head: torch.Tensor) -> torch.Tensor:
    """head . tower([p_u; q_i]) for every (user, item), without materialising the pairs.

    The first tower layer is linear in the concatenation, W [p; q] = W_u p + W_i q, so it is
    computed once per user and once per item and only broadcast-added per pair.
    """
    first: nn.Linear = mlp.tower[0]
    d_u = mlp.user.embedding_dim
    a = mlp.user(users) @ first.weight[:, :d_u].T + first.bias  # (U, h1)
    b = mlp.item(items) @ first.weight[:, d_u:].T  # (I, h1)
    h = torch.relu(a[:, None, :] + b[None, :, :])  # (U, I, h1)
    for layer in list(mlp.tower)[2:]:
        h = layer(h)
    return h @ head  # (U, I)


@torch.no_grad()
def score_matrix(
    model: nn.Module, users: torch.Tensor, items: torch.Tensor, *, logits: bool = False
) -> torch.Tensor:
    """Sigmoid scores (or logits) for every (user, item) pair, shape (len(users), len(items)).

    Uses the models' structure (GMF is a matrix product; the first MLP layer splits into a user
    and an item part), several times faster than scoring the flattened pairs one by one.
    """
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, GMF):
            w = model.out.weight[0]
            out = (model.user(users) * w) @ model.item(items).T + model.out.bias
        elif isinstance(model, MLP):
            out = _mlp_logit_matrix(model, users, items, model.out.weight[0]) + model.out.bias
        elif isinstance(model, NeuMF):
            w = model.out.weight[0]
            mf = model.gmf.user.embedding_dim
            gmf = (model.gmf.user(users) * w[:mf]) @ model.gmf.item(items).T
            out = gmf + _mlp_logit_matrix(model.mlp, users, items, w[mf:]) + model.out.bias
        else:  # any other pair model: score the flattened pairs
            flat = model(users.repeat_interleave(items.shape[0]), items.repeat(users.shape[0]))
            out = flat.view(users.shape[0], items.shape[0])
        return out if logits else torch.sigmoid(out)
    finally:
        model.train(was_training)
