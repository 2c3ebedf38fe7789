"""What one OCF-B term costs at MovieLens-1M shape, and how that cost scales with the cells.

One term = score every negative, replace per strategy, train one epoch, evaluate. The target
(issue 10): OCF-B's own work, score + resample, <= 10 % of the training it serves. Measured as
ratios in one run (one torch thread, paper protocol, NeuMF, batch 4,096, 4 negatives per
positive, one epoch per term):

    python benchmarks/bench_ocfb.py                    # ML-1M shape + 3 sizes, ocfb
    python benchmarks/bench_ocfb.py --strategies ocfb dns ocfb-resample --sizes 1000000

Prints train / score / resample / eval seconds of term 1 and (score + resample) / train, then
the cost per million cells (positives + negatives) at each size, which must stay flat if the
cost grows no faster than the cells involved. For reference it also times the old bookkeeping's
dominant step, rebuilding the blocked set with np.unique every term.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ocfb.algorithm import OCFBRun
from ocfb.config import make_run_config
from ocfb.data import Interactions, from_pairs, synthetic_influencer

N_USERS, N_ITEMS = 6_040, 3_706  # MovieLens-1M


def make_data(n_positives: int, seed: int = 0) -> Interactions:
    """Generated interactions at ML-1M's grid; uniform random cells if the generator refuses."""
    try:
        return synthetic_influencer(N_USERS, N_ITEMS, n_positives, seed=seed)
    except ValueError as err:  # a generator that cannot produce this shape
        print(f"  (synthetic_influencer refused: {err}; using uniform random cells)")
        rng = np.random.default_rng(seed)
        cells = rng.choice(N_USERS * N_ITEMS, n_positives, replace=False)
        return from_pairs(cells // N_ITEMS, cells % N_ITEMS)


def one_term(data: Interactions, strategy: str, threshold: float) -> dict[str, float]:
    """Run term 0 (untimed) and term 1; return term 1's record."""
    cfg = make_run_config({
        "protocol": "paper", "model": "neumf", "negatives": "4x", "terms": 1,
        "epochs": 1, "epochs_per_term": 1, "batch_size": 4096, "strategy": strategy,
        "threshold": threshold, "seed": 0,
    })
    run = OCFBRun(cfg, data)
    run.step()
    return run.step()


def report(label: str, rec: dict[str, float], n_cells: int) -> None:
    """One line: the four phases of the term, the overhead ratio, the cost per million cells."""
    over = rec["time_score"] + rec["time_resample"]
    print(f"{label:<34} train {rec['time_train']:6.2f} s  score {rec['time_score']:5.2f} s  "
          f"resample {rec['time_resample']:5.2f} s  eval {rec['time_eval']:5.2f} s  "
          f"replaced {rec['n_replaced']:>9,}  "
          f"(score+resample)/train {over / rec['time_train']:6.1%}"
          f"  per M cells: score+resample {over / n_cells * 1e6:.3f} s, "
          f"train {rec['time_train'] / n_cells * 1e6:.3f} s")


def old_rebuild_seconds(data: Interactions, n_negatives: int) -> float:
    """The old per-term step: np.unique over positives + negatives (+ removed)."""
    rng = np.random.default_rng(0)
    neg = rng.choice(N_USERS * N_ITEMS, n_negatives, replace=False)
    t0 = time.perf_counter()
    np.unique(np.concatenate([data.cells, neg]))
    return time.perf_counter() - t0


def main() -> None:
    """Parse flags, run the sizes and strategies, print one line each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000],
                    help="numbers of positives (4x as many negatives)")
    ap.add_argument("--strategies", nargs="+", default=["ocfb"])
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"grid {N_USERS:,} x {N_ITEMS:,}, NeuMF, paper protocol, 4x negatives, batch 4096, "
          f"one epoch per term, {args.threads} thread(s)")
    for n_pos in args.sizes:
        t0 = time.perf_counter()
        data = make_data(n_pos)
        n_cells = 5 * n_pos
        t_data = time.perf_counter() - t0
        print(f"{n_pos:,} positives, {4 * n_pos:,} negatives (data {t_data:.1f} s;"
              f" old np.unique rebuild of the blocked set "
              f"{old_rebuild_seconds(data, 4 * n_pos):.2f} s per term)")
        for strategy in args.strategies:
            report(f"  {strategy}", one_term(data, strategy, args.threshold), n_cells)


if __name__ == "__main__":
    main()
