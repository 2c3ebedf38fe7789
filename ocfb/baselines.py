"""Reference baselines, fitted once on the same training positives the neural run trains on.

- `popularity`: an item's training count, the same for every user;
- `ease`: Steck 2019's closed form, B = I - P diagMat(1 / diag(P)) with P = (X'X + l2 I)^-1,
  score = X_u B (memory: one n_items^2 float32 matrix, 1.24 GB at 17,632 items; refitted on
  load instead of checkpointed);
- `als`: implicit's ALS (Hu et al. 2008) on CPU, one thread, seeded, so a seed gives the same
  factors.

A `BaselineRun` (the OCFBRun interface: iterate, `step`, `done`, `history`, `state_dict`,
`save` / `load`) builds the protocol's split exactly as the neural run does (same seed, same
cache, same frozen candidates), fits on training positives only, and yields ONE record (term 0,
`is_baseline: 1.0`) with the same metric keys as a neural run. Its `terms` are ignored: a
baseline never looks as if it trained for N terms.

Ranking metrics need only the order of the scores. The paper protocol's classification report
and the holdout's precision / recall at 0.5 need a probability, so the raw scores are mapped to
logits by Platt scaling (a*s + b, a > 0, which keeps the order) fitted on the labeled training
cells the neural term 0 sees: training positives against the same term-0 negatives
(`cfg.negatives` drawn with the loop's own sampling stream).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ocfb import protocols
from ocfb.atomicio import atomic_write
from ocfb.config import ConfigError, RunConfig
from ocfb.data import Interactions
from ocfb.names import BASELINE_MODELS
from ocfb.negatives import NegativePool
from ocfb.sampling import blocked_cells

# Pairs x items per block when EASE scores single pairs (a block of B's columns is densified).
_EASE_PAIR_BLOCK = 1 << 22


def _csr(cells: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Users x items float64 CSR with a 1 at every training cell."""
    cells = np.asarray(cells, dtype=np.int64)
    return sp.csr_matrix(
        (np.ones(cells.size), (cells // n_items, cells % n_items)), shape=(n_users, n_items)
    )


class Baseline:
    """A fitted scorer: raw scores mapped to logits by `scale * raw + offset` (Platt)."""

    name = "baseline"
    # True when `state()` omits the fitted arrays: a restored run refits before scoring
    refit_on_load = False

    def __init__(self, n_users: int, n_items: int) -> None:
        self.n_users, self.n_items = n_users, n_items
        self.scale, self.offset = 1.0, 0.0

    def fit(self, train: sp.csr_matrix) -> Baseline:
        """Fit on the users x items training matrix (1 = training positive)."""
        raise NotImplementedError

    def raw_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Uncalibrated scores of (user, item) pairs."""
        raise NotImplementedError

    def raw_rows(self, users: np.ndarray) -> np.ndarray:
        """Uncalibrated scores of every item for each user."""
        raise NotImplementedError

    def score_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Calibrated logits (float64) of (user, item) pairs."""
        raw = self.raw_cells(np.asarray(users, np.int64), np.asarray(items, np.int64))
        return self.scale * raw.astype(np.float64) + self.offset

    def score_all_items(self, users: np.ndarray) -> np.ndarray:
        """Calibrated logits of every item for each user, (len(users), n_items)."""
        return self.scale * self.raw_rows(np.asarray(users, np.int64)) + self.offset

    def calibrate(self, pos_raw: np.ndarray, neg_raw: np.ndarray) -> None:
        """Platt scaling: logistic regression of the label on the raw score; keeps the order.

        A non-positive slope (the score does not separate the classes on training cells)
        would reverse or flatten the ranking, so the slope is floored at a tiny positive value
        and only the offset then carries the class balance.
        """
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([pos_raw, neg_raw]).astype(np.float64)
        y = np.r_[np.ones(pos_raw.size), np.zeros(neg_raw.size)]
        mu, sd = float(x.mean()), float(x.std()) or 1.0
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(((x - mu) / sd)[:, None], y)
        slope = float(lr.coef_[0, 0]) / sd
        if slope > 1e-9:
            # logit = c (x - mu) / sd + i = slope x + (i - slope mu)
            self.scale, self.offset = slope, float(lr.intercept_[0]) - slope * mu
        else:
            self.scale = 1e-9
            self.offset = float(np.log(pos_raw.size / neg_raw.size)) - self.scale * mu

    def state(self) -> dict[str, Any]:
        """Fitted arrays and calibration, for checkpoints."""
        return {"scale": self.scale, "offset": self.offset}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned (no refit)."""
        self.scale, self.offset = float(state["scale"]), float(state["offset"])


class Popularity(Baseline):
    """Score of (u, i) = number of training positives of item i (the same for every user)."""

    name = "popularity"

    def fit(self, train: sp.csr_matrix) -> Popularity:
        """Count each item's training positives."""
        self.counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float64)
        return self

    def raw_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Training count of each pair's item."""
        return self.counts[items]

    def raw_rows(self, users: np.ndarray) -> np.ndarray:
        """The count vector repeated for each user."""
        return np.broadcast_to(self.counts, (users.size, self.n_items)).copy()

    def state(self) -> dict[str, Any]:
        """Counts and calibration."""
        return {**super().state(), "counts": self.counts.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the counts and calibration."""
        super().load_state(state)
        self.counts = np.asarray(state["counts"], dtype=np.float64)


class EASE(Baseline):
    """Steck 2019: item-item weights B from a ridge regression of X on itself, diag(B) = 0.

    Memory is ONE n_items^2 float32 matrix, worked in place: the Gram matrix X'X is built
    into it in column blocks, LAPACK's spotrf / spotri turn it into P = (X'X + l2 I)^-1
    (Cholesky: about 2x faster than a general inverse, and the matrix is symmetric positive
    definite for any l2 > 0), and B = -P / diag(P) is divided into the same buffer. At 17,632
    items that is 1.24 GB, where the float64 `inv` path held two 2.5 GB matrices plus a
    checkpoint copy (21.6 GB RSS in issue 23's kill). float32 leaves the ranking unchanged at
    the l2 values used (a test compares the top-100 per user with a float64 solve on
    MovieLens-100K).

    Checkpoints hold `l2`, the calibration and nothing n^2: the run's split (hence the
    training matrix) is rebuilt from the seed on load, and the weights are refitted only when
    the restored run is asked to score again (`refit_on_load`). Writing 1.24 GB per checkpoint
    (3.76 GB in float64) costs more disk and time than the refit (measured in results/bench).
    """

    name = "ease"
    refit_on_load = True
    # X'X is built in column blocks of about this many cells (the sparse product of one block
    # is at most 8 B per cell: 64 MB), so the Gram matrix is the only n^2 allocation
    GRAM_BLOCK_CELLS = 1 << 23

    def __init__(self, n_users: int, n_items: int, l2: float) -> None:
        super().__init__(n_users, n_items)
        self.l2 = l2

    def fit(self, train: sp.csr_matrix) -> EASE:
        """Closed form: P = (X'X + l2 I)^-1, B = -P / diag(P) (column-wise), diag(B) = 0."""
        from scipy.linalg import lapack

        self.train = sp.csr_matrix(train, dtype=np.float32)
        g = self._gram()
        # LAPACK works on a Fortran-ordered matrix in place; the C-ordered buffer's transpose
        # is one, and since g is symmetric its "lower" triangle is g's upper one
        chol, info = lapack.spotrf(g.T, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise ConfigError(f"l2: {self.l2!r} leaves X'X + l2 I not positive definite "
                              f"(Cholesky failed at column {info}); use a larger l2 (> 0)")
        _, info = lapack.spotri(chol, lower=1, overwrite_c=1)
        if info != 0:
            raise ConfigError(f"l2: {self.l2!r}: the EASE inverse is singular at column {info}")
        _mirror_upper(g)
        g /= -np.diag(g).copy()  # column j divided by -P_jj: B = -P diagMat(1 / diag(P))
        g[np.diag_indices_from(g)] = 0.0
        self.weights = g
        return self

    def _gram(self) -> np.ndarray:
        """X'X + l2 I as a dense float32 (n, n) array, built in column blocks."""
        n = self.n_items
        g = np.empty((n, n), dtype=np.float32)
        xt, xc = self.train.T.tocsr(), self.train.tocsc()
        step = max(1, self.GRAM_BLOCK_CELLS // max(n, 1))
        for c in range(0, n, step):
            g[:, c : c + step] = (xt @ xc[:, c : c + step]).toarray()
        g[np.diag_indices_from(g)] += np.float32(self.l2)
        return g

    def raw_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """X_u . B[:, i] per pair: the sum of B[j, i] over the user's training items j.

        Gathers one weight per (pair, training item), at most `_EASE_PAIR_BLOCK` at a time.
        Densifying B's columns per pair instead read n_items strided cells per pair: 131 s of
        calibration and 62 s of sampled evaluation at 17,632 items, against seconds here.
        """
        x = self.train
        counts = (x.indptr[users + 1] - x.indptr[users]).astype(np.int64)
        out = np.zeros(users.size, dtype=np.float64)
        ends = np.cumsum(counts)
        s = 0
        while s < users.size:
            # pairs s..e hold at most _EASE_PAIR_BLOCK gathered weights (at least one pair)
            base = ends[s - 1] if s else 0
            e = max(s + 1, int(np.searchsorted(ends, base + _EASE_PAIR_BLOCK, "right")))
            c = counts[s:e]
            pair = np.repeat(np.arange(e - s), c)
            pos = np.repeat(x.indptr[users[s:e]] - (ends[s:e] - c - base), c) + np.arange(
                int(c.sum()))
            w = self.weights[x.indices[pos], items[s:e][pair]] * x.data[pos]
            out[s:e] = np.bincount(pair, weights=w, minlength=e - s)
            s = e
        return out

    def raw_rows(self, users: np.ndarray) -> np.ndarray:
        """X_users @ B (the caller bounds memory by asking for row blocks)."""
        return np.asarray(self.train[users] @ self.weights)

    def state(self) -> dict[str, Any]:
        """`l2` and calibration only: the weights are refitted on load (class docstring)."""
        return {**super().state(), "l2": float(self.l2)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the calibration; the caller refits the weights (`refit_on_load`)."""
        super().load_state(state)
        self.l2 = float(state["l2"])


def _mirror_upper(a: np.ndarray, rows: int = 1024) -> None:
    """Copy the upper triangle of square `a` onto its lower one, in place, `rows` at a time
    (spotri leaves only one triangle; a whole-matrix `a.T` copy would be a second n^2)."""
    n = a.shape[0]
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        a[r0:r1, :r0] = a[:r0, r0:r1].T
        blk = a[r0:r1, r0:r1]
        low = np.tril_indices(r1 - r0, -1)
        blk[low] = blk.T[low]


class ALS(Baseline):
    """implicit's AlternatingLeastSquares on CPU: score = user factors . item factors."""

    name = "als"

    def __init__(self, n_users: int, n_items: int, cfg: RunConfig, threads: int = 1) -> None:
        super().__init__(n_users, n_items)
        self.cfg, self.threads = cfg, threads

    def fit(self, train: sp.csr_matrix) -> ALS:
        """Fit with a seeded initialisation; one thread by default, so a seed repeats exactly."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        cfg = self.cfg
        # implicit runs its own threads; a multi-threaded BLAS underneath oversubscribes the
        # cores (implicit warns about it at construction) and makes the sums' order, so the
        # factors, vary
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=cfg.als_factors, regularization=cfg.als_regularization,
                alpha=cfg.als_alpha, iterations=cfg.als_iterations, num_threads=self.threads,
                random_state=cfg.seed % 2**32, calculate_training_loss=False,
            )
            model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float64)
        return self

    def raw_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Dot product of each pair's factors."""
        return np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])

    def raw_rows(self, users: np.ndarray) -> np.ndarray:
        """User factors times all item factors."""
        return self.user_factors[users] @ self.item_factors.T

    def state(self) -> dict[str, Any]:
        """Factors and calibration."""
        return {**super().state(), "user_factors": self.user_factors.copy(),
                "item_factors": self.item_factors.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore factors and calibration."""
        super().load_state(state)
        self.user_factors = np.asarray(state["user_factors"], dtype=np.float64)
        self.item_factors = np.asarray(state["item_factors"], dtype=np.float64)


def build_baseline(cfg: RunConfig, n_users: int, n_items: int) -> Baseline:
    """The (unfitted) baseline `cfg.model` names."""
    if cfg.model == "popularity":
        return Popularity(n_users, n_items)
    if cfg.model == "ease":
        return EASE(n_users, n_items, cfg.l2)
    if cfg.model == "als":
        return ALS(n_users, n_items, cfg)
    raise ConfigError(f"model: {cfg.model!r} is not a baseline; expected one of {BASELINE_MODELS}")


class BaselineRun:
    """A baseline as a run: fit once, yield one record (term 0, `is_baseline: 1.0`), done.

    Same split, frozen candidates, `known` mask and term-0 negatives as the neural run of the
    same config and seed; numpy on CPU whatever `cfg.device` says.
    """

    def __init__(
        self, cfg: RunConfig, data: Interactions, *, cache_dir: str | Path | None = None
    ) -> None:
        if not cfg.is_baseline:
            raise ConfigError(
                f"model: {cfg.model!r} is trained in the OCF-B loop, not a baseline "
                f"({BASELINE_MODELS}); build runs with ocfb.runs.make_run"
            )
        self.cfg, self.data = cfg, data
        self.device = torch.device("cpu")
        self.term = -1
        self.history: list[dict[str, Any]] = []
        self.model: Baseline | None = None
        self._restored: Baseline | None = None
        self.paper: protocols.PaperSplit | None = None
        self.holdout: protocols.HoldoutSplit | None = None
        base = self._setup_split(cache_dir)
        self.negatives = self._term0_negatives(base)

    def _setup_split(self, cache_dir: str | Path | None) -> np.ndarray:
        """The protocol's split, as OCFBRun builds it; returns the cells negatives avoid."""
        cfg, data = self.cfg, self.data
        positives = np.sort(data.cells)
        if cfg.protocol == "paper":
            self.n_neg = cfg.n_negatives(len(data))
            self.paper = protocols.make_paper_split(
                data, self.n_neg, cfg.test_fraction, cfg.val_fraction, cfg.seed
            )
            self.train_pos = self.paper.train_pos
            return positives
        self.holdout = h = protocols.make_holdout_split(
            data, cfg.seed, split=cfg.split, fraction=cfg.holdout_fraction,
            n_candidates=cfg.n_candidates, cache_dir=cache_dir,
        )
        self.train_pos = h.train_cells
        self.n_neg = cfg.n_negatives(h.train_cells.size)
        self.known = protocols.known_matrix(data)
        n = data.n_items
        # frozen candidates are never negatives, exactly as in the neural run
        return blocked_cells(positives, (h.val_users[:, None] * n + h.val_candidates).ravel(),
                             (h.test_users[:, None] * n + h.test_candidates).ravel())

    def _term0_negatives(self, base: np.ndarray) -> np.ndarray:
        """The neural run's term-0 negatives: same pool, same sampling stream, same draw."""
        from ocfb.algorithm import SAMPLING_STREAM

        d = self.data
        free = d.n_users * d.n_items - base.size
        if self.n_neg > free:
            raise ConfigError(
                f"negatives: {self.cfg.negatives!r} resolves to {self.n_neg} negatives, but "
                f"only {free} free (user, item) cells exist on the {d.n_users} x {d.n_items} grid"
            )
        pool = NegativePool(d.n_users, d.n_items, base, exclude_removed=self.cfg.exclude_removed)
        return pool.draw_fresh(np.random.default_rng([self.cfg.seed, SAMPLING_STREAM]), self.n_neg)

    # -- the run ----------------------------------------------------------------------------

    def __iter__(self) -> Any:
        while not self.done:
            yield self.step()

    @property
    def done(self) -> bool:
        """True once the single record exists."""
        return self.term >= 0

    def step(self) -> dict[str, Any]:
        """Fit, calibrate, evaluate; return the one record."""
        if self.done:
            raise RuntimeError("a baseline run has exactly one record (term 0) and is done")
        d = self.data
        t0 = time.perf_counter()
        model = build_baseline(self.cfg, d.n_users, d.n_items)
        model.fit(_csr(self.train_pos, d.n_users, d.n_items))
        neg = self.negatives if self.paper is None else self.negatives[self.paper.train_slots]
        n = d.n_items
        model.calibrate(model.raw_cells(self.train_pos // n, self.train_pos % n),
                        model.raw_cells(neg // n, neg % n))
        self.model = model
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = self.evaluate()
        t_eval = time.perf_counter() - t0
        nan = float("nan")
        rec: dict[str, Any] = {
            "term": 0, "is_baseline": 1.0, "n_negatives": int(self.n_neg), "n_removed_total": 0,
            "err_mean": nan, "err_max": nan, "train_loss": nan, "n_replaced": 0, **metrics,
        }
        if self.cfg.full_ranking == "selected":  # the one term is both selected and final
            rec.update(sel_term=0, **{f"sel_{k}": v for k, v in metrics.items()})
        rec.update(time_train=t_train, time_score=0.0, time_resample=0.0, time_eval=t_eval)
        self.term = 0
        self.history.append(rec)
        return rec

    def _refit_if_restored(self) -> None:
        """Refit a restored model whose checkpoint left its weights out (EASE), keeping the
        restored calibration: the same training matrix and l2 give the same weights."""
        restored = getattr(self, "_restored", None)
        if self.model is not None or restored is None:
            return
        d = self.data
        scale, offset = restored.scale, restored.offset
        restored.fit(_csr(self.train_pos, d.n_users, d.n_items))
        restored.scale, restored.offset = scale, offset
        self.model, self._restored = restored, None

    def release(self) -> None:
        """Drop the fitted model's arrays (EASE: n_items^2), e.g. before a reused Ray worker
        starts its next trial; the history stays, and `evaluate` refits if asked."""
        if self.model is not None and self.model.refit_on_load:
            self._restored = self.model
            self.model = None
            for big in ("weights", "train"):
                self._restored.__dict__.pop(big, None)

    def evaluate(self, full_ranking: bool | None = None) -> dict[str, float]:
        """The protocol's metrics of the fitted baseline (full ranking unless schedule `off`)."""
        self._refit_if_restored()
        if self.model is None:
            raise RuntimeError("the baseline is not fitted yet: call step() first")
        if self.paper is not None:
            return protocols.evaluate_paper(self.model, self.paper, self.negatives,
                                            self.data.n_items, self.device)
        if full_ranking is None:
            full_ranking = self.cfg.full_ranking != "off"
        assert self.holdout is not None
        return protocols.evaluate_holdout(self.model, self.holdout, self.known, self.device,
                                          full_ranking=full_ranking)

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Config, data hash, the fitted model's arrays and the history."""
        return {
            "kind": "baseline",
            "term": self.term,
            "config": self.cfg.model_dump(mode="json"),
            "data_hash": self.data.content_hash(),
            "model": None if self.model is None else self.model.state(),
            "history": [dict(r) for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`: no refit; the config and data must be the ones it came from."""
        if state.get("kind") != "baseline":
            raise ValueError("checkpoint is not a baseline run's (no kind: baseline)")
        if state["config"] != self.cfg.model_dump(mode="json"):
            raise ValueError("checkpoint was written by a run with a different config")
        if state["data_hash"] != self.data.content_hash():
            raise ValueError("checkpoint was written for different data (content hash differs)")
        self.model, self._restored = None, None
        if state["model"] is not None:
            model = build_baseline(self.cfg, self.data.n_users, self.data.n_items)
            model.load_state(copy.deepcopy(state["model"]))
            if model.refit_on_load:
                self._restored = model  # refitted only if asked to score (evaluate)
            else:
                self.model = model
        self.term = int(state["term"])
        self.history = [dict(r) for r in state["history"]]

    def save(self, path: str | Path) -> None:
        """Write the state atomically (temporary file, then rename), group-readable."""
        state = self.state_dict()
        atomic_write(path, lambda f: torch.save(state, f))

    def load(self, path: str | Path) -> None:
        """Restore from a file written by `save`."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
