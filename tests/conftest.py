"""Shared fixtures: tiny seeded data, and the path of the team's MovieLens-100K copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k" / "u.data"


@pytest.fixture
def ml100k_path() -> Path:
    """MovieLens-100K's u.data; the test is skipped where the team's copy is absent."""
    if not ML100K.is_file():
        pytest.skip(f"{ML100K} not present (MovieLens may not be redistributed)")
    return ML100K


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for tests that draw random data."""
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests train with one intra-op thread: on a busy 2-core machine two threads competing
    with other processes make training many times slower, and one thread is what a 1-CPU
    trial uses."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
