"""Evaluation cost against training, on data of the real-data shape of issue 10.

Generated data 1,900 users x 17,600 items x 90,000 positives (holdout, leave-one-out), NeuMF
(mf_dim 8, 32/32 embeddings, tower [32, 16, 8]), 4 negatives per training positive, batch
4,096, one thread. Measured in one run, as ratios:

- one term's training (one epoch) against the per-term evaluation of schedule `selected`
  (sampled metrics on validation and test: 100 scores per held-out positive);
- full ranking of validation + test (every item for every held-out user), which `selected`
  pays only at the end (final weights and selected weights), at several row-block sizes, to
  choose `ocfb.protocols.FULL_BLOCK_CELLS`.

Run: python benchmarks/bench_metrics.py [--quick] [--blocks N ...]   (--quick: 10x smaller data)

Measured here (2 shared cores, load 3.5-8, one thread; ratios within one run):
  run 1 (forward-pass sampled scoring): sampled eval / one epoch 0.19 (in loop 0.23)
  run 3 (block scoring, weighted sklearn): sampled eval / one epoch 0.15 (in loop 0.20);
  one epoch 3.2 s; full ranking of val + test 12-15 s, 3.8 epochs: paid at the final term
  only under `selected` (final weights, and the selected weights when they differ).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from ocfb import protocols
from ocfb.algorithm import OCFBRun
from ocfb.config import make_run_config
from ocfb.data import synthetic_influencer

SHAPE = (1_900, 17_600, 90_000)
BLOCKS = (1 << 16, 1 << 17, 1 << 18, 1 << 20)
REPEATS = 2


def best_of(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best wall-clock seconds of `repeats` calls (best-of filters out scheduler noise)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    """Train one term, time its evaluation and full ranking; print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x smaller data (a smoke run)")
    ap.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS),
                    help="full-ranking row-block sizes in cells to time")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_users, n_items, n_pos = (s // 10 for s in SHAPE) if args.quick else SHAPE
    t0 = time.perf_counter()
    data = synthetic_influencer(n_users, n_items, n_pos, seed=0)
    t_data = time.perf_counter() - t0
    cfg = make_run_config({
        "model": "neumf", "protocol": "holdout", "negatives": "4x", "terms": 1, "epochs": 1,
        "epochs_per_term": 1, "batch_size": 4096, "full_ranking": "selected", "seed": 0,
    })
    run = OCFBRun(cfg, data)
    rec = run.step()  # term 0 of 1: not final, so sampled metrics only (schedule `selected`)
    h = run.holdout
    sampled = best_of(lambda: run.evaluate(full_ranking=False))
    full: dict[str, float] = {}
    for block in args.blocks:
        full[str(block)] = best_of(lambda b=block: [
            protocols.full_ranks(run.model, users, items, run.known, run.device, block_cells=b)
            for users, items in ((h.val_users, h.val_items), (h.test_users, h.test_items))
        ])
    train = rec["time_train"]
    best_block = min(full, key=full.get)
    out = {
        "shape": [data.n_users, data.n_items, len(data)],
        "train_cells": int(run.train_pos.size + run.negatives.size),
        "held_out": [int(h.val_users.size), int(h.test_users.size)],
        "seconds": {"data": t_data, "train_one_epoch": train, "eval_in_loop": rec["time_eval"],
                    "eval_sampled_best": sampled, "full_ranking_by_block": full},
        "ratios": {
            "eval_sampled / train": sampled / train,
            "eval_in_loop / train": rec["time_eval"] / train,
            "full_ranking(best block) / train": full[best_block] / train,
        },
        "best_block_cells": int(best_block),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
