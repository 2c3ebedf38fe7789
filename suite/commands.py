"""What each `ocfb-suite` command does, once `suite.cli` has parsed it: `data`, `train` (one run
without Ray), and `sweep`, `resume`, `summarize` (checks and lock here; the sweep itself runs in
`suite.driver`). Exit codes: see `suite.driver` (2 for bad input, before any work starts).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocfb.config import ConfigError, DataConfig, RunConfig
from suite import preflight
from suite.driver import log_summary_run, run_sweep
from suite.folders import (
    FolderError,
    LockHeld,
    OutputLock,
    check_results,
    read_sweep_json,
)
from suite.results import (
    JOURNAL,
    applicable_data,
    unflushed_trials,
    write_csv,
    write_json,
    write_parquet,
)
from suite.spec.vocabulary import SMALL_NEGATIVES, usage_error

if TYPE_CHECKING:
    from suite.spec import SweepSpec

# settings the runner records in sweep.json next to the spec (resume reuses them)
RUNNER_KEYS = ("expected_trials", "wandb_mode", "address", "smoke")


TERMINAL = ("completed", "stopped", "diverged")


# -- sweep, resume, summarize ------------------------------------------------------------------


def _preflight(spec: SweepSpec, out: Path, *, local: bool) -> dict[tuple, Any]:
    """Every check before Ray (SpecError on a problem); returns the loaded datasets."""
    if local:
        preflight.check_local_resources(spec)
    preflight.check_storage_path(spec.storage_path)
    datasets = preflight.load_datasets(spec)
    preflight.check_data(spec, datasets)
    if local:  # a cluster's nodes are known only once joined (run_sweep checks them there)
        preflight.check_memory(spec, datasets, preflight.local_memory_limit(
            preflight.object_store_bytes()), "this machine")
    preflight.check_disk(spec, datasets, out)
    preflight.check_output(out)  # last: it creates the folder
    return datasets


def cmd_sweep(args: argparse.Namespace) -> int:
    """`ocfb-suite sweep CONFIG`: validate and pre-flight (exit 2 on any problem), then run."""
    from suite.spec import SpecError, load_sweep

    if args.ray_temp_dir:
        os.environ["RAY_TMPDIR"] = args.ray_temp_dir
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    try:
        spec = load_sweep(args.config, output=args.out, data=preflight.data_overrides(args),
                          drop_duplicates=True if args.drop_duplicates else None)
        if args.smoke:
            spec = spec.with_smoke()
            if args.out is None:  # smoke results never replace a real sweep's
                spec = spec.model_copy(update={"output": spec.output.rstrip("/") + "-smoke"})
        spec = preflight.absolute_data_path(spec)
        out = Path(spec.output)
        datasets = _preflight(spec, out, local=address is None)
    except SpecError as err:
        return usage_error(str(err))
    from suite import tracking

    mode = tracking.resolve_mode(args.wandb, spec.wandb.mode)
    try:
        with OutputLock(out, f"ocfb-suite sweep {args.config}"):
            return run_sweep(spec, out, datasets, mode=mode, address=address,
                             smoke=bool(args.smoke))
    except LockHeld as err:
        return usage_error(str(err))


def _finished(out: Path, meta: dict[str, Any]) -> int | None:
    """The trial count if every expected trial of the sweep in `out` ended for good."""
    import pandas as pd

    expected = meta.get("expected_trials")
    path = out / "trials.parquet"
    if not expected or not path.is_file():
        return None
    try:
        statuses = pd.read_parquet(path)["status"]
    except (OSError, ValueError, KeyError):
        return None
    done = int(statuses.isin(TERMINAL).sum())
    return done if len(statuses) == expected and done == expected else None


def cmd_resume(args: argparse.Namespace) -> int:
    """`ocfb-suite resume DIR`: continue an interrupted sweep with the settings it ran with
    (sweep.json: W&B mode, address, smoke); a flag overrides a setting only when given."""
    from suite.spec import SpecError

    out = Path(args.dir)
    meta_path = out / "sweep.json"
    try:
        meta = read_sweep_json(out)
        check_results(out, need_trials=False)  # resume reads them back
        spec = spec_from_json(meta)
    except FolderError as err:
        return usage_error(str(err))
    except SpecError as err:  # one line: the first problem, and how many more
        lines = [x for x in str(err).splitlines() if x.strip()]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return usage_error(f"{meta_path}: not a valid sweep spec: "
                           f"{lines[0] if lines else err}{more}; restore it from a copy, or "
                           f"rerun the sweep with --out {out}")
    done = _finished(out, meta)
    if done is not None:
        print(f"sweep {spec.name} in {out} is already complete ({done} of {done} trials "
              f"finished); nothing to resume. Rebuild the summary with: ocfb-suite summarize "
              f"{out}")
        return 0
    address = args.address or meta.get("address") or "local"
    if address.startswith("ray://"):
        # Ray Client runs the Tuner remotely, where this run's results writer cannot be attached
        return usage_error(f"--address {address}: resume needs a cluster address the driver "
                           "joins directly (HOST:PORT), not a Ray Client ray:// address")
    if args.ray_temp_dir:
        os.environ["RAY_TMPDIR"] = args.ray_temp_dir
    try:
        with OutputLock(out, f"ocfb-suite resume {out}"):
            return _resume_locked(spec, out, meta, args, address)
    except LockHeld as err:
        return usage_error(str(err))
    except SpecError as err:
        return usage_error(str(err))


def _resume_locked(spec: SweepSpec, out: Path, meta: dict[str, Any], args: argparse.Namespace,
                   address: str) -> int:
    from ray import tune

    from suite import tuner
    from suite.spec import SpecError

    # a tune-then-confirm sweep keeps one experiment per stage (suite.driver restores each)
    if spec.tune_per_model is None and not tune.Tuner.can_restore(
            tuner.experiment_path(spec, out)):
        return usage_error(f"{out}: Ray saved no readable experiment state at "
                           f"{tuner.experiment_path(spec, out)} (killed before the first "
                           "trial started?); run the sweep again instead")
    try:
        datasets = preflight.load_datasets(spec)
    except SpecError as err:  # resume has no data flags: name sweep.json's keys instead
        return usage_error(f"{preflight.flags_as_keys(str(err))} (the data no longer loads as "
                           f"the sweep read it: restore the file, or fix the data keys in "
                           f"{out / 'sweep.json'})")
    mode = args.wandb or meta.get("wandb_mode") or "disabled"
    return run_sweep(spec, out, datasets, mode=mode, restore=True,
                     address=None if address == "local" else address,
                     smoke=bool(meta.get("smoke")))


def spec_from_json(meta: dict[str, Any]) -> SweepSpec:
    """The sweep spec saved in DIR/sweep.json (the runner's own keys removed), re-validated."""
    from suite.spec import SweepSpec

    raw = {k: v for k, v in meta.items() if k not in RUNNER_KEYS}
    return SweepSpec.from_dict(raw, "sweep.json")


def cmd_summarize(args: argparse.Namespace) -> int:
    """`ocfb-suite summarize DIR`: rebuild summary.md, tables and plots from the results."""
    from suite.summary import summarize_dir

    out = Path(args.dir)
    try:
        meta = read_sweep_json(out)
        check_results(out, need_trials=True)
    except FolderError as err:
        return usage_error(str(err))
    summary = summarize_dir(out)
    for note in summary.notes:
        print(note)
    journaled = unflushed_trials(out)
    if journaled:
        print(f"note: {out / JOURNAL} holds {journaled} ended trial(s) the parquet files do not "
              f"(the driver was killed); this summary leaves them out. `ocfb-suite resume "
              f"{out}` folds them in.")
    print(f"wrote {out / 'summary.md'}")
    mode = args.wandb or meta.get("wandb_mode", "disabled")
    if mode != "disabled":
        from suite import tracking

        spec = spec_from_json(meta)
        tracking.prepare_env(out)
        log_summary_run(out, spec, tracking.resolve_mode(mode, spec.wandb.mode), summary)
    return 0


# -- data and train ----------------------------------------------------------------------------


def cmd_data(args: argparse.Namespace) -> int:
    """`ocfb-suite data describe|generate`."""
    from ocfb import data as D
    from ocfb import load_data

    if args.data_cmd == "fetch":
        try:
            path = D.fetch_movielens(args.name, Path(args.cache))
        except D.DataError as err:
            return usage_error(str(err))
        print(path)
        return 0
    if args.data_cmd == "generate":
        inter = D.synthetic_influencer(args.users, args.items, args.interactions, seed=args.seed)
        df = inter.to_frame()
        out = Path(args.out)
        (write_parquet if out.suffix == ".parquet" else write_csv)(df, out)
        print(f"wrote {len(df)} interactions to {out}")
        return 0
    try:
        dc = DataConfig(**preflight.data_overrides(args))
    except Exception as err:  # pydantic validation
        return usage_error(str(err))
    try:
        inter = load_data(dc)
    except D.DataError as err:
        return usage_error(str(err))
    info = inter.describe()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            if k == "sparsity":
                print(f"{k:>23}: {v:.4%}")
            elif k == "duplicates_dropped" and v:
                print(f"{k:>23}: {v:,} rows merged (a pair counts once)")
            else:
                print(f"{k:>23}: {v}")
    return 0


def _small_count_problem(args: argparse.Namespace, cfg: RunConfig, n_positives: int) -> str | None:
    raw = getattr(args, "negatives", None)
    if raw is None or not isinstance(cfg.negatives, int) or cfg.is_baseline:
        return None
    if cfg.negatives >= SMALL_NEGATIVES or cfg.negatives >= n_positives:
        return None
    return (f"negatives: {cfg.negatives} negatives in total for {n_positives:,} positives; did "
            f"you mean {cfg.negatives}x? Write --negatives {cfg.negatives}x for "
            f"{cfg.negatives} per positive, or --negatives-total {cfg.negatives}")


def run_training(
    cfg: RunConfig, out: Path, *, show: bool = True, data: Any = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one OCF-B loop (or fit one baseline), write history.parquet and summary.json under
    `out` (frozen splits under `out/splits/`), return both. `show=False` keeps only the
    closing line."""
    import pandas as pd
    from tqdm import tqdm

    from ocfb import load_data
    from ocfb.algorithm import best_record
    from ocfb.runs import make_run

    inter = data if data is not None else load_data(cfg)
    run = make_run(cfg, inter, cache_dir=str(out / "splits"))
    objective = cfg.selection_metric
    started = time.time()
    cols = ["term", "n_replaced", "err_mean", "train_loss", objective]
    cols += [c for c in ("test_hr@10", "test_ndcg@10", "test_auc") if c != objective]
    total = 1 if cfg.is_baseline else cfg.terms + 1
    bar = tqdm(total=total, desc="terms", unit="term", disable=not show, file=sys.stderr)
    if show:
        print(" ".join(f"{c:>12}" for c in cols))
    while not run.done:
        rec = run.step()
        bar.update(1)
        if show:
            bar.write(" ".join(_fmt(rec.get(c)) for c in cols))
    bar.close()
    history = run.history
    if objective not in history[-1]:  # a loop from before the paper protocol's validation part
        objective = getattr(run, "objective", objective)
    best = best_record(history, objective, "max")
    summary = {
        "config": {**cfg.model_dump(mode="json"), "data": applicable_data(cfg.data)},
        "data": inter.describe(), "data_hash": inter.content_hash(), "objective": objective,
        "final": history[-1], "best": best, "best_term": best["term"],
        "wall_time_s": time.time() - started, "versions": _versions(),
    }
    write_parquet(pd.DataFrame(history), out / "history.parquet")
    write_json(summary, out / "summary.json")
    if show and cfg.protocol == "paper":
        _print_report(cfg, history[-1])
    print(f"best {objective} = {best.get(objective, float('nan')):.4f} at term {best['term']}; "
          f"wrote {out / 'history.parquet'} and {out / 'summary.json'}")
    return history, summary


def _print_report(cfg: RunConfig, final: dict[str, Any]) -> None:
    from ocfb.metrics import format_classification_report

    rep = {k.removeprefix("test_"): v for k, v in final.items() if k.startswith("test_")}
    print(format_classification_report(
        rep, title=f"Classification report of {cfg.model.upper()} at term {final['term']}"))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:>12.4f}" if math.isfinite(v) else f"{'-':>12}"
    return f"{v!s:>12}"


def _versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn
    import torch

    import ocfb

    return {
        "ocfb": ocfb.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _train_setup(args: argparse.Namespace, config_from: Callable[[argparse.Namespace], RunConfig]
                 ) -> tuple[RunConfig, Any]:
    """Validate settings (`config_from`: the parser's flags -> RunConfig), data and the output
    folder (ConfigError / DataError on a problem)."""
    from ocfb import load_data

    cfg = config_from(args)
    if args.threads < 1:
        raise ConfigError(f"threads: must be >= 1 (got {args.threads})")
    inter = load_data(cfg)
    dup = getattr(inter, "n_duplicates_dropped", 0) or 0
    if dup:
        # 9,000 rows that are 3,000 distinct pairs must not pass as 9,000 interactions
        print(f"note: {cfg.data.source}: {dup:,} duplicate (user, item) rows merged; "
              f"{len(inter):,} distinct interactions remain", file=sys.stderr)
    problem = _small_count_problem(args, cfg, len(inter))
    if problem:
        raise ConfigError(problem)
    problem = preflight.writable_problem(Path(args.out))
    if problem:
        raise ConfigError(f"--out: {problem}")
    return cfg, inter


def cmd_train(args: argparse.Namespace,
              config_from: Callable[[argparse.Namespace], RunConfig]) -> int:
    """`ocfb-suite train`: validate everything (`config_from` builds the RunConfig from the
    parsed flags: `suite.cli.train_config_from_args`), then run one OCF-B loop."""
    from ocfb.data import DataError
    from ocfb.sampling import SamplingError
    from ocfb.train import NonFiniteLossError

    try:
        cfg, inter = _train_setup(args, config_from)
    except ConfigError as err:
        return usage_error(f"invalid train settings:\n{err}")
    except DataError as err:
        return usage_error(str(err))
    import torch

    # Small models on small batches: intra-op threads cost more in synchronisation than they
    # gain, and on a loaded machine they made a default run 10x slower (60 s vs 4-6 s).
    torch.set_num_threads(args.threads)
    try:
        run_training(cfg, Path(args.out), show=not args.quiet, data=inter)
    except (ConfigError, DataError, SamplingError) as err:
        return usage_error(str(err))
    except NonFiniteLossError as err:  # DivergedError (loss above max_loss) included
        print(f"ocfb-suite: training diverged: {err}", file=sys.stderr)
        return 1
    return 0
