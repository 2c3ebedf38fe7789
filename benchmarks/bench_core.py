"""Core speed figures on MovieLens-1M-sized data: generation, sampling, training, full ranking.

Prints numbers (and ratios measured in the same run); run with `python benchmarks/bench_core.py`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ocfb.data import synthetic_influencer
from ocfb.metrics import full_rank_of_positive, hit_ndcg
from ocfb.models import build_model
from ocfb.protocols import known_matrix, score_all_items
from ocfb.sampling import sample_negatives
from ocfb.train import make_optimizer, train_epochs


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    torch.set_num_threads(1)
    data, t_gen = timed(lambda: synthetic_influencer(6040, 3706, 1_000_000, seed=0))
    print(f"generate 6,040 x 3,706 x 1,000,000: {t_gen:.2f} s")
    rng = np.random.default_rng(0)
    neg, t_neg = timed(lambda: sample_negatives(rng, 6040, 3706, 4_000_000, data.cells))
    print(f"sample 4,000,000 negatives against 1,000,000 positives: {t_neg:.2f} s")

    model = build_model("neumf", 6040, 3706, mf_dim=8, user_dim=32, item_dim=32,
                        layers=(32, 16, 8), generator=torch.Generator().manual_seed(0))
    opt = make_optimizer(model, 1e-3)
    n = 1_000_000
    cells = np.concatenate([data.cells[: n // 2], neg[: n // 2]])
    c = torch.as_tensor(cells)
    y = torch.cat([torch.ones(n // 2), torch.zeros(n // 2)])
    rates = {}
    for bs in (65_536, 4096, 256):
        m = n if bs >= 4096 else 100_000
        g = torch.Generator().manual_seed(0)
        _, t = timed(lambda bs=bs, m=m, g=g: train_epochs(
            model, opt, c[:m] // 3706, c[:m] % 3706, y[:m], epochs=1, batch_size=bs, generator=g))
        rates[bs] = m / t
        print(f"train NeuMF 8+[64,32,16,8], batch {bs:>6}: {rates[bs] / 1e6:.2f} M samples/s")
    print(f"ratio batch 65,536 / batch 256: {rates[65_536] / rates[256]:.1f}x")
    # the per-sample DataLoader loop of `ocfb-suite bench` (suite.bench_timings.dataloader_loop),
    # on the same model and samples, so both report the trainer against the same loop
    from suite.bench_timings import dataloader_loop

    m = 20_000
    _, t = timed(lambda: dataloader_loop(model, opt, c[:m] // 3706, c[:m] % 3706, y[:m], 256))
    print(f"per-sample DataLoader, batch 256: {m / t / 1e6:.2f} M samples/s; trainer / "
          f"DataLoader at batch 256: {rates[256] / (m / t):.1f}x")

    users = np.arange(6040)
    scores, t_score = timed(lambda: score_all_items(model, users, 3706, torch.device("cpu")))
    known = known_matrix(data)
    pos = data.items[np.r_[0, np.flatnonzero(np.diff(data.users)) + 1]]
    ranks, t_rank = timed(lambda: full_rank_of_positive(scores, pos, known[users]))
    hit_ndcg(ranks)
    print(f"full ranking 6,040 users x 3,706 items: scoring {t_score:.2f} s, "
          f"ranking {t_rank:.2f} s")


if __name__ == "__main__":
    main()
