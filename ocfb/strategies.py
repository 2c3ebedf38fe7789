"""How each negative strategy changes the negative set at the start of a term (terms >= 1).

Every strategy receives the pool (`ocfb.negatives.NegativePool`), the run's sampling generator,
the errors of the current negatives (scored once per term by the loop, reported as
err_mean / err_max for every strategy), and a function that scores any cells. It returns the
record entries it adds: always `n_replaced`, plus its own diagnostics.

- `ocfb` (Song & Song 2022): replace the negatives whose error is >= threshold; with
  `exclude_removed` they join the removed set and are never drawn again.
- `random-replace`: replace as many (or `replace_fraction`) chosen at random.
- `resample-all`: a whole new uniform set.
- `static`: nothing changes.
- `ocfb-resample`: a whole new set, whose draws with error >= threshold are suspected positives:
  removed and redrawn, up to `max_redraws` rounds; then a slot keeps its last draw.
- `dns` (Zhang et al. 2013, dynamic negative sampling): each slot draws `dns_candidates`
  uniform candidates and keeps the one the current model scores highest (highest logit; the
  threshold does not apply).
- `pop`: a whole new set drawn with P(cell) ∝ (its item's count among the training positives)
  ** `pop_alpha` (Mikolov et al. 2013's 0.75 by default; 0 is `resample-all`).
- `pop-ocfb`: `ocfb-resample` with `pop`'s draws: OCF-B's threshold filter on a popularity
  sampler (suspects removed and redrawn, `max_redraws` rounds).
- `srns` (Ding et al. 2020, "Simplify and Robustify Negative Sampling"): each slot keeps a
  memory of candidate cells and their score history; the slot's negative is the memory cell
  with the highest probability + weight x standard deviation over the last terms, so a cell
  the model scores high every term (a likely false negative) loses to one whose score moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ocfb.config import RunConfig
from ocfb.negatives import NegativePool
from ocfb.sampling import (
    first_occurrences,
    isin_sorted,
    merge_sorted,
    packed_order,
    sample_free_cells,
    sample_free_cells_with_replacement,
)

# srns: terms of score history whose standard deviation is the variance signal; the reference
# implementation keeps the scores of the last 5 epochs (github.com/dingjingtao/SRNS, main.py).
SRNS_WINDOW = 5

# cells -> float64 array (errors for ocfb-resample, logits for dns)
CellScorer = Callable[[np.ndarray], np.ndarray]


def replace_negatives(
    cfg: RunConfig,
    pool: NegativePool,
    rng: np.random.Generator,
    errors: np.ndarray,
    error_of: CellScorer,
    logit_of: CellScorer,
) -> dict[str, Any]:
    """Apply `cfg.strategy` to the pool; return the record entries (`n_replaced`, ...)."""
    s = cfg.strategy
    if s == "static":
        return {"n_replaced": 0}
    if s == "resample-all":
        # a whole new set: any unobserved cell may come back, like per-epoch resampling
        pool.set_all(pool.draw_fresh(rng, pool.negatives.size))
        return {"n_replaced": int(pool.negatives.size)}
    if s == "ocfb-resample":
        return ocfb_resample(pool, rng, error_of, cfg.threshold, cfg.max_redraws)
    if s == "dns":
        return dns(pool, rng, logit_of, cfg.dns_candidates)
    if s == "pop":
        pool.set_all(pool.draw_popular(rng, pool.negatives.size, cfg.pop_alpha))
        return {"n_replaced": int(pool.negatives.size)}
    if s == "pop-ocfb":
        return ocfb_resample(pool, rng, error_of, cfg.threshold, cfg.max_redraws,
                             pop_alpha=cfg.pop_alpha)
    if s == "srns":
        return srns(cfg, pool, rng, to_prob(errors, cfg.error),
                    lambda c: to_prob(error_of(c), cfg.error))
    mask = replacement_mask(cfg, rng, errors)
    slots = np.flatnonzero(mask)
    if slots.size:
        if s == "ocfb":
            # a removed negative is a suspected positive: never drawn again (exclude_removed)
            pool.mark_removed(pool.negatives[slots])
        pool.replace_slots(slots, pool.draw_besides(rng, slots.size))
    return {"n_replaced": int(slots.size)}


def replacement_mask(cfg: RunConfig, rng: np.random.Generator, errors: np.ndarray) -> np.ndarray:
    """Which slots `ocfb` / `random-replace` replace, given the current errors."""
    n = errors.size
    if cfg.strategy == "ocfb":
        return errors >= cfg.threshold
    if cfg.strategy != "random-replace":
        raise ValueError(f"replacement_mask: strategy {cfg.strategy!r} replaces no chosen slots")
    if cfg.replace_fraction is not None:
        k = int(round(cfg.replace_fraction * n))
    else:
        k = int((errors >= cfg.threshold).sum())  # as many as ocfb would replace
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def ocfb_resample(
    pool: NegativePool,
    rng: np.random.Generator,
    error_of: CellScorer,
    threshold: float,
    max_redraws: int,
    pop_alpha: float | None = None,
) -> dict[str, Any]:
    """A whole new set, filtered by OCF-B's error: suspects are removed and their slots redrawn.

    Draws are uniform, or with `pop_alpha` set popularity-biased (`pop-ocfb`), in every round.

    Round 0 draws every slot from the cells outside the fixed set (positives, frozen
    candidates, removed). Each later round takes the slots whose latest draw has error >=
    threshold, adds those cells to the removed set (with `exclude_removed`), and redraws them
    outside everything blocked (so a redraw is never a current negative or an earlier suspect).
    After `max_redraws` rounds a slot keeps its last draw even if it is a suspect.
    """
    def draw(k: int, besides: bool) -> np.ndarray:
        if pop_alpha is not None:
            return pool.draw_popular(rng, k, pop_alpha, besides=besides)
        return pool.draw_besides(rng, k) if besides else pool.draw_fresh(rng, k)

    n = pool.negatives.size
    pool.set_all(draw(n, False))
    suspect = error_of(pool.negatives) >= threshold
    n_suspects = int(suspect.sum())
    rounds = 0
    t0 = time.perf_counter()
    while rounds < max_redraws and suspect.any():
        rounds += 1
        slots = np.flatnonzero(suspect)
        pool.mark_removed(pool.negatives[slots])
        fresh = draw(slots.size, True)
        pool.replace_slots(slots, fresh)
        suspect = np.zeros(n, dtype=bool)
        suspect[slots] = error_of(fresh) >= threshold
        n_suspects += int(suspect.sum())
    return {
        "n_replaced": n,
        "n_suspects": n_suspects,  # draws with error >= threshold, over all rounds
        "n_redraw_rounds": rounds,
        "n_kept_suspects": int(suspect.sum()),  # slots still holding a suspect at the end
        "time_redraw": time.perf_counter() - t0,
    }


def dns(
    pool: NegativePool, rng: np.random.Generator, logit_of: CellScorer, n_candidates: int
) -> dict[str, Any]:
    """Dynamic negative sampling: every slot keeps the highest-scored of its candidates.

    Candidates are uniform draws (with replacement) from the cells outside the fixed set, so
    never a positive, a frozen candidate or a removed cell. The [slots x candidates] block is
    scored in one chunked forward. Slots compete for distinct cells (the negative set has no
    repeats): `dns_choose` gives a contested cell to the lowest slot, and the others fall back to
    their next-best candidate; a slot whose candidates are all taken (only on nearly full
    grids) gets a plain uniform draw, counted in `n_dns_fallback`.
    """
    n = pool.negatives.size
    cand = sample_free_cells_with_replacement(
        rng, pool.n_users, pool.n_items, n * n_candidates, pool.fixed
    ).reshape(n, n_candidates)
    scores = logit_of(cand.ravel()).reshape(n, n_candidates)
    chosen, pending = dns_choose(cand, scores)
    if pending.size:
        taken = merge_sorted(pool.fixed, chosen[chosen >= 0])
        chosen[pending] = sample_free_cells(rng, pool.n_users, pool.n_items, pending.size, taken)
    pool.set_all(chosen)
    return {"n_replaced": n, "n_dns_fallback": int(pending.size)}


def dns_choose(cand: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the highest-scored candidate not taken by another row; distinct across rows.

    Vectorised over rows, at most one pass per candidate (dns_candidates passes, not one per
    slot). In each pass every row still pending proposes its best remaining candidate (ties:
    the earlier column); a cell proposed by several rows goes to the lowest row, and a cell
    taken in an earlier pass is refused. Losing rows drop that candidate and try again. Returns
    (chosen cells with -1 where a row got none, indices of those rows).
    """
    n, c = cand.shape
    scores = np.array(scores, dtype=np.float64)  # a copy: refused candidates become -inf
    chosen = np.full(n, -1, dtype=np.int64)
    taken = np.empty(0, dtype=np.int64)
    pending = np.arange(n)
    for _ in range(c):
        sub = scores if pending.size == n else scores[pending]
        best = np.argmax(sub, axis=1)
        prop = cand[pending, best]
        # `pending` is in row order, so the first occurrence of a cell is its lowest row
        if taken.size == 0:  # the first pass: the sort that finds repeats also gives `taken`
            ordered, order = packed_order(prop)
            keep = np.ones(prop.size, dtype=bool)
            keep[order[1:]] = ordered[1:] != ordered[:-1]
            chosen[pending[keep]] = prop[keep]
            taken = ordered[keep[order]]  # sorted, each cell once
        else:
            keep = first_occurrences(prop) & ~isin_sorted(prop, taken)
            chosen[pending[keep]] = prop[keep]
            taken = merge_sorted(taken, prop[keep])
        scores[pending[~keep], best[~keep]] = -np.inf
        pending = pending[~keep]
        if pending.size == 0:
            break
    return chosen, pending


