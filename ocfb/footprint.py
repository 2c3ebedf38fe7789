"""What one run needs before it starts: peak memory, checkpoint size on disk; and the host's
memory.

A sweep passes each trial's estimate to Ray as the trial's `memory` resource, so Ray never
places trials together on a node whose memory they would exceed, and pre-flight refuses a
trial that no node can hold. Without it an EASE trial at 17,632 items (21.6 GB in float64
with its copies) was killed by Ray's memory monitor and took the sweep down (issue 23).

The numbers are upper-side estimates calibrated on this project's measurements (1 thread):

| run | measured peak RSS | estimate |
| --- | --- | --- |
| EASE, 1,892 x 17,632, 92.8k positives | 1.75 GB | 2.0 GB |
| NeuMF, MovieLens-100K, 4x negatives | 0.51 GB | 0.66 GB |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ocfb.config import RunConfig

GB = 2**30
# A worker that imported torch, numpy, scipy and the data: 0.30-0.34 GB measured; Ray's worker
# runtime adds about 0.1 GB
BASE_BYTES = int(0.45 * GB)
# Per training positive or negative cell: the int64 cell arrays of the pool and its sorted
# blocked set (several copies during a merge), errors and labels, batch tensors: ~0.2 GB for
# MovieLens-100K's 0.5M cells (NeuMF 4x) measured
BYTES_PER_CELL = 320
# Full-ranking and sampled evaluation score bounded blocks (ocfb/scoring.py): a few of them
EVAL_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class MemoryEstimate:
    """A run's expected peak resident memory, and what it is made of (for messages)."""

    bytes: int
    detail: str

    @property
    def gb(self) -> float:
        """The estimate in GiB."""
        return self.bytes / GB


def estimate(cfg: RunConfig, n_users: int, n_items: int, n_positives: int) -> MemoryEstimate:
    """The peak memory of one run of `cfg` on data of this shape (bytes, with its parts)."""
    sparse = 3 * 12 * n_positives  # CSR copies of the training matrix (data, index, pointer)
    if cfg.model == "ease":
        # one n^2 float32 matrix in place, plus the Gram matrix's column-block product
        n2 = 4 * n_items * n_items
        block = 12 * (1 << 23)
        total = BASE_BYTES + n2 + block + sparse + EVAL_BLOCK_BYTES
        return MemoryEstimate(total, f"EASE: {n_items:,} items^2 x 4 B = {n2 / GB:.2f} GB "
                                     f"+ {(total - n2) / GB:.2f} GB runtime")
    if cfg.model == "popularity":
        total = BASE_BYTES + sparse + EVAL_BLOCK_BYTES
        return MemoryEstimate(total, "popularity: counts and evaluation blocks")
    if cfg.model == "als":
        factors = 3 * 8 * (n_users + n_items) * cfg.als_factors  # float32 fit + float64 copies
        total = BASE_BYTES + factors + 2 * sparse + EVAL_BLOCK_BYTES
        return MemoryEstimate(total, f"ALS: {cfg.als_factors} factors x "
                                     f"{n_users + n_items:,} rows")
    train_pos = n_positives
    n_neg = cfg.n_negatives(train_pos)
    # embeddings and tower: parameters, gradients and Adam's two moments, float32
    params = 16 * neural_params(cfg, n_users, n_items)
    cells = BYTES_PER_CELL * (train_pos + n_neg)
    total = BASE_BYTES + params + cells + sparse + EVAL_BLOCK_BYTES
    return MemoryEstimate(total, f"{cfg.model}: {train_pos + n_neg:,} training cells "
                                 f"({n_neg:,} negatives)")


def host_memory_bytes() -> int:
    """This machine's memory for processes: physical memory, or the cgroup limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in (Path("/sys/fs/cgroup/memory.max"),
                  Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def neural_params(cfg: RunConfig, n_users: int, n_items: int) -> int:
    """Embedding parameters of a neural model (the tower's few thousand are left out)."""
    dims = (cfg.mf_dim if cfg.model in ("gmf", "neumf") else 0) + (
        cfg.user_dim + cfg.item_dim if cfg.model in ("mlp", "neumf") else 0)
    return (n_users + n_items) * max(dims, 1)


def checkpoint_bytes(cfg: RunConfig, n_users: int, n_items: int, n_positives: int) -> int:
    """An upper-side size of one checkpoint file of this run.

    Neural: weights, Adam's two moments and the selected term's weights (4 x 4 B per
    parameter), the negative and removed cells (8 B each; removed counted as large as the
    negatives), per-slot strategy memory (srns: up to 8 candidates x 8 B per negative) and the
    history. Measured: 0.55 MB for quickstart's NeuMF (41.7k parameters, 2,000 negatives)
    against 0.89 MB estimated. Baselines: EASE stores no weights (refit on load); ALS its
    factors; popularity its counts.
    """
    overhead = 64 * 1024
    if cfg.model == "ease":
        return overhead
    if cfg.model == "popularity":
        return overhead + 8 * n_items
    if cfg.model == "als":
        return overhead + 8 * (n_users + n_items) * cfg.als_factors
    n_neg = cfg.n_negatives(n_positives)
    return overhead + 16 * neural_params(cfg, n_users, n_items) + (16 + 64) * n_neg
