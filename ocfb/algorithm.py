"""The OCF-B loop (Song & Song 2022, Figure 4) as a generator of per-term records.

Term 0 trains on positives plus uniformly drawn negatives (plain negative sampling). Each later
term scores every current negative, changes the negative set according to the strategy
(`ocfb.strategies`), retrains and evaluates. The loop knows nothing of Ray or W&B: callers
iterate it and forward the records. Its full state after any term can be saved and restored, and
a restored run continues with exactly the records an uninterrupted run would have produced (on
CPU).

Under `protocol: paper` the validation part's negative slots are frozen at term 0: their cells
join the pool's never-drawn set and the strategies see only the other slots (training and test,
which the paper rewrites), so validation is not made easier term by term.

Full ranking over all items is expensive, so it follows `cfg.full_ranking`: `every` term, `off`,
`final` (the last term only), or `selected`: sampled metrics decide the best term by
`cfg.selection_metric` (max, NaN never wins, ties keep the earliest), the loop keeps a copy of
those weights, and the final record carries the full metrics of both the final weights (the
usual keys) and the selected ones (`sel_term`, `sel_<key>` for every metric key).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ocfb import protocols
from ocfb.atomicio import atomic_write
from ocfb.config import ConfigError, RunConfig
from ocfb.data import Interactions
from ocfb.models import build_model, predict_cell_logits, reset_parameters
from ocfb.negatives import NegativePool
from ocfb.sampling import blocked_cells
from ocfb.strategies import replace_negatives
from ocfb.train import DEFAULT_MAX_LOSS, make_optimizer, train_epochs

# Seed streams: sampling and model init/shuffling never share a generator with the split.
SAMPLING_STREAM = 1
TORCH_STREAM = 2


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; an unavailable CUDA device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available here")
    return torch.device(name)


def torch_seed(seed: int) -> int:
    """The torch generator's seed for a run seed, valid for every seed up to 2**63 - 1.

    seed * 1,000,003 + 2 (the historical formula, so seeds below 1.8e13 keep their streams)
    taken modulo 2**64, the range torch accepts. An odd multiplier makes this a bijection on
    [0, 2**64): distinct run seeds never share a torch stream.
    """
    return (seed * 1_000_003 + TORCH_STREAM) % 2**64


def negative_errors(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Error of each negative case (label 0) from its logit.

    prob: the predicted probability of "positive" (= |y - y_hat| for y = 0, the paper's error).
    loss: the case's BCE, -log(1 - p), computed stably as softplus(logit).
    residual: the magnitude of the loss gradient w.r.t. the logit, |y - p|; for a negative it
    equals `prob`, so it is kept for parity with the paper's options rather than as new behaviour.
    """
    if kind == "loss":
        return F.softplus(logits)
    if kind in ("prob", "residual"):
        return torch.sigmoid(logits)
    raise ValueError(f"unknown error type {kind!r}; expected 'prob', 'loss' or 'residual'")


