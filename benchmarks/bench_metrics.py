"""Time full ranking + HR/NDCG at MovieLens-1M scale (6,040 users x 3,706 items) on CPU.

Run: python benchmarks/bench_metrics.py  (prints seconds per call, best of a few repeats).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ocfb.metrics import full_rank_of_positive, hit_ndcg

N_USERS, N_ITEMS = 6040, 3706
N_KNOWN = 1_000_000  # about MovieLens-1M's number of ratings: the "other known positives"
REPEATS = 3


def _time(fn: Callable[..., object], *args: object) -> float:
    """Best wall-clock seconds of REPEATS calls (best-of filters out scheduler noise)."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    """Build random MovieLens-1M-shaped inputs and print the timings."""
    rng = np.random.default_rng(0)
    scores = rng.random((N_USERS, N_ITEMS), dtype=np.float32)
    pos_items = rng.integers(0, N_ITEMS, size=N_USERS)
    rows = rng.integers(0, N_USERS, size=N_KNOWN)
    cols = rng.integers(0, N_ITEMS, size=N_KNOWN)
    exclude_csr = sp.csr_matrix(
        (np.ones(N_KNOWN, dtype=bool), (rows, cols)), shape=(N_USERS, N_ITEMS)
    )
    exclude_dense = exclude_csr.toarray()

    def run(exclude: object) -> None:
        hit_ndcg(full_rank_of_positive(scores, pos_items, exclude))

    print(
        f"full ranking {N_USERS} x {N_ITEMS}, {exclude_csr.nnz:,} excluded cells, best of {REPEATS}"
    )
    print(f"  CSR exclude:   {_time(run, exclude_csr):.3f} s")
    print(f"  dense exclude: {_time(run, exclude_dense):.3f} s")


if __name__ == "__main__":
    main()
