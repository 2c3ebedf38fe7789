"""The `ocfb-suite` command line: it parses (data, train, sweep, resume, summarize; dashboard,
bench and compare register their own parsers) and dispatches to `suite.commands` or the command's
own module, imported only when that command runs."""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from ocfb.config import ConfigError, DataConfig, RunConfig, load_run_config, make_run_config
from ocfb.data.files import FORMATS as DATA_FORMATS
from ocfb.names import SMOKE_SETTINGS, WANDB_MODES
from suite.preflight import data_flag, data_overrides
from suite.spec.vocabulary import SMALL_NEGATIVES


class Subcommands(Protocol):
    """What `ArgumentParser.add_subparsers()` returns, as each command's `register_cli(sub)`
    uses it (argparse names its class only privately)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A new subcommand parser (argparse's own keyword arguments: help, parents, ...)."""
        ...


# -- data -------------------------------------------------------------------------------------


def _handler(name: str, *extra: Any) -> Callable[[argparse.Namespace], int]:
    """`suite.commands.<name>(args, *extra)`, imported when the command runs, not to parse."""

    def run(args: argparse.Namespace) -> int:
        from suite import commands

        return getattr(commands, name)(args, *extra)

    return run


def _data_parser(sub: Subcommands) -> None:
    p = sub.add_parser("data", help="inspect or generate a dataset")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    d = dsub.add_parser("describe", help="print users, items, interactions and sparsity")
    add_data_flags(d, "--source")
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
    p.set_defaults(func=_handler("cmd_data"))


# Help for the data flags; a DataConfig field missing here still gets a flag (generic help).
_DATA_HELP = {
    "format": "one of " + ", ".join(DATA_FORMATS) + " (default auto: from the file name and "
              "header)",
    "user_col": "the user id column (default user)",
    "item_col": "the item id column (default item)",
    "timestamp_col": "the timestamp column ('loo' then holds out each user's latest)",
    "rating_col": "the rating column (with --min-rating)",
    "min_rating": "a rating >= this is a positive (needs --rating-col for csv/tsv/parquet)",
    "sep": "the column delimiter of a csv/tsv file, e.g. ';' or '\\t' (default: the format's)",
    "string_ids": "read id columns as text even when most values are numbers",
    "n_users": "synthetic-influencer: users (default 407)",
    "n_items": "synthetic-influencer: items (default 462)",
    "n_interactions": "synthetic-influencer: positives (default 2000)",
    "data_seed": "synthetic-influencer: generator seed (default: the run's seed)",
}


def add_data_flags(p: argparse.ArgumentParser, *aliases: str) -> None:
    """`--data` and one flag per DataConfig field: the same for every command that loads data
    (train, sweep, data describe), generated from the config so the three never differ and a
    data loader's hint (`pass --format tsv`, `--string-ids`) names a flag each of them has."""
    p.add_argument("--data", *aliases, dest="source", default=None, metavar="SOURCE",
                   help="'synthetic-influencer' (built in) or a data file (data.source)")
    for key, field in DataConfig.model_fields.items():
        if key == "source":
            continue
        text = _DATA_HELP.get(key, f"default {field.default!r}") + f" [data.{key}]"
        if field.annotation is bool:
            p.add_argument(data_flag(key), dest=key, action="store_const", const=True,
                           default=None, help=text)
        else:
            p.add_argument(data_flag(key), dest=key, default=None, metavar="V", help=text)


# -- train ------------------------------------------------------------------------------------

def _flag_help(key: str, field: Any) -> str:
    allowed = typing.get_args(field.annotation)
    literals = [a for a in allowed if isinstance(a, str)]
    if typing.get_origin(field.annotation) is typing.Literal:
        literals = list(allowed)
    text = f"default {field.default!r}"
    if literals:
        text += "; one of " + ", ".join(map(str, literals))
    if key == "layers":
        text += " (comma separated, e.g. 32,16,8)"
    if key == "negatives":
        text += " (a ratio of the positives like 4x; an absolute count of at least " \
                f"{SMALL_NEGATIVES}, or any count with --negatives-total)"
    return text


def run_flags() -> list[str]:
    """Every RunConfig parameter as a `train` flag (the data block has its own flags)."""
    return [k for k in RunConfig.model_fields if k != "data"]


def _train_parser(sub: Subcommands) -> None:
    p = sub.add_parser("train", help="one OCF-B run (or reference baseline) without Ray")
    p.add_argument("--config", help="YAML file of run settings (flags override it)")
    add_data_flags(p)
    for key in run_flags():
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None, metavar="V",
                       help=_flag_help(key, RunConfig.model_fields[key]))
    p.add_argument("--negatives-total", type=int, default=None, metavar="N",
                   help="N negatives in total (the unambiguous spelling of a small count)")
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--smoke", action="store_true", help="a few seconds of work, for tests")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or table (the closing line is still printed)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: these models are too small to gain "
                        "from more, and extra threads thrash on a busy machine)")
    p.set_defaults(func=_handler("cmd_train", train_config_from_args))


