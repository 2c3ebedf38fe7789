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
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ocfb.names import BASELINE_MODELS
from suite.bench_timings import (
    MODEL_KW,
    bench_long_sweep,
    bench_loops,
    bench_sweep,
    floor_ratio,
    timed,
)
from suite.spec.vocabulary import usage_error

if TYPE_CHECKING:
    from suite.cli import Subcommands

DEVICES = ("cpu", "cuda")


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
# A real implicit-feedback dataset's shape, generated: last.fm (HetRec 2011), 1,892 users x
# 17,632 items x 92,834 positives, where one float64 EASE trial reached 21.6 GB (issue 23)
SCALES["lastfm"] = Scale((1_892, 17_632), 92_834, 200_000, 20_000, (6_040, 3_706),
                         (10_000, 100_000, 1_000_000))
SMOKE = Scale((407, 462), 2_000, 4_096, 1_024, (407, 462), (500, 1_000, 2_000))


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
    rec, wall = timed(run.step, device)
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


# One baseline fit in a fresh process (so its peak RSS is its own): generated data of the
# scale's shape, the holdout split, fit + Platt calibration, sampled and full evaluation.
_BASELINE_SCRIPT = r'''
import json, resource, sys, time
from threadpoolctl import threadpool_limits
from ocfb.baselines import BaselineRun
from ocfb.config import make_run_config
from ocfb.data import synthetic_influencer

model, users, items, positives = sys.argv[1], *map(int, sys.argv[2:5])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
data = synthetic_influencer(users, items, positives, seed=0)
cfg = make_run_config({"model": model, "negatives": "4x", "l2": 200.0, "seed": 0})
with threadpool_limits(limits=1):
    run = BaselineRun(cfg, data)
    before = rss()
    rec = run.step()
print(json.dumps({"fit_s": rec["time_train"], "eval_s": rec["time_eval"],
                  "rss_before_fit_gib": before, "peak_rss_gib": rss(),
                  "test_full_hr@10": rec.get("test_full_hr@10")}))
'''


def bench_baselines(grid: tuple[int, int], positives: int) -> dict[str, Any]:
    """Fit time, evaluation time and peak RSS of each baseline at this shape, one thread,
    each in its own process. EASE's targets at 17.6k items: fit <= 120 s, peak <= 2.5 GiB."""
    import json

    rows = {}
    for model in BASELINE_MODELS:
        p = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT, model, str(grid[0]),
                            str(grid[1]), str(positives)], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"baseline {model} exited {p.returncode}: {p.stderr[-2000:]}")
        rows[model] = json.loads(p.stdout.strip().splitlines()[-1])
    return {"grid": grid, "positives": positives, "models": rows}


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
    report["baselines"] = bench_baselines(scale.grid, scale.positives)
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
    lines += _sweep_lines(r)
    lines += _baseline_lines(r.get("baselines"))
    lines.append(f"| peak RSS MiB | {r['peak_rss_mib']:,.0f} |")
    lines.append(f"| bench wall s | {r['bench_wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def _sweep_lines(r: dict[str, Any]) -> list[str]:
    """bench.md's rows of the sweep measures (fixed cost, CPU use, Ray's floor, long sweep)."""
    sw = r["sweep"]
    lines: list[str] = []
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
        if "floor" in sw:
            fl = sw["floor"]
            lines.append(f"| Ray Tune's floor: bare Tuner, trivial trials, fixed cost s "
                         f"(same trial counts, the suite's Ray settings) | "
                         f"{_fmt(fl['fixed_cost_s'], '.1f')} |")
            lines.append(f"| sweep fixed cost / Ray Tune's floor | "
                         f"{_fmt(floor_ratio(sw), '.2f')}x |")
    if "sweep_long" in r:
        lg = r["sweep_long"]
        lines.append(f"| long sweep ({lg['trials']} trials of {lg['trial_compute_s']:.0f} s "
                     f"compute): wall s / overall CPU use | {lg['wall_s']:.1f} / "
                     f"{lg['overall_cpu_use']:.1%} |")
    return lines


def _baseline_lines(b: dict[str, Any] | None) -> list[str]:
    """One row per baseline: fit s, eval s, peak RSS (its own process, data included)."""
    if not b:
        return []
    shape = f"{b['grid'][0]:,} x {b['grid'][1]:,}, {b['positives']:,} positives"
    return [f"| {m}: fit s / eval s / peak RSS GiB ({shape}; before fit "
            f"{row['rss_before_fit_gib']:.2f}) | {row['fit_s']:.1f} / {row['eval_s']:.1f} / "
            f"{row['peak_rss_gib']:.2f} |" for m, row in b["models"].items()]


def cmd_bench(args: argparse.Namespace) -> int:
    """`ocfb-suite bench`: refuse an unusable device (exit 2), else measure and write."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        return usage_error(f"--device cuda: no CUDA device here (torch {torch.__version__}, "
                           "cuda available: False); use --device cpu")
    if args.threads < 1:
        return usage_error(f"--threads {args.threads}: must be >= 1")
    out = Path(args.out)
    if args.ray_address and (args.smoke or args.skip_sweep):
        return usage_error("--ray-address is where the sweeps run; drop --smoke and "
                           "--skip-sweep, or drop --ray-address")
    if args.long_sweep and (args.smoke or args.skip_sweep):
        return usage_error("--long-sweep runs with the quickstart sweeps; drop --smoke and "
                           "--skip-sweep")
    report = run_bench(args.scale, args.device, out, smoke=args.smoke, threads=args.threads,
                       skip_sweep=args.skip_sweep, long_sweep=args.long_sweep,
                       ray_address=args.ray_address)
    print(markdown(report), end="")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def register_cli(sub: Subcommands) -> None:
    """Add `ocfb-suite bench` to the CLI."""
    b = sub.add_parser("bench", help="measure where the time goes (writes bench.json, bench.md)")
    b.add_argument("--scale", choices=tuple(SCALES), default="small",
                   help="data sizes: small (seconds to a minute or two), ml1m, ml20m, lastfm "
                        "(17,632 items: the EASE rows' real-scale target)")
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
