"""The `ocfb-suite` command line: data, train, sweep, resume, summarize."""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ocfb.config import ConfigError, RunConfig, load_run_config, make_run_config

EXIT_USAGE = 2


def _fail(msg: str) -> int:
    print(f"ocfb-suite: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


# -- data -------------------------------------------------------------------------------------


def _data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect or generate a dataset")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    d = dsub.add_parser("describe", help="print users, items, interactions and sparsity")
    _add_data_flags(d, "--source")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    f = dsub.add_parser("fetch", help="download, verify and cache a MovieLens archive")
    f.add_argument("name", help="ml-100k, ml-1m or ml-latest-small")
    f.add_argument("--cache", default="data-cache", help="cache folder (default data-cache)")
    g = dsub.add_parser("generate", help="write a synthetic-influencer dataset to a file")
    g.add_argument("--users", type=int, default=407)
    g.add_argument("--items", type=int, default=462)
    g.add_argument("--interactions", type=int, default=2000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output .csv or .parquet file")


def _add_data_flags(p: argparse.ArgumentParser, flag: str) -> None:
    p.add_argument(flag, dest="source", default=None,
                   help="'synthetic-influencer' (built in) or a file path")
    p.add_argument("--format", default=None,
                   help="auto, csv, tsv, parquet, movielens-100k, movielens-1m, movielens-csv")
    p.add_argument("--user-col", default=None)
    p.add_argument("--item-col", default=None)
    p.add_argument("--timestamp-col", default=None)
    p.add_argument("--rating-col", default=None)
    p.add_argument("--min-rating", type=float, default=None,
                   help="a rating >= this is a positive")


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("source", "format", "user_col", "item_col", "timestamp_col", "rating_col",
                "min_rating"):
        v = getattr(args, key, None)
        if v is not None:
            out[key] = v
    return out


def cmd_data(args: argparse.Namespace) -> int:
    """`ocfb-suite data describe|generate`."""
    from ocfb import data as D
    from ocfb.config import DataConfig

    if args.data_cmd == "fetch":
        try:
            path = D.fetch_movielens(args.name, Path(args.cache))
        except D.DataError as err:
            return _fail(str(err))
        print(path)
        return 0
    if args.data_cmd == "generate":
        inter = D.synthetic_influencer(args.users, args.items, args.interactions, seed=args.seed)
        from suite.results import write_csv, write_parquet

        df = inter.to_frame()
        out = Path(args.out)
        (write_parquet if out.suffix == ".parquet" else write_csv)(df, out)
        print(f"wrote {len(df)} interactions to {out}")
        return 0
    try:
        dc = DataConfig(**_data_overrides(args))
    except Exception as err:  # pydantic validation
        return _fail(str(err))
    try:
        inter = D.load_source(dc.source, **dc.load_kwargs())
    except D.DataError as err:
        return _fail(str(err))
    info = inter.describe()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v:.4%}" if k == "sparsity" else f"{k:>14}: {v}")
    return 0


# -- train ------------------------------------------------------------------------------------

_TRAIN_FLAGS: dict[str, tuple[type, str]] = {
    "model": (str, "gmf, mlp or neumf"),
    "protocol": (str, "paper or holdout"),
    "strategy": (str, "ocfb, random-replace, resample-all or static"),
    "negatives": (str, "absolute count (2000) or ratio of positives (4x)"),
    "threshold": (float, "replace negatives whose error is >= this"),
    "terms": (int, "OCF-B terms after term 0 (0 = plain negative sampling)"),
    "error": (str, "prob, loss or residual"),
    "refit": (str, "warm (continue training) or fresh (re-initialise each term)"),
    "exclude_removed": (str, "true/false: never redraw a removed suspect"),
    "epochs": (int, "epochs of term 0 (and of every term under refit fresh)"),
    "epochs_per_term": (int, "epochs per later term under refit warm"),
    "batch_size": (int, "mini-batch size"),
    "lr": (float, "Adam learning rate"),
    "weight_decay": (float, "Adam weight decay"),
    "mf_dim": (int, "GMF latent size"),
    "user_dim": (int, "MLP user embedding size"),
    "item_dim": (int, "MLP item embedding size"),
    "layers": (str, "MLP tower widths, comma separated, e.g. 32,16,8"),
    "seed": (int, "seed of split, sampling, initialisation and shuffling"),
    "device": (str, "cpu, cuda, cuda:N or auto"),
    "split": (str, "holdout split: loo or fraction"),
    "n_candidates": (int, "sampled candidates per held-out positive"),
}


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="one OCF-B run without Ray")
    p.add_argument("--config", help="YAML file of run settings (flags override it)")
    _add_data_flags(p, "--data")
    for key, (_typ, help_) in _TRAIN_FLAGS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None, help=help_)
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--smoke", action="store_true", help="a few seconds of work, for tests")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: these models are too small to gain "
                        "from more, and extra threads thrash on a busy machine)")


