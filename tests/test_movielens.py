"""MovieLens-100K accuracy check: resample-all NeuMF under the holdout protocol (slow, real data).

The bar (issue 3): test HR@10 >= 0.55 averaged over 3 seeds, leave-one-out by latest timestamp,
99 sampled candidates, 4 fresh negatives per positive each epoch, epoch chosen on validation.
A popularity ranking on the same frozen candidates checks the protocol itself.
Skipped where the team's copy of u.data is absent (MovieLens may not be redistributed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_ml100k import neumf_config, popularity
from ocfb.algorithm import OCFBRun, best_record
from ocfb.config import make_run_config
from ocfb.data import load_source

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
EPOCHS = 15
# NCF's architecture (GMF 8 + MLP [64,32,16,8]) with one epoch per term and a whole new negative
# set each term. Batch 1024 with lr 2e-3 matches the NCF recipe's accuracy (batch 256, lr 1e-3)
# at a third of its wall time on CPU (about 20 s per seed on one core). Tests run on one torch
# thread (conftest): two threads oversubscribed this busy machine, 4-16 s per epoch vs 0.8 s.


def neumf(seed: int) -> dict:
    """The benchmark's NeuMF recipe with the test's batch size, learning rate and epochs."""
    return neumf_config(seed, batch_size=1024, lr=2e-3, epochs=EPOCHS, full_ranking=False)


def test_popularity_baseline_on_the_frozen_candidates(ml100k_path: Path) -> None:
    # Measured 0.397 / 0.401 / 0.393 for seeds 0 / 1 / 2 (pessimistic ties): far above the 0.10 of
    # a random ranking, far below a trained NeuMF (about 0.63). Uniform candidates are mostly
    # rarely rated films, which is why popularity does this well on the sampled protocol.
    data = load_source(str(ml100k_path), format="movielens-100k")
    hrs = [popularity(data, s)["test_hr@10"] for s in SEEDS]
    assert all(0.30 <= h <= 0.45 for h in hrs), hrs


def test_resample_all_neumf_reaches_ncf_hr10(ml100k_path: Path) -> None:
    data = load_source(str(ml100k_path), format="movielens-100k")
    assert (data.n_users, data.n_items, len(data)) == (943, 1682, 100_000)
    best_test, best_terms = [], []
    for seed in SEEDS:
        run = OCFBRun(make_run_config(neumf(seed)), data)
        history = list(run)
        assert [r["term"] for r in history] == list(range(EPOCHS))
        # 4 negatives per training positive, all of them redrawn every term
        n_train = run.holdout.train_cells.size
        assert all(r["n_negatives"] == 4 * n_train for r in history)
        assert all(r["n_replaced"] == 4 * n_train for r in history[1:])
        best = best_record(history, "val_hr@10", "max")
        assert best["val_hr@10"] == max(r["val_hr@10"] for r in history)
        best_test.append(best["test_hr@10"])
        best_terms.append(best["term"])
    # measured 0.639 / 0.630 / 0.631 (best terms 13 / 10 / 14): the bar has ample margin
    assert np.mean(best_test) >= 0.55, (best_test, best_terms)
    # one epoch is not enough: validation picks a later epoch on every seed
    assert min(best_terms) >= 1, best_terms
