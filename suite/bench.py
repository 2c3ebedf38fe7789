"""`ocfb-suite bench`: where the time goes, measured in one run on one machine.

Writes `DIR/bench.json` (every number) and `DIR/bench.md` (a short table with the machine
description). Everything in one file comes from one process on one machine, so the ratios in it
are comparable; numbers from different runs or machines are not. Measured, in order:

1. training loops at batch 256 on the same NeuMF and the same samples: the trainer
   (`ocfb.train.train_epochs`), a bare tensor loop (randperm slices, no checks), and the
   per-sample `DataLoader` loop most NCF code uses; then the trainer at 1,024 / 4,096 / 65,536;
2. one OCF-B term split into train / score / resample / eval (the loop's own `time_*` keys);
3. cost per million samples of one term at three sizes (positives x 5 cells each), which stays
   flat if a term costs no more than the cells it touches;
4. the sweep's fixed cost and marginal CPU use, from `configs/quickstart.yaml` run at 3 and
   6 seeds (subprocesses; skipped with --smoke);
5. peak resident memory of this process.

Scales: `small` (the paper's 407 x 462 grid; series on the MovieLens-1M grid), `ml1m`
(6,040 x 3,706 x 1M), `ml20m` (138,493 x 26,744 x 20M: minutes and tens of GB). `--smoke`
shrinks every size so the whole bench takes seconds (what CI runs). One torch thread unless
`--threads` says otherwise, as a 1-CPU trial runs.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXIT_USAGE = 2
DEVICES = ("cpu", "cuda")
LOOP_BATCHES = (1_024, 4_096, 65_536)
MODEL_KW = {"mf_dim": 8, "user_dim": 32, "item_dim": 32, "layers": (32, 16, 8)}


@dataclass(frozen=True)
class Scale:
    """The sizes one `--scale` measures at."""

    grid: tuple[int, int]  # users x items of the loop comparison and the term split
    positives: int  # positives of the term split (4x as many negatives)
    loop_samples: int  # samples per timed trainer / bare-loop epoch
    dataloader_samples: int  # samples for the (slower: 2.4x at batch 256) per-sample DataLoader
    series_grid: tuple[int, int]  # grid of the cost-per-million series
    series: tuple[int, ...]  # positives of the cost-per-million series


SCALES: dict[str, Scale] = {
    "small": Scale((407, 462), 2_000, 200_000, 20_000, (6_040, 3_706),
                   (10_000, 100_000, 1_000_000)),
    "ml1m": Scale((6_040, 3_706), 1_000_000, 1_000_000, 100_000, (138_493, 26_744),
                  (100_000, 1_000_000, 10_000_000)),
    "ml20m": Scale((138_493, 26_744), 20_000_000, 2_000_000, 100_000, (138_493, 26_744),
                   (100_000, 1_000_000, 10_000_000)),
}
SMOKE = Scale((407, 462), 2_000, 4_096, 1_024, (407, 462), (500, 1_000, 2_000))


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _timed(fn: Any, device: str) -> tuple[Any, float]:
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

    rates["trainer_b256"] = scale.loop_samples / _timed(trainer(data, 256), device)[1]
    rates["bare_b256"] = scale.loop_samples / _timed(
        lambda: _bare_loop(model, opt, *data, 256), device)[1]
    if device == "cpu":  # a per-sample DataLoader feeds CPU tensors; on cuda it is moot
        rates["dataloader_b256"] = scale.dataloader_samples / _timed(
            lambda: dataloader_loop(model, opt, *small, 256), device)[1]
    for b in LOOP_BATCHES:
        rates[f"trainer_b{b}"] = scale.loop_samples / _timed(trainer(data, b), device)[1]
    out: dict[str, Any] = {"samples_per_s": rates, "samples": scale.loop_samples,
                           "dataloader_samples": scale.dataloader_samples, "grid": scale.grid}
    out["trainer_over_bare_b256"] = rates["trainer_b256"] / rates["bare_b256"]
    if "dataloader_b256" in rates:
        out["trainer_over_dataloader_b256"] = rates["trainer_b256"] / rates["dataloader_b256"]
    return out


def _grid_data(grid: tuple[int, int], positives: int, seed: int = 0) -> Any:
    """`positives` distinct uniform cells on a fixed grid (ids 0..n-1): the series needs the
    same grid, hence the same model size, at every size, which the generator does not give."""
    from ocfb.data import Interactions

    n_users, n_items = grid
    rng = np.random.default_rng(seed)
    cells = np.unique(rng.integers(0, n_users * n_items, int(positives * 1.05) + 16))
    cells = np.sort(rng.choice(cells, positives, replace=False))
    return Interactions(users=cells // n_items, items=cells % n_items, n_users=n_users,
                        n_items=n_items, user_ids=np.arange(n_users),
                        item_ids=np.arange(n_items), name=f"uniform-{positives}")


def _term_data(scale: Scale) -> Any:
    """Generated interactions at the scale's shape (the generator's own structure)."""
    from ocfb.data import synthetic_influencer

    return synthetic_influencer(*scale.grid, scale.positives, seed=0)


def one_term(data: Any, device: str, terms: int = 1) -> dict[str, Any]:
    """Term 0 (untimed: the initial fit) then terms 1..`terms` of an OCF-B run; the last term's
    record plus the seconds it took. Paper protocol, NeuMF, 4x negatives, batch 4,096, one
    epoch a term."""
    from ocfb.config import make_run_config
    from ocfb.runs import make_run

    cfg = make_run_config({
        "protocol": "paper", "model": "neumf", "negatives": "4x", "terms": terms, "epochs": 1,
        "epochs_per_term": 1, "batch_size": 4_096, "strategy": "ocfb", "threshold": 0.5,
        "seed": 0, "device": device, **{k: list(v) if isinstance(v, tuple) else v
                                         for k, v in MODEL_KW.items()},
    })
    run = make_run(cfg, data)
    for _ in range(terms):
        run.step()
    rec, wall = _timed(run.step, device)
    out = {k: float(v) for k, v in rec.items() if k.startswith("time_")}
    out["n_replaced"] = float(rec.get("n_replaced", 0))
    out["wall_s"] = wall
    return out


def _ratios(rec: dict[str, Any]) -> dict[str, Any]:
    train = rec.get("time_train", float("nan"))
    rec["overhead_over_train"] = (rec.get("time_score", 0) + rec.get("time_resample", 0)) / train
    rec["eval_over_train"] = rec.get("time_eval", float("nan")) / train
    return rec


def bench_term(scale: Scale, device: str) -> dict[str, Any]:
    """The term split at the scale's shape and the OCF-B overhead (score + resample) / train,
    for term 1 (its resample also builds the sorted blocked set, once per run) and for term 2
    (the steady state every later term is in)."""
    data = _term_data(scale)
    rec = _ratios(one_term(data, device))
    rec["grid"] = scale.grid
    rec["positives"] = int(len(data.users))
    rec["term2"] = _ratios(one_term(data, device, terms=2))
    return rec


def bench_series(scale: Scale, device: str) -> dict[str, Any]:
    """Seconds per million cells (positives + 4x negatives) of one term at each size; the
    spread (max / min) is 1.0 when the cost grows exactly with the cells."""
    rows = []
    for n_pos in scale.series:
        rec = one_term(_grid_data(scale.series_grid, n_pos), device)
        cells = 5 * n_pos
        rows.append({"positives": n_pos, "cells": cells,
                     "term_s_per_m": rec["wall_s"] / cells * 1e6,
                     "train_s_per_m": rec.get("time_train", float("nan")) / cells * 1e6})
    per_m = [r["term_s_per_m"] for r in rows]
    return {"grid": scale.series_grid, "rows": rows, "spread": max(per_m) / min(per_m)}


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

    from suite.trainable import START_MARKER_ENV

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
    d_wall = runs[6]["wall_s"] - runs[3]["wall_s"]
    d_compute = runs[6]["compute_s"] - runs[3]["compute_s"]
    use = d_compute / (cpus * d_wall) if d_wall > 0 else float("nan")
    fixed = runs[3]["wall_s"] - runs[3]["compute_s"] / (cpus * use) if use > 0 else float("nan")
    return {"config": str(config), "cpus": cpus, "runs": {str(k): v for k, v in runs.items()},
            "marginal_cpu_use": use, "fixed_cost_s": fixed,
            "ray": f"joined {address}" if address else "started and stopped by each sweep"}


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


def machine(device: str, threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    out = {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem, 1),
           "os": platform.platform(), "python": platform.python_version(),
           "torch": torch.__version__, "numpy": np.__version__, "device": device,
           "torch_threads": threads, "load_avg_1m": os.getloadavg()[0]}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(scale_name: str, device: str, out: Path, *, smoke: bool = False,
              threads: int = 1, sweep_config: Path | None = None,
              skip_sweep: bool = False, long_sweep: bool = False,
              ray_address: str | None = None) -> dict[str, Any]:
    """Measure everything for one scale and device; write DIR/bench.json and DIR/bench.md.
    `long_sweep` adds the sweep of minute-long trials (about 5 minutes on 2 CPUs);
    `ray_address` runs the sweeps on that running Ray cluster."""
    import torch

    from suite.results import write_json, write_text

    scale = SMOKE if smoke else SCALES[scale_name]
    torch.set_num_threads(threads)
    started = time.perf_counter()
    report: dict[str, Any] = {"scale": scale_name, "smoke": smoke, "sizes": asdict(scale),
                              "machine": machine(device, threads)}
    report["loops"] = bench_loops(scale, device)
    report["term"] = bench_term(scale, device)
    report["per_million"] = bench_series(scale, device)
    if smoke or skip_sweep:
        report["sweep"] = {"skipped": "--smoke" if smoke else "--skip-sweep"}
    else:
        import tempfile

        config = sweep_config or Path(__file__).resolve().parents[1] / "configs/quickstart.yaml"
        # the sweeps' own results are scaffolding: only their timings go into bench.json
        with tempfile.TemporaryDirectory(prefix="ocfb-bench-") as work:
            report["sweep"] = bench_sweep(Path(work), config, ray_address)
            if long_sweep:
                report["sweep_long"] = bench_long_sweep(Path(work) / "long", ray_address)
    report["peak_rss_mib"] = peak_rss_mib()
    report["bench_wall_s"] = time.perf_counter() - started
    write_json(report, out / "bench.json")
    write_text(markdown(report), out / "bench.md")
    return report


def _implausible(sw: dict[str, Any]) -> str:
    """A warning when the two-run estimate cannot be right (use above 100 %, or a negative
    fixed cost): the machine ran at different speeds in the two sweeps (the trials' compute
    seconds stretch with the host's load), so only the per-phase rows can be read."""
    use, fixed = sw.get("marginal_cpu_use"), sw.get("fixed_cost_s")
    if (isinstance(use, float) and use > 1.0) or (isinstance(fixed, float) and fixed < 0):
        return (" (not a possible value: the host's speed changed between the two sweeps; "
                "read the start-up / close rows instead)")
    return ""


def _fmt(x: Any, spec: str = ".3g") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def markdown(r: dict[str, Any]) -> str:
    """The short table of bench.md."""
    m, loops, term, pm = r["machine"], r["loops"], r["term"], r["per_million"]
    lines = [f"# ocfb-suite bench: scale {r['scale']}{' (smoke)' if r['smoke'] else ''}", "",
             f"{m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}; Python "
             f"{m['python']}, torch {m['torch']}, {m['torch_threads']} thread(s), device "
             f"{m['device']}{' (' + m['gpu'] + ')' if 'gpu' in m else ''}; load "
             f"{m['load_avg_1m']:.2f} at start. All numbers from one run.", "",
             "| measure | value |", "| --- | --- |"]
    for k, v in loops["samples_per_s"].items():
        lines.append(f"| {k} samples/s (NeuMF, grid {loops['grid'][0]} x {loops['grid'][1]}) "
                     f"| {v:,.0f} |")
    for k in ("trainer_over_bare_b256", "trainer_over_dataloader_b256"):
        if k in loops:
            lines.append(f"| {k} | {loops[k]:.2f}x |")
    for k in ("time_train", "time_score", "time_resample", "time_eval"):
        lines.append(f"| term: {k.removeprefix('time_')} s ({term['positives']:,} positives) "
                     f"| {_fmt(term.get(k))} |")
    lines.append(f"| term: (score + resample) / train | {term['overhead_over_train']:.1%} |")
    lines.append(f"| term: eval / train | {term['eval_over_train']:.1%} |")
    if "term2" in term:
        t2 = term["term2"]
        lines.append(f"| term 2 (steady state): train / score / resample / eval s | "
                     f"{_fmt(t2.get('time_train'))} / {_fmt(t2.get('time_score'))} / "
                     f"{_fmt(t2.get('time_resample'))} / {_fmt(t2.get('time_eval'))} |")
        lines.append(f"| term 2: (score + resample) / train | {t2['overhead_over_train']:.1%} |")
    for row in pm["rows"]:
        lines.append(f"| term s per million cells at {row['positives']:,} positives | "
                     f"{row['term_s_per_m']:.3f} |")
    lines.append(f"| per-million spread (max / min) | {pm['spread']:.2f}x |")
    sw = r["sweep"]
    if "skipped" in sw:
        lines.append(f"| sweep fixed cost / marginal CPU use | skipped ({sw['skipped']}) |")
    else:
        for k, run in sw["runs"].items():
            lines.append(f"| sweep {k} seeds: wall / trial compute s ({run['trials']} trials) "
                         f"| {run['wall_s']:.1f} / {run['compute_s']:.1f} |")
            if "startup_s" in run:
                lines.append(f"| sweep {k} seeds: start-up / close s, slot occupancy | "
                             f"{run['startup_s']:.1f} / {run['close_s']:.1f}, "
                             f"{run['slot_occupancy']:.1%} |")
        lines.append(f"| sweep fixed cost s (Ray {sw.get('ray', 'started by each sweep')}) | "
                     f"{_fmt(sw['fixed_cost_s'], '.1f')} |")
        lines.append(f"| sweep marginal CPU use ({sw['cpus']} CPUs) | "
                     f"{_fmt(sw['marginal_cpu_use'], '.1%')}{_implausible(sw)} |")
    if "sweep_long" in r:
        lg = r["sweep_long"]
        lines.append(f"| long sweep ({lg['trials']} trials of {lg['trial_compute_s']:.0f} s "
                     f"compute): wall s / overall CPU use | {lg['wall_s']:.1f} / "
                     f"{lg['overall_cpu_use']:.1%} |")
    lines.append(f"| peak RSS MiB | {r['peak_rss_mib']:,.0f} |")
    lines.append(f"| bench wall s | {r['bench_wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def cmd_bench(args: argparse.Namespace) -> int:
    """`ocfb-suite bench`: refuse an unusable device (exit 2), else measure and write."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("ocfb-suite: error: --device cuda: no CUDA device here (torch "
              f"{torch.__version__}, cuda available: False); use --device cpu",
              file=sys.stderr)
        return EXIT_USAGE
    if args.threads < 1:
        print(f"ocfb-suite: error: --threads {args.threads}: must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if args.ray_address and (args.smoke or args.skip_sweep):
        print("ocfb-suite: error: --ray-address is where the sweeps run; drop --smoke and "
              "--skip-sweep, or drop --ray-address", file=sys.stderr)
        return EXIT_USAGE
    if args.long_sweep and (args.smoke or args.skip_sweep):
        print("ocfb-suite: error: --long-sweep runs with the quickstart sweeps; drop --smoke "
              "and --skip-sweep", file=sys.stderr)
        return EXIT_USAGE
    report = run_bench(args.scale, args.device, out, smoke=args.smoke, threads=args.threads,
                       skip_sweep=args.skip_sweep, long_sweep=args.long_sweep,
                       ray_address=args.ray_address)
    print(markdown(report), end="")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `ocfb-suite bench` to the CLI."""
    b = sub.add_parser("bench", help="measure where the time goes (writes bench.json, bench.md)")
    b.add_argument("--scale", choices=tuple(SCALES), default="small",
                   help="data sizes: small (seconds to a minute or two), ml1m, ml20m")
    b.add_argument("--device", choices=DEVICES, default="cpu")
    b.add_argument("--out", default="runs/bench",
                   help="output folder (default: %(default)s, git-ignored; --out "
                        "results/bench/<scale> publishes)")
    b.add_argument("--smoke", action="store_true",
                   help="tiny sizes and no sweeps: checks the plumbing in seconds")
    b.add_argument("--skip-sweep", action="store_true",
                   help="leave out the two quickstart sweeps (CPU work; minutes)")
    b.add_argument("--long-sweep", action="store_true",
                   help="also a sweep of 8 minute-long trials: overall CPU use (~5 minutes)")
    b.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="run the sweeps on this running Ray cluster (e.g. one `ray start "
                        "--head` kept up between sweeps) instead of local Ray started per sweep")
    b.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    b.set_defaults(func=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    """`python -m suite.bench ...` until the lead wires `bench` into suite/cli.py."""
    p = argparse.ArgumentParser(prog="ocfb-suite")
    register_cli(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(["bench", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