class OCFBRun:
    """One OCF-B run. Iterate it for per-term records; `state_dict` / `load_state_dict` resume."""

    def __init__(
        self, cfg: RunConfig, data: Interactions, *, cache_dir: str | Path | None = None
    ) -> None:
        if cfg.is_baseline:
            raise ConfigError(
                f"model: {cfg.model!r} is a baseline, fitted once rather than trained in the "
                "OCF-B loop; build runs with ocfb.runs.make_run"
            )
        self.cfg = cfg
        self.data = data
        self.device = resolve_device(cfg.device)
        self.objective = cfg.selection_metric
        self._check_selection_metric()
        self.paper: protocols.PaperSplit | None = None
        self.holdout: protocols.HoldoutSplit | None = None
        # paper: the validation slots' term-0 cells, never in the pool (`_set_all_slots`)
        self.frozen = np.empty(0, dtype=np.int64)
        base = self._setup_split(cache_dir)
        self.pool = NegativePool(
            data.n_users, data.n_items, base, exclude_removed=cfg.exclude_removed
        )
        # pop / pop-ocfb: item popularity from the training positives only (never evaluation's)
        self.pool.popularity = np.bincount(self.train_pos % data.n_items, minlength=data.n_items)
        self.rng = np.random.default_rng([cfg.seed, SAMPLING_STREAM])
        self.tgen = torch.Generator().manual_seed(torch_seed(cfg.seed))
        self.model = build_model(
            cfg.model,
            data.n_users,
            data.n_items,
            mf_dim=cfg.mf_dim,
            user_dim=cfg.user_dim,
            item_dim=cfg.item_dim,
            layers=cfg.layers,
            generator=self.tgen,
        ).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.term = -1  # last finished term
        self.history: list[dict[str, Any]] = []
        # `full_ranking: selected`: the best term so far by the selection metric, its value and
        # a CPU copy of its weights
        self.sel_term: int | None = None
        self.sel_value = -math.inf
        self.sel_weights: dict[str, torch.Tensor] | None = None

    def _setup_split(self, cache_dir: str | Path | None) -> np.ndarray:
        """Build the protocol's split; return the sorted cells no negative may ever be."""
        cfg, data = self.cfg, self.data
        positives = np.sort(data.cells)  # every known positive, of any split
        if cfg.protocol == "paper":
            self.n_neg = cfg.n_negatives(len(data))
            self._check_free(self.n_neg, positives)
            self.paper = protocols.make_paper_split(
                data, self.n_neg, cfg.test_fraction, val_fraction=cfg.val_fraction, seed=cfg.seed
            )
            # train on the positives and negative slots that are neither test nor validation
            self.train_pos = self.paper.train_pos
            self.train_slots = self.paper.train_slots
            return positives
        if isinstance(cfg.negatives, int):
            self._check_free(cfg.negatives, positives)  # before the split is computed and cached
        self.holdout = h = protocols.make_holdout_split(
            data, cfg.seed, split=cfg.split, fraction=cfg.holdout_fraction,
            n_candidates=cfg.n_candidates, cache_dir=cache_dir,
        )
        self.train_pos = h.train_cells
        self.train_slots = None
        # Held-out positives are never drawn as negatives, so if their frozen candidates could
        # be, "never labelled negative" would point at the held-out item: a leak that inflated
        # sampled HR@10 on MovieLens-100K by about 0.01. Block the candidates too.
        n_items = data.n_items
        cands = np.concatenate([
            (h.val_users[:, None] * n_items + h.val_candidates).ravel(),
            (h.test_users[:, None] * n_items + h.test_candidates).ravel(),
        ])
        base = blocked_cells(positives, cands)
        self.n_neg = cfg.n_negatives(self.train_pos.size)
        self._check_free(self.n_neg, base)
        self.known = protocols.known_matrix(data)
        return base

    def _check_free(self, k: int, base: np.ndarray) -> None:
        n_cells = self.data.n_users * self.data.n_items
        unobserved = n_cells - len(self.data)
        free = n_cells - base.size
        if k > free:
            extra = (f" ({unobserved} unobserved cells minus {unobserved - free} frozen "
                     "evaluation candidates)" if free < unobserved else "")
            raise ConfigError(
                f"negatives: {self.cfg.negatives!r} resolves to {k} negatives, but only {free} "
                f"free (user, item) cells exist on the {self.data.n_users} x "
                f"{self.data.n_items} grid{extra}; {unobserved} are unobserved"
            )

    def _check_selection_metric(self) -> None:
        metric, schedule = self.objective, self.cfg.full_ranking
        if "_full_" in metric and schedule != "every":
            raise ConfigError(
                f"select_metric: {metric!r} is a full-ranking metric, but full_ranking: "
                f"{schedule!r} does not compute it every term; select on a sampled metric "
                f"(e.g. {metric.replace('_full_', '_')!r}) or set full_ranking: every"
            )

    @property
    def negatives(self) -> np.ndarray:
        """Current negative cells, one per slot (paper: the frozen validation slots included)."""
        if self.paper is None or self.frozen.size == 0:
            return self.pool.negatives
        out = np.empty(self.n_neg, dtype=np.int64)
        out[self.paper.frozen_slots] = self.frozen
        out[self.paper.open_slots] = self.pool.negatives
        return out

    def _set_all_slots(
        self, cells: np.ndarray, removed: np.ndarray | None = None,
        strategy_state: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Fill every slot (term 0, or a checkpoint when `removed` is given).

        Under paper the validation slots' cells are frozen out of the pool (never drawn,
        never replaced) and the pool holds only the open slots, so every strategy leaves
        validation at its term-0 negatives while training and test slots change as before.
        """
        if self.paper is not None and cells.size:
            self.frozen = cells[self.paper.frozen_slots].copy()
            self.pool.freeze(self.frozen)
            cells = cells[self.paper.open_slots]
        if removed is None:
            self.pool.set_all(cells)
        else:
            self.pool.load(cells, removed, strategy_state)

    @property
    def removed(self) -> np.ndarray:
        """Suspected positives removed so far (sorted), never drawn again."""
        return self.pool.removed

    # -- the loop -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self.term < self.cfg.terms:
            yield self.step()

    @property
    def done(self) -> bool:
        """True once every term has run."""
        return self.term >= self.cfg.terms

    def step(self) -> dict[str, Any]:
        """Run the next term and return its record."""
        cfg = self.cfg
        term = self.term + 1
        rec: dict[str, Any] = {"term": term}
        extra: dict[str, Any] = {"n_replaced": 0}
        err_mean, err_max, t_score, t_resample = float("nan"), float("nan"), 0.0, 0.0
        epochs = cfg.epochs
        if term == 0:
            t0 = time.perf_counter()
            self._set_all_slots(self.pool.draw_fresh(self.rng, self.n_neg))
            t_resample = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            errors = self._errors(self.pool.negatives)
            t_score = time.perf_counter() - t0
            err_mean, err_max = float(errors.mean()), float(errors.max())
            t0 = time.perf_counter()
            extra = replace_negatives(
                cfg, self.pool, self.rng, errors, self._errors, self._logits
            )
            t_resample = time.perf_counter() - t0
            if cfg.refit == "fresh":
                # re-initialise on CPU: the seeded generator is a CPU generator (as at build)
                self.model.cpu()
                reset_parameters(self.model, self.tgen)
                self.model.to(self.device)
                self.optimizer = make_optimizer(self.model, cfg.lr, cfg.weight_decay)
            else:
                epochs = cfg.epochs_per_term
        t0 = time.perf_counter()
        losses = self._train(epochs)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = self._evaluate_term(term)
        t_eval = time.perf_counter() - t0
        rec.update(
            n_negatives=int(self.negatives.size),
            n_removed_total=int(self.pool.removed.size),
            err_mean=err_mean,
            err_max=err_max,
            train_loss=float(losses[-1]),
            **extra,
            **metrics,
            time_train=t_train,
            time_score=t_score,
            time_resample=t_resample,
            time_eval=t_eval,
        )
        self.term = term
        self.history.append(rec)
        return rec

    def _logits(self, cells: np.ndarray) -> np.ndarray:
        """Logits of cells through the models' one chunked prediction function."""
        z = predict_cell_logits(self.model, cells, self.data.n_items, self.device)
        return z.cpu().numpy().astype(np.float64)

    def _errors(self, cells: np.ndarray) -> np.ndarray:
        """Each cell's error as a negative (cfg.error), float32 math as the threshold sees it."""
        z = predict_cell_logits(self.model, cells, self.data.n_items, self.device)
        return negative_errors(z, self.cfg.error).cpu().numpy().astype(np.float64)

    def _train(self, epochs: int) -> list[float]:
        neg = self.negatives
        if self.train_slots is not None:
            neg = neg[self.train_slots]
        cells = np.concatenate([self.train_pos, neg])
        labels = np.concatenate([np.ones(self.train_pos.size), np.zeros(neg.size)])
        c = torch.as_tensor(cells, device=self.device)
        n_items = self.data.n_items
        max_loss = self.cfg.max_loss if self.cfg.max_loss is not None else DEFAULT_MAX_LOSS
        return train_epochs(
            self.model,
            self.optimizer,
            c // n_items,
            c % n_items,
            torch.as_tensor(labels, dtype=torch.float32, device=self.device),
            epochs=epochs,
            batch_size=self.cfg.batch_size,
            generator=self.tgen,
            max_loss=max_loss,
        )

    # -- evaluation and the full-ranking schedule ---------------------------------------------

    def _evaluate_term(self, term: int) -> dict[str, float]:
        """This term's metrics; full ranking per schedule; the selected term's at the end."""
        schedule = self.cfg.full_ranking
        final = term == self.cfg.terms
        metrics = self.evaluate(full_ranking=schedule == "every" or (final and schedule != "off"))
        if term == 0 and self.objective not in metrics:
            available = sorted(k for k in metrics if k.startswith("val_"))
            raise ConfigError(
                f"select_metric: {self.objective!r} is not a metric of the {self.cfg.protocol!r} "
                f"protocol; the validation metrics are {available}"
            )
        if schedule != "selected":
            return metrics
        value = float(metrics[self.objective])
        if math.isfinite(value) and value > self.sel_value:  # strict: ties keep the earliest
            self.sel_term, self.sel_value = term, value
            self.sel_weights = {k: v.detach().cpu().clone()
                                for k, v in self.model.state_dict().items()}
        if not final:
            return metrics
        if self.sel_term is None or self.sel_term == term:
            # never a finite value (then the final weights stand), or the final term is best
            sel_term, sel = term, metrics
        elif self.paper is not None:
            # paper rewrites its test negatives every term: the selected weights scored now
            # would meet the final, easiest test set (seed 0 of a paper run: test_auc 0.641 at
            # its selected term 1, 0.715 rescored at the end). The selected term's own record
            # holds what the protocol measured then; paper has no full ranking to add.
            past = next(r for r in self.history if r.get("term") == self.sel_term)
            sel_term, sel = self.sel_term, {k: past[k] for k in metrics if k in past}
        else:
            selected = copy.deepcopy(self.model)
            selected.load_state_dict(self.sel_weights)
            sel_term, sel = self.sel_term, self.evaluate(full_ranking=True, model=selected)
        return {**metrics, "sel_term": sel_term, **{f"sel_{k}": v for k, v in sel.items()}}

    def evaluate(
        self, full_ranking: bool | None = None, model: torch.nn.Module | None = None
    ) -> dict[str, float]:
        """The protocol's metrics for the current (or the given) model.

        `full_ranking` None means "as the schedule says for every term" (`every` only).
        """
        model = self.model if model is None else model
        if full_ranking is None:
            full_ranking = self.cfg.full_ranking == "every"
        if self.paper is not None:
            return protocols.evaluate_paper(
                model, self.paper, self.negatives, self.data.n_items, self.device
            )
        assert self.holdout is not None
        return protocols.evaluate_holdout(model, self.holdout, self.known, self.device,
                                          full_ranking=full_ranking)

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer, negatives, RNGs, history."""
        return {
            "term": self.term,
            "config": self.cfg.model_dump(mode="json"),
            "data_hash": self.data.content_hash(),
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            # a snapshot: the optimizer's own state_dict shares the live moment tensors, which
            # later steps update in place
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "negatives": self.negatives.copy(),  # every slot, frozen validation ones included
            "val_slots_frozen": self.paper is not None,
            "removed": self.pool.removed.copy(),
            "strategy_state": self.pool.state(),  # srns's memory and score history
            "rng": self.rng.bit_generator.state,
            "tgen": self.tgen.get_state(),
            "history": [dict(r) for r in self.history],
            "selected": {
                "term": self.sel_term,
                "value": self.sel_value,
                "weights": None if self.sel_weights is None
                else {k: v.clone() for k, v in self.sel_weights.items()},
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict`; the config and data must be the ones it came from."""
        if state["config"] != self.cfg.model_dump(mode="json"):
            raise ValueError("checkpoint was written by a run with a different config")
        if state["data_hash"] != self.data.content_hash():
            raise ValueError("checkpoint was written for different data (content hash differs)")
        self.model.load_state_dict(state["model"])
        # deep copy: Adam adopts the given tensors as its state and would mutate the caller's dict
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if (self.paper is not None and not state.get("val_slots_frozen")
                and int(state["term"]) >= 1):
            raise ValueError(
                "checkpoint was written before the paper protocol froze its validation "
                "negatives; its later terms would mix both behaviours: rerun the trial"
            )
        self._set_all_slots(np.asarray(state["negatives"], dtype=np.int64), state["removed"],
                            state.get("strategy_state"))
        self.rng.bit_generator.state = state["rng"]
        self.tgen.set_state(state["tgen"])
        self.term = int(state["term"])
        self.history = [dict(r) for r in state["history"]]
        sel = state.get("selected") or {}
        self.sel_term = sel.get("term")
        self.sel_value = float(sel.get("value", -math.inf))
        weights = sel.get("weights")
        self.sel_weights = None if weights is None else {k: v.clone() for k, v in weights.items()}

    def save(self, path: str | Path) -> None:
        """Write the state atomically (temporary file, then rename), group-readable."""
        state = self.state_dict()
        atomic_write(path, lambda f: torch.save(state, f))

    def load(self, path: str | Path) -> None:
        """Restore from a file written by `save`."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


def best_record(history: list[dict[str, Any]], metric: str, mode: str = "max") -> dict[str, Any]:
    """The record with the best `metric` (NaN never wins; ties: the earliest term)."""
    if not history:
        raise ValueError("empty history")
    vals = np.array([r.get(metric, np.nan) for r in history], dtype=np.float64)
    if np.all(np.isnan(vals)):
        raise ValueError(f"metric {metric!r} is not in the history")
    idx = int(np.nanargmax(vals) if mode == "max" else np.nanargmin(vals))
    return history[idx]
