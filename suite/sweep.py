"""Run, resume and record Ray Tune sweeps of OCF-B (one trial = one full OCF-B run).

`ocfb-suite sweep CONFIG` validates the sweep file completely before Ray starts, runs the
trials with `tune.Tuner` (local Ray sized to the machine, or a cluster via --address), streams
per-term results into `DIR/terms.parquet` and per-trial rows into `DIR/trials.parquet`
(atomically, as trials finish), then writes the summary. `ocfb-suite resume DIR` continues an
interrupted sweep with `tune.Tuner.restore`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from suite.results import write_json, write_parquet

EXIT_USAGE = 2
# Keys Ray adds to every result; they are bookkeeping, not OCF-B metrics.
RAY_KEYS = {
    "training_iteration", "time_this_iter_s", "done", "timestamp", "date", "hostname",
    "node_ip", "pid", "time_total_s", "time_since_restore", "iterations_since_restore",
    "checkpoint_dir_name", "config", "trial_id", "experiment_tag", "should_checkpoint",
    "timesteps_total", "episodes_total", "timesteps_since_restore", "warmup_time",
}
# Our own per-result extras that belong to the trial, not to the term history.
TRIAL_KEYS = {"diverged", "diverged_reason", "node_id", "trial_wall_s"}


def record_of(result: dict[str, Any]) -> dict[str, Any]:
    """The OCF-B per-term record inside a Tune result (Ray's and trial keys removed)."""
    return {k: v for k, v in result.items() if k not in RAY_KEYS and k not in TRIAL_KEYS}


def config_columns(cfg: Any) -> dict[str, Any]:
    """A RunConfig flattened to `config.<key>` columns (data block excluded; lists as text)."""
    out = {}
    for k, v in cfg.model_dump(mode="json").items():
        if k == "data":
            continue
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        elif k == "negatives":
            v = str(v)
        out[f"config.{k}"] = v
    return out


def flat_config(cfg: Any) -> dict[str, Any]:
    """The trial's full flattened config as plain keys (for W&B run configs)."""
    out = {k.removeprefix("config."): v for k, v in config_columns(cfg).items()}
    out.update({f"data.{k}": v for k, v in cfg.data.model_dump(mode="json").items()})
    return out


class ResultsWriter:
    """Collects per-term results and trial outcomes; rewrites the parquet files atomically."""

    def __init__(self, out_dir: Path, spec: Any, *, verbose: bool = True,
                 resume: bool = False) -> None:
        self.out = out_dir
        self.spec = spec
        self.verbose = verbose
        self.metric = spec.objective.metric
        self.mode = spec.objective.mode
        self.terms: dict[str, dict[int, dict[str, Any]]] = {}
        self.trials: dict[str, dict[str, Any]] = {}
        self.finished = 0
        self._last_flush = 0.0
        if resume:
            self._load_existing()

    def _load_existing(self) -> None:
        # On resume, earlier results are the starting point; re-reported terms overwrite them.
        tp, tt = self.out / "terms.parquet", self.out / "trials.parquet"
        if tp.is_file():
            for rec in pd.read_parquet(tp).to_dict("records"):
                tid = rec.pop("trial_id")
                rec = {k: v for k, v in rec.items() if not k.startswith("config.")}
                self.terms.setdefault(tid, {})[int(rec["term"])] = rec
        if tt.is_file():
            for row in pd.read_parquet(tt).to_dict("records"):
                self.trials[row["trial_id"]] = {
                    "status": row["status"], "error": row.get("error"),
                    "node_id": row.get("node_id"), "wall_time_s": row.get("wall_time_s"),
                    "config": None, "config_cols": {k: v for k, v in row.items()
                                                     if k.startswith("config.")},
                }

    def _trial(self, trial: Any) -> dict[str, Any]:
        t = self.trials.setdefault(trial.trial_id, {"status": "pending", "error": None,
                                                     "node_id": None, "wall_time_s": None})
        if t.get("config") is None:
            cfg = self.spec.run_config(trial.config)
            t["config"] = cfg
            t["config_cols"] = config_columns(cfg)
        return t

    def on_start(self, trial: Any) -> None:
        """A trial started or was restored."""
        self._trial(trial)["status"] = "running"

    def on_result(self, trial: Any, result: dict[str, Any]) -> None:
        """A term finished (or the trial diverged)."""
        t = self._trial(trial)
        t["node_id"] = result.get("node_id", t["node_id"])
        t["wall_time_s"] = result.get("trial_wall_s", t["wall_time_s"])
        if result.get("diverged"):
            t["status"] = "diverged"
            t["error"] = result.get("diverged_reason")
            return
        rec = record_of(result)
        self.terms.setdefault(trial.trial_id, {})[int(rec["term"])] = rec
        if time.time() - self._last_flush > 5.0:
            self.flush()

    def on_end(self, trial: Any, error: BaseException | str | None = None) -> None:
        """A trial completed, was stopped early, or failed."""
        t = self._trial(trial)
        # Terms reported to a driver that was killed before flushing them are recovered from
        # the trial's last checkpoint, which carries the loop's full history.
        mine = self.terms.setdefault(trial.trial_id, {})
        for rec in _history_from_checkpoint(trial):
            mine.setdefault(int(rec["term"]), rec)
        done = len(mine)
        if error is not None:
            t["status"] = "error"
            t["error"] = str(error).strip().splitlines()[-1][:500] if str(error) else "error"
        elif t["status"] != "diverged":
            total = t["config"].terms + 1
            t["status"] = "completed" if done >= total else "stopped"
        self.finished += 1
        self.flush()
        if self.verbose:
            self._progress_line(trial.trial_id, t)

    def _progress_line(self, tid: str, t: dict[str, Any]) -> None:
        cols = t["config_cols"]
        axes = [a for a in self.spec.axes()]
        desc = " ".join(f"{a}={cols.get('config.' + a)}" for a in axes)
        best = self._best(tid)
        score = (f"{self.metric}={best[self.metric]:.4f} @ term {best['term']}"
                 if best else "no result")
        total = self.spec.expected_trials()
        print(f"[{self.finished}/{total if total else '?'}] {tid} {t['status']}: {desc} | "
              f"{score}", flush=True)

    def _best(self, tid: str) -> dict[str, Any] | None:
        recs = [r for r in self.terms.get(tid, {}).values()
                if isinstance(r.get(self.metric), float) and math.isfinite(r[self.metric])]
        if not recs:
            return None
        key = (lambda r: r[self.metric]) if self.mode == "max" else (lambda r: -r[self.metric])
        return max(sorted(recs, key=lambda r: r["term"]), key=key)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(trials, terms) data frames in the results schema."""
        term_rows, trial_rows = [], []
        for tid in sorted(self.trials):
            t = self.trials[tid]
            recs = [self.terms.get(tid, {})[k] for k in sorted(self.terms.get(tid, {}))]
            for r in recs:
                term_rows.append({"trial_id": tid, **r, **t["config_cols"]})
            row = {"trial_id": tid, "status": t["status"], "error": t["error"],
                   "node_id": t["node_id"], "wall_time_s": t["wall_time_s"],
                   "terms_done": len(recs), **t["config_cols"]}
            best = self._best(tid)
            row["best_term"] = best["term"] if best else None
            if recs:
                row.update({f"final.{k}": v for k, v in recs[-1].items() if k != "term"})
            if best:
                row.update({f"best.{k}": v for k, v in best.items() if k != "term"})
            trial_rows.append(row)
        return pd.DataFrame(trial_rows), pd.DataFrame(term_rows)

    def flush(self) -> None:
        """Rewrite trials.parquet and terms.parquet atomically."""
        trials, terms = self.frames()
        write_parquet(trials, self.out / "trials.parquet")
        write_parquet(terms, self.out / "terms.parquet")
        self._last_flush = time.time()


def _make_callback(writer: ResultsWriter):
    from ray import tune

    class _ResultsCallback(tune.Callback):
        """Forwards Tune's trial events to the results writer (runs in the driver)."""

        def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
            writer.on_start(trial)

        def on_trial_restore(self, iteration, trials, trial, **info):  # noqa: ANN001
            writer.on_start(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            writer.on_result(trial, result)

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
            writer.on_end(trial)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
            writer.on_end(trial, error=_error_text(trial))

        def on_experiment_end(self, trials, **info):  # noqa: ANN001
            writer.flush()

    return _ResultsCallback()


def _history_from_checkpoint(trial: Any) -> list[dict[str, Any]]:
    try:
        import torch

        from suite.trainable import STATE_FILE

        ckpt = trial.checkpoint
        if ckpt is None:
            return []
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)
        return list(state.get("history", []))
    except Exception:
        return []


def _error_text(trial: Any) -> str:
    try:
        return Path(trial.error_file).read_text() or "trial failed"
    except Exception:
        return "trial failed"


# -- Ray setup --------------------------------------------------------------------------------


def init_ray(address: str | None, temp_dir: str | None = None) -> None:
    """Join a cluster when an address is given (or RAY_ADDRESS is set), else start local Ray."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return
    kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": True,
                          "logging_level": "ERROR"}
    if address:
        ray.init(address=address, **kw)
        return
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    # a small object store: trials exchange only small results and checkpoints
    store = int(min(2.0, max(0.25, total_gb * 0.05)) * 2**30)
    if temp_dir:
        kw["_temp_dir"] = temp_dir
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=store, **kw)


def _experiment_path(spec: Any, out: Path) -> str:
    storage = spec.storage_path or str((out / "ray").resolve())
    return storage.rstrip("/") + "/" + spec.name


def build_tuner(spec: Any, out: Path, writer: ResultsWriter, callbacks: list, *,
                restore: bool = False):
    """The Tuner for a sweep (new, or restored from its experiment folder)."""
    from ray import tune

    from suite.trainable import make_trainable

    trainable = tune.with_resources(
        make_trainable(spec, cache_dir=str((out / "splits").resolve())),
        {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus},
    )
    cbs = [_make_callback(writer), *callbacks]
    if restore:
        tuner = tune.Tuner.restore(
            _experiment_path(spec, out), trainable=trainable, resume_unfinished=True,
            resume_errored=True, param_space=spec.param_space(),
        )
        # Tuner.restore unpickles the old RunConfig with the old (dead) callbacks; this run's
        # results writer and W&B callback must replace them. Ray has no public hook for it.
        tuner._local_tuner.get_run_config().callbacks = cbs
        return tuner, cbs
    algo = spec.search.algorithm
    if algo == "optuna":
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch

        # Seeds are replicates, not a hyperparameter: TPE proposes a configuration and the
        # Repeater runs it once per seed (trial index i -> seeds[i], see SweepSpec.run_config).
        search_alg = Repeater(OptunaSearch(seed=spec.search.seed), repeat=len(spec.seeds),
                              set_index=True)
    else:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # seeded draws; the random values stay the same across the seed (and other grid) axes,
        # so every sampled configuration is replicated over every seed
        search_alg = BasicVariantGenerator(random_state=spec.search.seed,
                                           constant_grid_search=True)
    scheduler = None
    if spec.scheduler.type == "asha":
        from ray.tune.schedulers import ASHAScheduler

        max_t = max(spec.max_terms() + 1, spec.scheduler.grace_period + 1)
        scheduler = ASHAScheduler(
            time_attr="training_iteration", max_t=max_t,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    num_samples = spec.tune_num_samples()
    tuner = tune.Tuner(
        trainable,
        param_space=spec.param_space(),
        tune_config=tune.TuneConfig(
            metric=spec.objective.metric, mode=spec.objective.mode, search_alg=search_alg,
            scheduler=scheduler, num_samples=num_samples,
            max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=spec.storage_path or str((out / "ray").resolve()),
            callbacks=cbs, verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
    return tuner, cbs


# -- commands ---------------------------------------------------------------------------------


def _fail(msg: str) -> int:
    print(f"ocfb-suite: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def run_sweep(spec: Any, out: Path, *, address: str | None = None, wandb_mode: str | None = None,
              restore: bool = False, temp_dir: str | None = None, verbose: bool = True) -> int:
    """Run (or resume) a validated sweep; write results and the summary. Returns exit code."""
    from suite import tracking

    out.mkdir(parents=True, exist_ok=True)
    # Ray's rich console output would drown the one progress line per trial we print.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Save the experiment state on every controller step (it is tiny here), so a driver killed
    # right after a trial finished does not rerun that trial's last term on resume.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    mode = tracking.resolve_mode(wandb_mode, spec.wandb.mode)
    if not restore:
        moved = archive_previous(out)
        if moved is not None and verbose:
            print(f"an earlier sweep's results in {out} were moved to {moved}")
        write_json({**spec.to_json(), "expected_trials": spec.expected_trials(),
                    "wandb_mode": mode}, out / "sweep.json")
    writer = ResultsWriter(out, spec, verbose=verbose, resume=restore)
    callbacks = []
    if mode != "disabled":
        tracking.prepare_env(out)
        callbacks.append(tracking.WandbTrialCallback(
            sweep_name=spec.name, project=spec.wandb.project, entity=spec.wandb.entity,
            tags=list(spec.wandb.tags), mode=mode, out_dir=out,
            flatten_config=lambda c: flat_config(spec.run_config(c)),
            # W&B gets exactly the per-term records of terms.parquet (no divergence markers)
            metric_keys=lambda r: {} if r.get("diverged") else record_of(r),
            # a resumed trial's W&B run is rebuilt from the rows the results files hold
            replay=lambda tid: [writer.terms[tid][t] for t in sorted(writer.terms.get(tid, {}))],
        ))
    init_ray(address, temp_dir)
    tuner, _ = build_tuner(spec, out, writer, callbacks, restore=restore)
    started = time.time()
    tuner.fit()
    writer.flush()
    if verbose:
        print(f"sweep {spec.name}: {writer.finished} trials finished in "
              f"{time.time() - started:.1f} s; results in {out}")
        print_leaderboard(writer, spec)
    finish(out, spec, mode)
    if mode == "offline" and verbose:
        print(tracking.sync_hint(out))
    statuses = [t["status"] for t in writer.trials.values()]
    unfinished = sum(s in ("running", "pending") for s in statuses)
    expected = spec.expected_trials()
    if unfinished or (expected is not None and len(statuses) < expected):
        # Ray returns normally on Ctrl-C; the sweep is not done and must not look done
        print(f"sweep {spec.name} interrupted: {unfinished} trial(s) unfinished, "
              f"{len(statuses)} of {expected if expected is not None else '?'} started; "
              f"continue with: ocfb-suite resume {out}", file=sys.stderr)
        return 1
    if statuses and all(s == "error" for s in statuses):
        print(f"sweep {spec.name}: every trial failed; see the error column of "
              f"{out / 'trials.parquet'}", file=sys.stderr)
        return 1
    return 0


# Results of an earlier sweep in the same folder, moved aside (never mixed, never deleted).
_PREVIOUS = ("sweep.json", "trials.parquet", "terms.parquet", "summary.md", "tables", "plots",
             "ray", "splits", "wandb")


def archive_previous(out: Path) -> Path | None:
    """Move an earlier sweep's results in `out` to `out/previous-<UTC time>/`; return it."""
    present = [n for n in _PREVIOUS if (out / n).exists()]
    if not present:
        return None
    dest = out / time.strftime("previous-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while dest.exists():
        dest = dest.with_name(dest.name.split("+")[0] + f"+{n}")
        n += 1
    dest.mkdir(parents=True)
    for name in present:
        os.replace(out / name, dest / name)
    return dest


def print_leaderboard(writer: ResultsWriter, spec: Any, top: int = 10) -> None:
    """The best trials by the objective, on the terminal."""
    trials, _ = writer.frames()
    col = f"best.{spec.objective.metric}"
    if trials.empty or col not in trials:
        print("no trial produced the objective")
        return
    df = trials.dropna(subset=[col]).sort_values(col, ascending=spec.objective.mode == "min")
    axes = [f"config.{a}" for a in spec.axes()]
    show = df[["trial_id", "status", *axes, col, "best_term"]].head(top)
    show.columns = [c.removeprefix("config.") for c in show.columns]
    print(show.to_string(index=False))


def finish(out: Path, spec: Any, mode: str) -> None:
    """Summarize the results folder and log the summary run to W&B."""
    from suite.summarize import summarize_dir

    log_summary_run(out, spec, mode, summarize_dir(out))


def log_summary_run(out: Path, spec: Any, mode: str, summary: Any) -> None:
    """The W&B summary run of a sweep: its tables, plots and results files (none if disabled)."""
    if mode == "disabled":
        return
    from suite import tracking

    tracking.log_summary(
        out_dir=out, sweep_name=spec.name, project=spec.wandb.project,
        entity=spec.wandb.entity, mode=mode, tables=summary.tables, images=summary.plots,
        files=[out / "trials.parquet", out / "terms.parquet"],
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    """`ocfb-suite sweep CONFIG`: validate the file (exit 2 on any problem), then run."""
    from suite.spec import SpecError, load_sweep

    try:
        spec = load_sweep(args.config, output=args.out, data_source=args.data)
        if args.smoke:
            spec = spec.with_smoke()
            if args.out is None:  # smoke results never replace a real sweep's
                spec = spec.model_copy(update={"output": spec.output.rstrip("/") + "-smoke"})
        spec = _absolute_data_path(spec)
        if not (args.address or os.environ.get("RAY_ADDRESS")):
            _check_local_resources(spec)
        _check_data(spec)
    except SpecError as err:
        return _fail(str(err))
    return run_sweep(spec, Path(spec.output), address=args.address, wandb_mode=args.wandb,
                     temp_dir=args.ray_temp_dir)


def _absolute_data_path(spec: Any) -> Any:
    """A data file path made absolute: trials run in their own working directories."""
    if spec.data.is_synthetic or "://" in spec.data.source:
        return spec
    source = str(Path(spec.data.source).expanduser().resolve())
    return spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})


def _check_local_resources(spec: Any) -> None:
    """On local Ray, a trial this machine can never place would wait forever: refuse it."""
    from suite.spec import SpecError

    cpus = os.cpu_count() or 1
    if spec.resources.cpus > cpus:
        raise SpecError(f"resources.cpus: {spec.resources.cpus} per trial, but this machine has "
                        f"{cpus} CPUs; allowed: 0 < cpus <= {cpus} (or --address a cluster)")
    if spec.resources.gpus > 0:
        import torch

        if not torch.cuda.is_available():
            raise SpecError(f"resources.gpus: {spec.resources.gpus} per trial, but this machine "
                            "has no CUDA GPU; allowed: 0 (or --address a cluster with GPUs)")


def _check_data(spec: Any) -> None:
    """Load the data once in the driver, so a bad path or too many negatives fail before Ray
    starts rather than inside every trial."""
    from ocfb.data import DataError, load_source
    from suite.spec import SpecError

    try:
        data = load_source(spec.data.source, **spec.data.load_kwargs())
    except (DataError, ValueError) as err:
        raise SpecError(f"data.source: {err}") from None
    free = data.n_users * data.n_items - len(data)
    # a ratio scales the training positives: at least all positives minus two held out per user
    fewest_positives = max(1, len(data) - 2 * data.n_users)
    if "negatives" in spec.space:
        dim = spec.space["negatives"]
        places = [(f"space.negatives.{dim.kind}[{i}]", v) for i, v in enumerate(dim.candidates())]
    else:
        places = [("fixed.negatives", spec.base_config().get("negatives", 2000))]
    problems = []
    for where, value in places:
        cfg = spec.run_config({"negatives": value})
        # under paper a ratio scales all positives, under holdout the training positives
        basis = fewest_positives if cfg.protocol == "holdout" else len(data)
        need = cfg.n_negatives(basis)
        if need > free:
            problems.append(f"{where}: {value!r} means {need} negatives, but only {free} "
                            f"unobserved (user, item) cells exist in {spec.data.source}")
    if problems:
        raise SpecError("\n".join(problems))


def cmd_resume(args: argparse.Namespace) -> int:
    """`ocfb-suite resume DIR`: continue an interrupted sweep where it stopped."""
    from suite.spec import SpecError

    out = Path(args.dir)
    meta = out / "sweep.json"
    if not meta.is_file():
        return _fail(f"{out}: no sweep.json here; is this a sweep output folder?")
    address = args.address or os.environ.get("RAY_ADDRESS") or ""
    if address.startswith("ray://"):
        # Ray Client runs the Tuner remotely, where this run's results writer cannot be attached
        return _fail(f"--address {address}: resume needs a cluster address the driver joins "
                     "directly (HOST:PORT), not a Ray Client ray:// address")
    try:
        spec = spec_from_json(json.loads(meta.read_text()))
    except SpecError as err:
        return _fail(f"{meta}: {err}")
    from ray import tune

    if not tune.Tuner.can_restore(_experiment_path(spec, out)):
        return _fail(f"{out}: Ray saved no experiment state at {_experiment_path(spec, out)} "
                     "(killed before the first trial started?); run the sweep again instead")
    return run_sweep(spec, out, address=args.address, wandb_mode=args.wandb, restore=True,
                     temp_dir=args.ray_temp_dir)


def spec_from_json(meta: dict[str, Any]) -> Any:
    """The sweep spec saved in DIR/sweep.json (the runner's own keys removed), re-validated."""
    from suite.spec import SweepSpec

    raw = {k: v for k, v in meta.items() if k not in ("expected_trials", "wandb_mode")}
    return SweepSpec.from_dict(raw, "sweep.json")


def cmd_summarize(args: argparse.Namespace) -> int:
    """`ocfb-suite summarize DIR`: rebuild summary.md, tables and plots from the results."""
    from suite.summarize import summarize_dir

    out = Path(args.dir)
    if not (out / "trials.parquet").is_file():
        return _fail(f"{out}: no trials.parquet here; is this a sweep output folder?")
    summary = summarize_dir(out)
    for note in summary.notes:
        print(note)
    print(f"wrote {out / 'summary.md'}")
    meta = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    mode = args.wandb or meta.get("wandb_mode", "disabled")
    if mode != "disabled" and meta:
        from suite import tracking

        spec = spec_from_json(meta)
        tracking.prepare_env(out)
        log_summary_run(out, spec, tracking.resolve_mode(mode, spec.wandb.mode), summary)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add the sweep, resume and summarize subcommands to the CLI."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else local Ray)")
    common.add_argument("--wandb", choices=("online", "offline", "disabled"), default=None,
                        help="W&B mode (default: the sweep file's; auto = online with a key)")
    common.add_argument("--ray-temp-dir", default=None, help=argparse.SUPPRESS)
    s = sub.add_parser("sweep", parents=[common], help="run a Ray Tune sweep from a YAML file")
    s.add_argument("config", help="sweep YAML file (see configs/)")
    s.add_argument("--out", default=None, help="output folder (default: the file's output)")
    s.add_argument("--data", default=None, help="data file, overriding data.source")
    s.add_argument("--smoke", action="store_true", help="shrink to a few seconds of work")
    s.set_defaults(func=cmd_sweep)
    r = sub.add_parser("resume", parents=[common], help="continue an interrupted sweep")
    r.add_argument("dir", help="the sweep's output folder")
    r.set_defaults(func=cmd_resume)
    m = sub.add_parser("summarize", help="write summary.md, tables and plots for a sweep")
    m.add_argument("dir", help="the sweep's output folder")
    m.add_argument("--wandb", choices=("online", "offline", "disabled"), default=None)
    m.set_defaults(func=cmd_summarize)
