"""The training-loop half of `ocfb-suite bench`: the trainer against a bare tensor loop and
the per-sample DataLoader loop most NCF code uses, on the same NeuMF and the same samples.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.bench import Scale

LOOP_BATCHES = (1_024, 4_096, 65_536)
MODEL_KW = {"mf_dim": 8, "user_dim": 32, "item_dim": 32, "layers": (32, 16, 8)}


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(fn: Any, device: str) -> tuple[Any, float]:
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t


def _model(grid: tuple[int, int], device: str) -> tuple[Any, Any]:
    import torch

    from ocfb.models import build_model
    from ocfb.train import make_optimizer

    model = build_model("neumf", *grid, **MODEL_KW,
                        generator=torch.Generator().manual_seed(0)).to(device)
    return model, make_optimizer(model, 1e-3)


def _samples(grid: tuple[int, int], n: int, device: str) -> tuple[Any, Any, Any]:
    """`n` random cells of the grid, half labelled positive (seeded)."""
    import torch

    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, grid[0], (n,), generator=g)
    items = torch.randint(0, grid[1], (n,), generator=g)
    labels = (torch.arange(n) % 2).to(torch.float32)
    return users.to(device), items.to(device), labels.to(device)


def _bare_loop(model: Any, opt: Any, users: Any, items: Any, labels: Any, batch: int) -> None:
    """The least a training epoch can do: shuffled slices, forward, BCE, backward, step."""
    import torch

    loss_fn = torch.nn.BCEWithLogitsLoss()
    perm = torch.randperm(users.shape[0], generator=torch.Generator().manual_seed(1))
    perm = perm.to(users.device)
    for s in range(0, users.shape[0], batch):
        idx = perm[s:s + batch]
        loss = loss_fn(model(users[idx], items[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def dataloader_loop(model: Any, opt: Any, users: Any, items: Any, labels: Any,
                    batch: int) -> None:
    """The usual NCF recipe (the He et al. PyTorch ports): a Dataset over Python lists of
    (user, item) pairs and labels, one sample per `__getitem__`, default collation into
    tensors. benchmarks/bench_core.py times this same function on its MovieLens-1M setup."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    pairs = list(zip(users.tolist(), items.tolist(), strict=True))
    ys = labels.tolist()

    class Triples(Dataset):
        def __len__(self) -> int:
            return len(pairs)

        def __getitem__(self, k: int) -> tuple[int, int, float]:
            return pairs[k][0], pairs[k][1], ys[k]

    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(Triples(), batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    for u, i, y in loader:
        loss = loss_fn(model(u, i), y.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench_loops(scale: Scale, device: str) -> dict[str, Any]:
    """Samples per second of the three loops at batch 256, and of the trainer at larger
    batches; ratios trainer / bare and trainer / DataLoader."""
    import torch

    from ocfb.train import train_epochs

    data = _samples(scale.grid, scale.loop_samples, device)
    small = tuple(t[:scale.dataloader_samples].cpu() for t in data)
    rates: dict[str, float] = {}
    model, opt = _model(scale.grid, device)
    _bare_loop(model, opt, *(t[:2_048] for t in data), 256)  # warm-up (allocator, kernels)

    def trainer(d: tuple[Any, Any, Any], batch: int) -> Any:
        return lambda: train_epochs(model, opt, *d, epochs=1, batch_size=batch,
                                    generator=torch.Generator().manual_seed(1), max_loss=None)

    rates["trainer_b256"] = scale.loop_samples / timed(trainer(data, 256), device)[1]
    rates["bare_b256"] = scale.loop_samples / timed(
        lambda: _bare_loop(model, opt, *data, 256), device)[1]
    if device == "cpu":  # a per-sample DataLoader feeds CPU tensors; on cuda it is moot
        rates["dataloader_b256"] = scale.dataloader_samples / timed(
            lambda: dataloader_loop(model, opt, *small, 256), device)[1]
    for b in LOOP_BATCHES:
        rates[f"trainer_b{b}"] = scale.loop_samples / timed(trainer(data, b), device)[1]
    out: dict[str, Any] = {"samples_per_s": rates, "samples": scale.loop_samples,
                           "dataloader_samples": scale.dataloader_samples, "grid": scale.grid}
    out["trainer_over_bare_b256"] = rates["trainer_b256"] / rates["bare_b256"]
    if "dataloader_b256" in rates:
        out["trainer_over_dataloader_b256"] = rates["trainer_b256"] / rates["dataloader_b256"]
    return out