def to_prob(errors: np.ndarray, kind: str) -> np.ndarray:
    """The predicted probability of "positive" from a negative's error (`negative_errors`).

    prob and residual are that probability; loss is -log(1 - p), so p = 1 - exp(-loss).
    """
    return -np.expm1(-errors) if kind == "loss" else errors


def srns(
    cfg: RunConfig,
    pool: NegativePool,
    rng: np.random.Generator,
    p_current: np.ndarray,
    prob_of: CellScorer,
) -> dict[str, Any]:
    """SRNS (Ding et al. 2020) on the pool: per slot, a memory of cells with score histories.

    The reference implementation (github.com/dingjingtao/SRNS) trains pairwise, one negative
    per positive, from a memory of S1 = 20 items per user, and ranks them by sigmoid(s_neg -
    s_pos) + alpha * min(1, epoch / warmup) * std (alpha 1, warmup 1, the std over the last
    5 epochs). Here negatives are distinct pointwise cells, so the memory is per slot: column 0
    is the slot's current negative, the other `srns_memory` - 1 are reserves. Each term:

    1. score the memory (the current negatives' scores are the loop's, reused) as probabilities
       and push them into the SRNS_WINDOW-term history;
    2. the slot's negative is the memory cell with the highest p + w * std, w = srns_alpha x
       min(1, srns terms so far / srns_warmup); slots hold distinct cells (`dns_choose`; a slot
       left with none gets a uniform draw, `n_srns_fallback`);
    3. the `srns_candidates` reserves with the lowest p leave the memory for fresh uniform cells
       (the reference keeps S1 of S1 + S2 items sampled by softmax(score): both keep the hard
       ones; evicting the easiest spares scoring the fresh cells twice).

    Memory cells are drawn outside `fixed` (never a positive, a frozen candidate or a removed
    cell), and everything lives in `pool.strategy_state`, which checkpoints save.
    """
    n, m, st = pool.negatives.size, cfg.srns_memory, pool.strategy_state
    if not st:
        _srns_init(pool, rng, m, st)
    mem, hist, age, step = st["memory"], st["history"], st["age"], int(st["step"])
    p = np.empty((n, m), dtype=np.float32)
    p[:, 0] = p_current
    p[:, 1:] = prob_of(mem[:, 1:].ravel()).reshape(n, m - 1)
    hist[step % SRNS_WINDOW] = p
    np.minimum(age + 1, SRNS_WINDOW, out=age)
    std = window_std(hist, age, step)
    weight = cfg.srns_alpha * (min(1.0, step / cfg.srns_warmup) if cfg.srns_warmup else 1.0)
    chosen, pending = dns_choose(mem, p + np.float32(weight) * std)
    col = np.argmax(mem == chosen[:, None], axis=1)  # pending rows: 0, refilled below
    chosen_std = std[np.arange(n), col]
    _to_front((mem, age, p, *hist), col)  # the chosen cell becomes column 0
    if pending.size:
        taken = merge_sorted(pool.fixed, chosen[chosen >= 0])
        mem[pending, 0] = sample_free_cells(rng, pool.n_users, pool.n_items, pending.size, taken)
        age[pending, 0] = 0
    _evict_easiest(pool, rng, mem, age, p, cfg.srns_candidates)
    before = pool.negatives
    pool.set_all(mem[:, 0].copy())
    st["step"] = np.asarray(step + 1, dtype=np.int64)
    return {
        "n_replaced": int((pool.negatives != before).sum()),
        "n_srns_fallback": int(pending.size),
        "srns_std_mean": float(chosen_std.mean()),  # the chosen cells' score std
        "srns_weight": weight,
    }