def _parse_value(key: str, raw: str) -> Any:
    """A flag's text as YAML would read it (numbers, true/false, null), so pydantic validates
    it exactly as it validates a config file; `layers` also takes "32,16,8"."""
    if key == "layers" and "," in raw and not raw.strip().startswith("["):
        try:
            return [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"layers: expected comma-separated integers, got {raw!r}") from None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if key == "negatives" and isinstance(value, float):
        return raw  # "4.0" is neither a count nor a ratio: let the validator name it
    return raw if value is None and key not in _OPTIONAL else value


_OPTIONAL = tuple(k for k, f in RunConfig.model_fields.items() if f.default is None)


def train_config_from_args(args: argparse.Namespace) -> RunConfig:
    """Merge YAML file, flags and --smoke into one validated RunConfig."""
    overrides: dict[str, Any] = {}
    for key in run_flags():
        raw = getattr(args, key)
        if raw is not None:
            overrides[key] = _parse_value(key, raw)
    if args.negatives_total is not None:
        if "negatives" in overrides:
            raise ConfigError("negatives: give --negatives or --negatives-total, not both")
        overrides["negatives"] = args.negatives_total
    data = data_overrides(args)
    if args.smoke:
        overrides = {**SMOKE_SETTINGS, **overrides}
    if args.config:
        if Path(args.config).is_dir():
            raise ConfigError(f"{args.config}: is a directory; --config takes a YAML file of "
                              "run settings")
        base = load_run_config(args.config).model_dump()
        base.update(overrides)
        if data:
            base["data"] = {**base["data"], **data}
        return make_run_config(base)
    if data:
        overrides["data"] = data
    return make_run_config(overrides)


# -- sweep, resume, summarize (run by suite.commands) -------------------------------------------


def _sweep_parsers(sub: Subcommands) -> None:
    """The sweep, resume and summarize subcommands; their handlers live in `suite.commands`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None,
                        help="Ray cluster address (sweep default: RAY_ADDRESS, else local Ray; "
                             "resume default: what the sweep used)")
    common.add_argument("--wandb", choices=WANDB_MODES, default=None,
                        help="W&B mode (sweep default: the sweep file's; resume default: what "
                             "the sweep used)")
    common.add_argument("--ray-temp-dir", default=None, help=argparse.SUPPRESS)
    s = sub.add_parser("sweep", parents=[common], help="run a Ray Tune sweep from a YAML file")
    s.add_argument("config", help="sweep YAML file (see configs/)")
    s.add_argument("--out", default=None, help="output folder (default: the file's output)")
    add_data_flags(s)  # train's data flags, overriding the file's data block
    s.add_argument("--smoke", action="store_true", help="shrink to a few seconds of work")
    s.add_argument("--drop-duplicates", action="store_true",
                   help="run one of each group of identical configurations instead of refusing")
    s.set_defaults(func=_handler("cmd_sweep"))
    r = sub.add_parser("resume", parents=[common], help="continue an interrupted sweep")
    r.add_argument("dir", help="the sweep's output folder")
    r.set_defaults(func=_handler("cmd_resume"))
    m = sub.add_parser("summarize", help="write summary.md, tables and plots for a sweep")
    m.add_argument("dir", help="the sweep's output folder")
    m.add_argument("--wandb", choices=WANDB_MODES, default=None)
    m.set_defaults(func=_handler("cmd_summarize"))


# -- entry point ------------------------------------------------------------------------------


# Subcommands whose own module registers their parser (`register_cli`). Only the one being run
# is imported: a sweep's driver never loads the bench, dashboards or cross-sweep comparison
# (wandb_workspaces alone is 3.1 s of imports). `--help` or an unknown command loads them all.
REGISTERED_ELSEWHERE = {"dashboard": "suite.dashboard", "bench": "suite.bench",
                        "compare": "suite.summary.report"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand sets its handler as `func`. With `command`, one of
    REGISTERED_ELSEWHERE is registered only when it is the command (None: all of them)."""
    p = argparse.ArgumentParser(prog="ocfb-suite", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    _data_parser(sub)
    _train_parser(sub)
    _sweep_parsers(sub)
    for name, module in REGISTERED_ELSEWHERE.items():
        if command is None or command == name or command not in sub.choices:
            importlib.import_module(module).register_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