def _parse_value(key: str, raw: str) -> Any:
    typ = _TRAIN_FLAGS[key][0]
    if key == "layers":
        try:
            return [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"layers: expected comma-separated integers, got {raw!r}") from None
    if key == "negatives":
        return int(raw) if raw.strip().lstrip("-").isdigit() else raw
    if key == "exclude_removed":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"exclude_removed: expected true or false, got {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    try:
        return typ(raw)
    except ValueError:
        raise ConfigError(f"{key}: expected {typ.__name__}, got {raw!r}") from None


SMOKE = {"epochs": 2, "epochs_per_term": 1, "terms": 2, "batch_size": 1024}


def train_config_from_args(args: argparse.Namespace) -> RunConfig:
    """Merge YAML file, flags and --smoke into one validated RunConfig."""
    overrides: dict[str, Any] = {}
    for key in _TRAIN_FLAGS:
        raw = getattr(args, key)
        if raw is not None:
            overrides[key] = _parse_value(key, raw)
    data = _data_overrides(args)
    if args.smoke:
        overrides = {**SMOKE, **overrides}
    if args.config:
        base = load_run_config(args.config).model_dump()
        base.update(overrides)
        if data:
            base["data"] = {**base["data"], **data}
        return make_run_config(base)
    if data:
        overrides["data"] = data
    return make_run_config(overrides)


def run_training(
    cfg: RunConfig, out: Path, *, show: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one OCF-B loop, write history.parquet and summary.json under `out`, return both."""
    import pandas as pd
    from tqdm import tqdm

    from ocfb import data as D
    from ocfb.algorithm import OCFBRun, best_record
    from ocfb.metrics import format_classification_report
    from suite.results import write_json, write_parquet

    inter = D.load_source(cfg.data.source, **cfg.data.load_kwargs())
    run = OCFBRun(cfg, inter, cache_dir=out)
    started = time.time()
    cols = ["term", "n_replaced", "err_mean", "train_loss", run.objective]
    cols += [c for c in ("test_hr@10", "test_ndcg@10", "test_auc") if c != run.objective]
    bar = tqdm(total=cfg.terms + 1, desc="terms", unit="term", disable=not show, file=sys.stderr)
    if show:
        print(" ".join(f"{c:>12}" for c in cols))
    for rec in run:
        bar.update(1)
        if show:
            bar.write(" ".join(_fmt(rec.get(c)) for c in cols))
    bar.close()
    history = run.history
    best = best_record(history, run.objective, "max")
    final = history[-1]
    summary = {
        "config": cfg.model_dump(mode="json"),
        "data": inter.describe(),
        "data_hash": inter.content_hash(),
        "objective": run.objective,
        "final": final,
        "best": best,
        "best_term": best["term"],
        "wall_time_s": time.time() - started,
        "versions": _versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(pd.DataFrame(history), out / "history.parquet")
    write_json(summary, out / "summary.json")
    if show:
        if cfg.protocol == "paper":
            rep = {k.removeprefix("test_"): v for k, v in final.items() if k.startswith("test_")}
            print(format_classification_report(
                rep, title=f"Classification report of {cfg.model.upper()} at term {final['term']}"
            ))
        print(f"best {run.objective} = {best[run.objective]:.4f} at term {best['term']}; "
              f"wrote {out / 'history.parquet'} and {out / 'summary.json'}")
    return history, summary


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


def cmd_train(args: argparse.Namespace) -> int:
    """`ocfb-suite train`: validate everything, then run one OCF-B loop."""
    from ocfb.data import DataError
    from ocfb.sampling import SamplingError
    from ocfb.train import NonFiniteLossError

    try:
        cfg = train_config_from_args(args)
    except ConfigError as err:
        return _fail(f"invalid train settings:\n{err}")
    if args.threads < 1:
        return _fail(f"invalid train settings:\nthreads: must be >= 1 (got {args.threads})")
    import torch

    # Small models on small batches: intra-op threads cost more in synchronisation than they
    # gain, and on a loaded machine they made a default run 10x slower (60 s vs 4-6 s).
    torch.set_num_threads(args.threads)
    try:
        run_training(cfg, Path(args.out), show=not args.quiet)
    except (ConfigError, DataError, SamplingError) as err:
        return _fail(str(err))
    except NonFiniteLossError as err:
        print(f"ocfb-suite: training diverged: {err}", file=sys.stderr)
        return 1
    return 0


# -- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands register themselves)."""
    p = argparse.ArgumentParser(prog="ocfb-suite", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    _data_parser(sub)
    _train_parser(sub)
    try:
        from suite import sweep as _sweep  # noqa: F401  registered when the sweep module exists
    except ImportError:
        _sweep = None
    if _sweep is not None and hasattr(_sweep, "register_cli"):
        _sweep.register_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args)) if hasattr(args, "func") else _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "data":
        return cmd_data(args)
    if args.cmd == "train":
        return cmd_train(args)
    return _fail(f"unknown command {args.cmd!r}")


if __name__ == "__main__":
    sys.exit(main())
