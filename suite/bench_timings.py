"""The measurements of `ocfb-suite bench` (`suite.bench` holds the machine, report and CLI).

Training loops: the trainer against a bare tensor loop and the per-sample DataLoader loop most
NCF code uses, on the same NeuMF and the same samples. Sweeps: what a sweep costs beyond its
trials' compute, and the same cost for Ray Tune alone (its floor).

A sweep's wall time is start-up (imports, pre-flight, Ray, workers), the trials, and the close
(summary, plots, Ray shutdown). Two runs of one grid at 3 and 6 seeds give the marginal CPU use
and the fixed cost; the floor is the same arithmetic on a bare `tune.Tuner` with the suite's
Ray settings (reused actors, experiment state saved once a second, no automatic loggers) and
trivial trials (torch imported, 6 Adam steps, 6 reports) at the same trial counts. The ratio of
the two fixed costs says how much of the fixed cost is the suite's own.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path
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


def _sweep_file(src: Path, seeds: int, dest: Path, out: Path) -> Path:
    import yaml

    doc = yaml.safe_load(src.read_text())
    doc.update(seeds=list(range(seeds)), output=str(out), wandb={"mode": "disabled"})
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _run_sweep(cfg: Path, out: Path, address: str | None = None) -> dict[str, float]:
    """Wall seconds of an `ocfb-suite sweep` subprocess, the trials' summed compute (the
    loop's time_* seconds of every term, from terms.parquet), and where the rest went (the
    trainable's start/end marker files: `sweep_phases`). `address`: join that running Ray
    cluster instead of starting (and stopping) local Ray inside the sweep."""
    import pandas as pd

    from suite.tuner import START_MARKER_ENV

    markers = out.parent / f"{out.name}-markers"
    env = {**os.environ, START_MARKER_ENV: str(markers)}
    t = time.time()
    cmd = [sys.executable, "-m", "suite.cli", "sweep", str(cfg), "--out", str(out),
           "--wandb", "disabled", *(["--address", address] if address else [])]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    t_end = time.time()
    if p.returncode != 0:
        raise RuntimeError(f"sweep {cfg} exited {p.returncode}: {p.stderr[-2000:]}")
    terms = pd.read_parquet(out / "terms.parquet")
    cols = [c for c in terms.columns if c.startswith("time_")]
    return {"wall_s": t_end - t, "compute_s": float(terms[cols].sum().sum()),
            "trials": int(terms.trial_id.nunique()),
            **sweep_phases(markers, t, t_end, _cpus(address))}


def sweep_phases(markers: Path, started: float, ended: float, cpus: int) -> dict[str, float]:
    """Where a sweep's wall time went, from one marker file per trial start and end (each
    holding a wall-clock time): start-up (process start to the first trial's start: imports,
    pre-flight, Ray, worker start-up), close (the last trial's end to exit: summary, plots,
    Ray shutdown), and how full the CPU slots were in between (trial seconds / (cpus x span))."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for f in markers.glob("*") if markers.is_dir() else []:
        tid, kind = f.name.split("-from")[0], f.suffix
        when = float(f.read_text())
        if kind == ".start":
            first[tid] = min(first.get(tid, when), when)
        elif kind == ".end":
            last[tid] = max(last.get(tid, when), when)
    both = sorted(set(first) & set(last))
    if not both:
        return {}
    t0, t1 = min(first[t] for t in both), max(last[t] for t in both)
    busy = sum(last[t] - first[t] for t in both)
    return {"startup_s": t0 - started, "close_s": ended - t1, "trials_span_s": t1 - t0,
            "slot_occupancy": busy / (cpus * (t1 - t0)) if t1 > t0 else float("nan")}


def bench_sweep(work: Path, config: Path, address: str | None = None) -> dict[str, Any]:
    """Fixed cost and marginal CPU use of a sweep, from the same grid at 3 and 6 seeds.

    wall = fixed + compute / (cpus x use): two runs give the marginal use
    (extra compute / (cpus x extra wall)) and the fixed cost (wall3 minus what its compute
    takes at that use). With `address` both sweeps join that running cluster, so Ray's own
    start (2.6 s here) and shutdown (1.6 s) leave the fixed cost; `cpus` is then the
    cluster's CPU count."""
    cpus = _cpus(address)
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for seeds in (3, 6):
        out = work / f"sweep-{seeds}seeds"
        runs[seeds] = _run_sweep(_sweep_file(config, seeds, work / f"sweep-{seeds}.yaml", out),
                                 out, address)
    if not address:  # the floor needs its own local Ray; on a cluster it is not comparable
        counts = (runs[3]["trials"], runs[6]["trials"])
        floor = bench_floor(work, counts)
    d_wall = runs[6]["wall_s"] - runs[3]["wall_s"]
    d_compute = runs[6]["compute_s"] - runs[3]["compute_s"]
    use = d_compute / (cpus * d_wall) if d_wall > 0 else float("nan")
    fixed = runs[3]["wall_s"] - runs[3]["compute_s"] / (cpus * use) if use > 0 else float("nan")
    return {"config": str(config), "cpus": cpus, "runs": {str(k): v for k, v in runs.items()},
            "marginal_cpu_use": use, "fixed_cost_s": fixed,
            "ray": f"joined {address}" if address else "started and stopped by each sweep",
            **({} if address else {"floor": floor})}


