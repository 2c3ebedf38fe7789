"""Per-term cost of every negative strategy (score + resample) at MovieLens-1M shape, as ratios.

Issue 22's targets: `pop` <= `resample-all`'s cost, `srns` <= 2x `resample-all`'s. A term's
strategy cost is what the loop times as `time_score` (scoring every current negative, which
all strategies pay) plus `time_resample` (`replace_negatives`). Training does not depend on the
strategy, so one NeuMF is trained for term 0 and then every strategy is applied to copies of
the same pool, with the same model, back to back in this process: the ratios compare like
with like. Each strategy runs `--terms` consecutive terms on its copy (srns's first term also
draws its memory, so its steady state is the later terms); the median over the later terms and
`--repeats` repeats is reported.

    python benchmarks/bench_strategies.py                       # ML-1M shape, all strategies
    python benchmarks/bench_strategies.py --positives 100000    # a quick look
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from ocfb.algorithm import OCFBRun
from ocfb.config import make_run_config
from ocfb.data import synthetic_influencer
from ocfb.names import STRATEGIES
from ocfb.strategies import replace_negatives

N_USERS, N_ITEMS = 6_040, 3_706  # MovieLens-1M


def strategy_terms(run: OCFBRun, strategy: str, terms: int, threshold: float) -> list[float]:
    """Seconds of score + resample for `terms` consecutive terms of one strategy on a pool copy."""
    cfg = run.cfg.model_copy(update={"strategy": strategy, "threshold": threshold})
    pool, rng = copy.deepcopy(run.pool), np.random.default_rng([0, 1])
    out = []
    for _ in range(terms):
        t0 = time.perf_counter()
        errors = run._errors(pool.negatives)
        replace_negatives(cfg, pool, rng, errors, run._errors, run._logits)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    """Train term 0 once, then time every strategy's terms and print them against resample-all."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positives", type=int, default=1_000_000)
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--terms", type=int, default=3, help="consecutive terms per strategy")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = synthetic_influencer(N_USERS, N_ITEMS, args.positives, seed=0)
    cfg = make_run_config({
        "protocol": "paper", "model": "neumf", "negatives": "4x", "terms": 1, "epochs": 1,
        "batch_size": 4096, "seed": 0,
    })
    run = OCFBRun(cfg, data)
    run.step()  # term 0: a trained model and a uniform negative set
    print(f"grid {N_USERS:,} x {N_ITEMS:,}, {args.positives:,} positives, "
          f"{run.negatives.size:,} negatives, NeuMF after one epoch, {args.threads} thread(s); "
          f"setup {time.perf_counter() - t0:.0f} s")
    names = ["resample-all"] + [s for s in args.strategies if s != "resample-all"]
    cost: dict[str, list[float]] = {s: [] for s in names}
    first: dict[str, list[float]] = {s: [] for s in names}
    for rep in range(args.repeats):
        for s in names:  # interleaved repeats: a load change hits every strategy alike
            times = strategy_terms(run, s, args.terms, args.threshold)
            first[s].append(times[0])
            cost[s] += times[1:] if args.terms > 1 else times
        print(f"  repeat {rep + 1}/{args.repeats} done", flush=True)
    base = statistics.median(cost["resample-all"])
    print(f"{'strategy':<16}{'score+resample s':>18}{'x resample-all':>16}{'first term s':>14}")
    for s in names:
        med = statistics.median(cost[s])
        print(f"{s:<16}{med:>18.3f}{med / base:>15.2f}x{statistics.median(first[s]):>14.3f}")


if __name__ == "__main__":
    main()
