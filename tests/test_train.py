"""Trainer: deterministic on CPU, seed-sensitive, loss decreases, clear non-finite error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ocfb.models import build_model
from ocfb.train import NonFiniteLossError, make_optimizer, train_epochs


def _toy(seed: int = 0, n: int = 3000):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 50, n)
    items = rng.integers(0, 40, n)
    # a learnable rule: label depends on user and item parity
    labels = ((users + items) % 2 == 0).astype(np.float32)
    return torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(labels)


def _run(seed: int, lr: float = 1e-2, epochs: int = 5, model: str = "neumf") -> list[float]:
    g = torch.Generator().manual_seed(seed)
    m = build_model(model, 50, 40, mf_dim=4, user_dim=8, item_dim=8, layers=(8, 4), generator=g)
    opt = make_optimizer(m, lr)
    u, i, y = _toy()
    return train_epochs(m, opt, u, i, y, epochs=epochs, batch_size=128, generator=g)


def test_same_seed_bit_identical_losses() -> None:
    assert _run(7) == _run(7)


def test_different_seed_differs() -> None:
    assert _run(7) != _run(8)


@pytest.mark.parametrize("model", ["gmf", "mlp", "neumf"])
def test_loss_decreases(model: str) -> None:
    losses = _run(0, epochs=15, model=model)
    assert len(losses) == 15
    assert losses[-1] < losses[0] * 0.9


def test_non_finite_loss_raises_clear_error() -> None:
    with pytest.raises(NonFiniteLossError, match="non-finite.*lower the learning rate"):
        _run(0, lr=1e12, epochs=30)


def test_rejects_mismatched_lengths() -> None:
    m = build_model("gmf", 5, 5)
    with pytest.raises(ValueError, match="same length"):
        train_epochs(m, make_optimizer(m, 1e-3), torch.zeros(3, dtype=torch.long),
                     torch.zeros(2, dtype=torch.long), torch.zeros(3), epochs=1, batch_size=2,
                     generator=torch.Generator())