def _cpus(address: str | None) -> int:
    """The CPUs the sweeps run on: the joined cluster's, else this host's."""
    return _cluster_cpus(address) if address else os.cpu_count() or 1


@functools.cache
def _cluster_cpus(address: str) -> int:
    """CPUs of a running cluster, read in a subprocess so the bench process stays Ray-free
    (once per address: joining takes seconds)."""
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            "print(int(ray.cluster_resources().get('CPU', 0)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"--ray-address {address}: could not join the cluster: "
                           f"{p.stderr.strip()[-500:]}")
    return int(p.stdout.strip().splitlines()[-1])


# A sweep whose trials each take about a minute (the ">= 90 % overall" case): NeuMF on
# generated data of MovieLens-100K's shape, 10 + 5 x 5 epochs at batch 1,024; 2 thresholds x 4
# seeds = 8 trials, four rounds on 2 CPUs.
LONG_SWEEP: dict[str, Any] = {
    "name": "bench-long", "protocol": "holdout",
    "data": {"source": "synthetic-influencer", "n_users": 943, "n_items": 1682,
             "n_interactions": 100_000},
    "fixed": {"model": "neumf", "terms": 5, "epochs": 10, "epochs_per_term": 5,
              "batch_size": 1_024, "negatives": "4x", "mf_dim": 16, "user_dim": 16,
              "item_dim": 16, "layers": [32, 16, 8]},
    "space": {"threshold": {"grid": [0.3, 0.6]}}, "seeds": [0, 1, 2, 3],
    "search": {"algorithm": "grid"}, "objective": {"metric": "val_hr@10", "mode": "max"},
    "resources": {"cpus": 1}, "wandb": {"mode": "disabled"},
}


def bench_long_sweep(work: Path, address: str | None = None) -> dict[str, Any]:
    """Overall CPU use (trial compute / (cpus x wall)) of a sweep of minute-long trials."""
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    out = work / "long"
    cfg = work / "long.yaml"
    cfg.write_text(yaml.safe_dump({**LONG_SWEEP, "output": str(out)}, sort_keys=False))
    run = _run_sweep(cfg, out, address)
    cpus = _cpus(address)
    run["cpus"] = cpus
    run["trial_compute_s"] = run["compute_s"] / max(run["trials"], 1)
    run["overall_cpu_use"] = run["compute_s"] / (cpus * run["wall_s"])
    return run




# The floor's trial: what every suite trial does at least (torch imported, a few optimizer
# steps, one report per step), and nothing of OCF-B.
_FLOOR_SCRIPT = r'''
import json, os, sys, time
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
t0 = time.time()
import ray
from ray import tune

def trivial(config):
    import torch
    w = torch.zeros(8, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.1)
    for step in range(6):
        opt.zero_grad()
        loss = ((w - config["i"]) ** 2).sum()
        loss.backward()
        opt.step()
        tune.report({"loss": float(loss), "step": step})

n, storage = int(sys.argv[1]), sys.argv[2]
ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
         log_to_driver=False, logging_level="ERROR")
tuner = tune.Tuner(
    tune.with_resources(trivial, {"cpu": 1}),
    param_space={"i": tune.grid_search(list(range(n)))},
    tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True),
    run_config=tune.RunConfig(name="floor", storage_path=storage, verbose=0),
)
tuner.fit()
ray.shutdown()
print(json.dumps({"wall_s": time.time() - t0, "trials": n}))
'''


def bench_floor(work: Path, trial_counts: tuple[int, int]) -> dict[str, Any]:
    """Ray Tune's own fixed cost: a bare Tuner of trivial trials, tuned as the suite tunes it,
    at the two trial counts of the suite's sweeps; each run in its own Python process, as a
    sweep runs (interpreter start and imports included)."""
    import json

    runs = {}
    for n in trial_counts:
        p = subprocess.run([sys.executable, "-c", _FLOOR_SCRIPT, str(n), str(work / f"f{n}")],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"Ray floor sweep of {n} trials exited {p.returncode}: "
                               f"{p.stderr[-2000:]}")
        runs[n] = json.loads(p.stdout.strip().splitlines()[-1])
    (a, wa), (b, wb) = sorted((n, r["wall_s"]) for n, r in runs.items())
    per_trial = (wb - wa) / (b - a) if b > a else float("nan")
    # wall = fixed + trials x per-trial slot time: the intercept is the floor's fixed cost
    return {"runs": {str(n): r for n, r in runs.items()}, "per_trial_s": per_trial,
            "fixed_cost_s": wa - a * per_trial}


def floor_ratio(sweep: dict[str, Any]) -> float:
    """The suite's sweep fixed cost over Ray Tune's floor (1.0: at the engine's floor)."""
    floor = sweep.get("floor", {}).get("fixed_cost_s")
    fixed = sweep.get("fixed_cost_s")
    if not isinstance(floor, float) or not isinstance(fixed, float) or floor <= 0:
        return float("nan")
    return fixed / floor