def _to_front(arrays: tuple[np.ndarray, ...], col: np.ndarray) -> None:
    """Swap each row's column `col` into column 0, in place, in every (rows x memory) array."""
    moved = np.flatnonzero(col)
    for a in arrays:
        first = a[moved, 0]
        a[moved, 0] = a[moved, col[moved]]
        a[moved, col[moved]] = first


def _evict_easiest(pool: NegativePool, rng: np.random.Generator, mem: np.ndarray,
                   age: np.ndarray, p: np.ndarray, k: int) -> None:
    """The `k` reserves with the lowest p leave the memory for fresh uniform cells (no history
    yet, so their age is 0)."""
    n = mem.shape[0]
    rows = np.arange(n)[:, None]
    out = (np.argmin(p[:, 1:], axis=1)[:, None] if k == 1
           else np.argsort(p[:, 1:], axis=1, kind="stable")[:, :k]) + 1
    mem[rows, out] = _uniform(pool, rng, n * k).reshape(n, k)
    age[rows, out] = 0


def _srns_init(pool: NegativePool, rng: np.random.Generator, m: int, st: dict) -> None:
    """srns's first term: column 0 holds the current negatives, the reserves are drawn.

    history[j] holds the scores of the terms with step % SRNS_WINDOW == j; `age` counts how
    many of them belong to the cell now in that memory place (0 for a new cell), so a
    replaced cell needs no clearing of its row.
    """
    n = pool.negatives.size
    mem = np.empty((n, m), dtype=np.int64)
    mem[:, 0] = pool.negatives
    mem[:, 1:] = _uniform(pool, rng, n * (m - 1)).reshape(n, m - 1)
    st.update(memory=mem, history=np.zeros((SRNS_WINDOW, n, m), dtype=np.float32),
              age=np.zeros((n, m), dtype=np.int8), step=np.zeros((), dtype=np.int64))


def _uniform(pool: NegativePool, rng: np.random.Generator, k: int) -> np.ndarray:
    """k uniform cells outside `fixed`, repeats allowed (memory cells, as dns's candidates)."""
    return sample_free_cells_with_replacement(rng, pool.n_users, pool.n_items, k, pool.fixed)


def window_std(hist: np.ndarray, age: np.ndarray, step: int) -> np.ndarray:
    """Population std (float32) of each memory cell's last `age` scores in the ring `hist`.

    hist[j] holds the scores of step j (mod window); a cell's scores are the `age` most recent
    steps up to `step`. Two passes over the window's planes, each a whole-array float32
    operation (a reduction over a short last axis took 3.8 s per term at 4M x 3 cells).
    """
    w = hist.shape[0]
    cnt = np.maximum(age, 1).astype(np.float32)
    masks = [age > (step - j) % w for j in range(w)]  # lag (step - j) % w: 0 = this step
    total = np.zeros(age.shape, dtype=np.float32)
    for j in range(w):
        total += hist[j] * masks[j]
    mean = total / cnt
    sq = np.zeros(age.shape, dtype=np.float32)
    for j in range(w):
        d = (hist[j] - mean) * masks[j]
        sq += d * d
    return np.sqrt(sq / cnt)
