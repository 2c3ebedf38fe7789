"""MovieLens-100K accuracy and wall time of resample-all NeuMF under the holdout protocol.

Per seed: the epoch picked on validation HR@10, validation and test HR@10 / NDCG@10 at that epoch,
a popularity ranking on the same frozen candidates, and the wall time; then the means.

Run:  python benchmarks/bench_ml100k.py                 (the slow test's configuration)
      python benchmarks/bench_ml100k.py --recipe ncf    (NCF's batch 256, lr 1e-3, 20 epochs)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ocfb import metrics
from ocfb.algorithm import OCFBRun, best_record
from ocfb.config import make_run_config
from ocfb.data import Interactions, load_source
from ocfb.protocols import make_holdout_split

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"
# (batch size, learning rate, epochs): "fast" is what tests/test_movielens.py runs.
RECIPES = {"fast": (1024, 2e-3, 15), "ncf": (256, 1e-3, 20)}


def neumf_config(seed: int, batch_size: int, lr: float, epochs: int, full_ranking: bool) -> dict:
    """NCF's NeuMF (GMF 8 + MLP [64,32,16,8]) with a fresh 4x negative set every epoch."""
    return {
        "protocol": "holdout",
        "split": "loo",
        "n_candidates": 99,
        "full_ranking": full_ranking,
        "model": "neumf",
        "mf_dim": 8,
        "user_dim": 32,
        "item_dim": 32,
        "layers": [32, 16, 8],
        "strategy": "resample-all",
        "negatives": "4x",
        "epochs": 1,
        "epochs_per_term": 1,
        "terms": epochs - 1,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }


def popularity(data: Interactions, seed: int) -> dict[str, float]:
    """HR/NDCG@10 of ranking the frozen test candidates by their count of training positives."""
    split = make_holdout_split(data, seed, split="loo", n_candidates=99)
    counts = np.bincount(split.train_cells % data.n_items, minlength=data.n_items)
    counts = counts.astype(np.float64)
    ranks = metrics.rank_of_positive(counts[split.test_items], counts[split.test_candidates])
    return metrics.hit_ndcg(ranks, ks=(10,), prefix="test_")


def run_seed(data: Interactions, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train one seed; the record of the epoch with the best validation HR@10, plus wall time."""
    t0 = time.perf_counter()
    run = OCFBRun(make_run_config(cfg), data)
    history = list(run)
    best = dict(best_record(history, "val_hr@10", "max"))
    best["wall_s"] = time.perf_counter() - t0
    best["train_s"] = sum(r["time_train"] for r in history)
    return best


def main() -> None:
    """Parse flags, run every seed, print one line per seed and the means."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MovieLens-100K u.data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    ap.add_argument("--batch-size", type=int, help="overrides the recipe")
    ap.add_argument("--lr", type=float, help="overrides the recipe")
    ap.add_argument("--epochs", type=int, help="overrides the recipe")
    ap.add_argument("--full-ranking", action="store_true", help="also full-ranking HR/NDCG")
    # one thread: NeuMF batches are too small to gain from more, and extra OpenMP threads on a
    # busy machine slow epochs down by up to 20x (oversubscription)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found (pass --data PATH to MovieLens-100K u.data)")
    torch.set_num_threads(args.threads)
    batch_size, lr, epochs = RECIPES[args.recipe]
    batch_size = args.batch_size or batch_size
    lr = args.lr or lr
    epochs = args.epochs or epochs

    data = load_source(str(args.data), format="movielens-100k")
    print(
        f"{data}: resample-all NeuMF, 4x negatives, batch {batch_size}, lr {lr:g}, "
        f"{epochs} epochs, {args.threads} thread(s)"
    )
    full = "  full HR@10" if args.full_ranking else ""
    print(
        f"{'seed':>4} {'epoch':>5} {'val HR@10':>9} {'val NDCG':>8} {'test HR@10':>10} "
        f"{'test NDCG':>9}{full} {'pop HR@10':>9} {'wall s':>7} {'train s':>7}"
    )
    rows = []
    for seed in args.seeds:
        b = run_seed(data, neumf_config(seed, batch_size, lr, epochs, args.full_ranking))
        pop = popularity(data, seed)["test_hr@10"]
        rows.append((b["val_hr@10"], b["test_hr@10"], b["test_ndcg@10"], pop, b["wall_s"]))
        extra = f"  {b['test_full_hr@10']:10.4f}" if args.full_ranking else ""
        # epoch = term + 1: term 0 is the first epoch
        print(
            f"{seed:>4} {b['term'] + 1:>5} {b['val_hr@10']:9.4f} {b['val_ndcg@10']:8.4f} "
            f"{b['test_hr@10']:10.4f} {b['test_ndcg@10']:9.4f}{extra} {pop:9.4f} "
            f"{b['wall_s']:7.1f} {b['train_s']:7.1f}"
        )
    m = np.mean(np.array(rows), axis=0)
    print(
        f"mean: val HR@10 {m[0]:.4f}, test HR@10 {m[1]:.4f} (bar 0.55), test NDCG@10 {m[2]:.4f}, "
        f"popularity HR@10 {m[3]:.4f}, wall {m[4]:.1f} s per seed"
    )


if __name__ == "__main__":
    main()
