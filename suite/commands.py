"""The sweep driver and the sweep, resume and summarize commands (parsed in `suite.cli`):
pre-flight, lock, Ray and the Tuner, the closing line, the summary.

Exit codes: 0 done; 1 the sweep ran but is not a result (interrupted by Ctrl-C or SIGTERM, a
results write failed, every trial diverged or failed, or a tune-then-confirm family had no
completed search trial to confirm), always with the reason and, where it helps, the resume
command; 2 a problem found before Ray starts (bad file, bad data, unwritable
output, a folder held by another live driver).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.folders import (
    RAY_LOG,
    LockHeld,
    OutputLock,
    archive_previous,
    own_children,
    ray_logs_to_file,
    start_reaper,
    unreadable_state_files,
)
from suite.results import (
    JOURNAL,
    ResultsWriter,
    applicable_data,
    describe_os_error,
    write_json,
)
from suite.spec.vocabulary import EXIT_USAGE

if TYPE_CHECKING:
    from suite.spec import SweepSpec

# settings the runner records in sweep.json next to the spec (resume reuses them)
RUNNER_KEYS = ("expected_trials", "wandb_mode", "address", "smoke")
TERMINAL = ("completed", "stopped", "diverged")


def _fail(msg: str) -> int:
    print(f"ocfb-suite: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _resume_hint(out: Path) -> str:
    return f"continue with: ocfb-suite resume {out}"


# -- running ------------------------------------------------------------------------------------


def _tune_env() -> None:
    # Ray's rich console output would drown the one progress line per trial we print.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Ray's experiment state (4.6 MB at quickstart's 57 trials) saved at every controller step
    # took 91 of fit()'s 179 s; once a second costs at most a rerun of one term on resume.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")


def _sigterm_as_interrupt() -> None:
    # SIGTERM (timeout, job schedulers) behaves like Ctrl-C: Tune's SIGINT handler saves the
    # experiment and returns from fit(); outside fit() it is a KeyboardInterrupt. Installed
    # after ray.init, which sets its own SIGTERM handler (sys.exit -> exit 15, no hint).
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))


def _wandb_callbacks(spec: SweepSpec, out: Path, mode: str, writer: ResultsWriter) -> list[Any]:
    if mode == "disabled":
        return []
    from suite import tracking
    from suite.results import flat_config, record_of

    tracking.prepare_env(out)
    return [tracking.WandbTrialCallback(
        sweep_name=spec.name, project=spec.wandb.project, entity=spec.wandb.entity,
        tags=list(spec.wandb.tags), mode=mode, out_dir=out,
        flatten_config=lambda c: flat_config(spec.run_config(c)),
        # W&B gets exactly the per-term records of terms.parquet (no divergence markers)
        metric_keys=lambda r: {} if r.get("diverged") else record_of(r),
        # a resumed trial's W&B run is rebuilt from the rows the results files hold
        replay=lambda tid: [writer.terms[tid][t] for t in sorted(writer.terms.get(tid, {}))],
    )]


def _new_sweep_json(spec: SweepSpec, out: Path, *, mode: str, address: str | None,
                    smoke: bool, verbose: bool) -> None:
    """A new sweep's DIR/sweep.json (the spec and the runner's settings, which resume reuses);
    an earlier sweep's results in the folder are moved aside first."""
    moved = archive_previous(out)
    if moved is not None and verbose:
        print(f"an earlier sweep's results in {out} were moved to {moved}")
    write_json({**spec.to_json(), "data": applicable_data(spec.data),
                "expected_trials": spec.expected_trials(), "wandb_mode": mode,
                "address": address or os.environ.get("RAY_ADDRESS") or "local",
                "smoke": smoke}, out / "sweep.json")


def run_sweep(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], *, mode: str,
              address: str | None = None, restore: bool = False, smoke: bool = False,
              verbose: bool = True) -> int:
    """Run (or resume) a checked sweep under its lock; write results and the summary.

    `mode` is the resolved W&B mode (online, offline or disabled). Returns the exit code.
    """
    from suite import tuner

    _tune_env()
    if not restore:
        _new_sweep_json(spec, out, mode=mode, address=address, smoke=smoke, verbose=verbose)
    # the summary's libraries (scipy.stats, statsmodels, matplotlib: 1.5 s in a driver that
    # holds Ray and torch) are imported on a thread while the last trials run, as slots fall
    # idle, instead of after them; joined before the summary so no import runs twice at once
    warm = threading.Thread(target=_summary_imports, name="summary-imports", daemon=True)
    writer = ResultsWriter(out, spec, verbose=verbose, resume=restore, on_all_started=warm.start,
                           on_write_error=lambda _msg: os.kill(os.getpid(), signal.SIGINT))
    session = tuner.SweepSession(writer, _wandb_callbacks(spec, out, mode, writer))
    before = own_children()
    connected_before = tuner.ray_connected()
    started_local = tuner.init_ray(address)
    if started_local:
        start_reaper(own_children() - before)
    elif (problem := _node_memory_problem(spec, datasets)) is not None:
        if not connected_before:
            tuner.stop_ray()
        return _fail(problem)
    _sigterm_as_interrupt()
    ray_logs_to_file(out)
    tuner.activate(session)
    started = time.time()
    try:
        if spec.tune_per_model is not None:  # tune-then-confirm: one Tuner per stage
            from suite.confirm import run_stages

            run_stages(spec, out, datasets, writer, restore=restore)
        else:
            tuner.fit(spec, out, datasets, writer, restore=restore)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C / SIGTERM: what was written stays, the hint below says resume
    except RuntimeError as err:
        if not tuner.oom_crash(err):
            raise
        # a cluster's memory monitor killed a worker and Ray Tune stopped (tuner.oom_crash):
        # the results so far stand, the summary is written, resume continues
        print(f"ocfb-suite: error: Ray's memory monitor killed a trial's worker and Ray Tune "
              f"stopped the sweep ({str(err.__cause__).splitlines()[0][:160]}); give trials "
              f"more memory or run fewer at once", file=sys.stderr)
    finally:
        tuner.activate(None)
        writer.flush()
    if warm.is_alive():
        warm.join()
    try:
        return _close(spec, out, writer, mode, time.time() - started, verbose)
    finally:
        if not connected_before:  # a Ray instance the caller started stays up
            tuner.stop_ray()


def _node_memory_problem(spec: SweepSpec, datasets: dict[tuple, Any]) -> str | None:
    """On a joined cluster: why no node can hold one of the sweep's trials, or None."""
    from suite import preflight
    from suite.spec import SpecError

    try:
        preflight.check_memory(spec, datasets, preflight.cluster_memory_limit(),
                               "the cluster's largest node")
    except SpecError as err:
        return str(err)
    return None


def _summary_imports() -> None:
    """Import what the summary needs (run on a thread during the sweep's tail)."""
    import matplotlib.figure  # noqa: F401
    import matplotlib.ticker  # noqa: F401

    import suite.summary  # noqa: F401


def _close(spec: SweepSpec, out: Path, writer: ResultsWriter, mode: str, wall: float,
           verbose: bool) -> int:
    """The closing lines and the exit code of a sweep driver."""
    if writer.write_error:
        print(f"ocfb-suite: error: cannot write {writer.write_error}; the results written "
              f"before it are intact in {out}; free space, then {_resume_hint(out)}",
              file=sys.stderr)
        return 1
    statuses = writer.statuses()
    if verbose:
        print(f"sweep {spec.name}: {_finished_text(writer, spec)} in {wall:.1f} s; "
              f"results in {out}")
        print_leaderboard(writer, spec)
    try:
        finish(out, spec, mode)
    except OSError as err:
        print(f"ocfb-suite: error: cannot write the summary: {describe_os_error(err)}; the "
              f"results files in {out} are complete; rebuild it with: ocfb-suite summarize "
              f"{out}", file=sys.stderr)
        return 1
    if mode != "disabled":
        # workspace and report as code; offline it writes DIR/dashboard/*.json and prints the
        # one-line publish command (which includes `wandb sync`); it never fails a sweep
        from suite.dashboard import build_dashboard

        build_dashboard(out, mode, verbose=verbose)
    unfinished = sum(s in ("running", "pending") for s in statuses)
    if not unfinished and (line := _unconfirmed_line(spec, out, writer)) is not None:
        print(line, file=sys.stderr)
        return 1
    expected = spec.expected_trials()
    if unfinished or (expected is not None and len(statuses) < expected):
        # Ray returns normally on Ctrl-C / SIGTERM; the sweep is not done and must not look done
        print(f"sweep {spec.name} interrupted: {unfinished} trial(s) unfinished, "
              f"{len(statuses)} of {expected if expected is not None else '?'} started; "
              f"{_resume_hint(out)}", file=sys.stderr)
        return 1
    if statuses and all(s in ("error", "diverged") for s in statuses):
        n_div = statuses.count("diverged")
        print(f"sweep {spec.name}: no trial produced a result: {n_div} diverged (training "
              f"loss non-finite or above max_loss: lower lr), {len(statuses) - n_div} failed; "
              f"see the error column of {out / 'trials.parquet'}", file=sys.stderr)
        return 1
    if "error" in statuses:
        # a failed trial (killed for memory, a crash) leaves the sweep short of its design;
        # resume re-runs exactly the failed trials
        print(f"sweep {spec.name}: {statuses.count('error')} trial(s) failed (reasons in the "
              f"error column of {out / 'trials.parquet'}, Ray's tracebacks in "
              f"{out / RAY_LOG}); {_resume_hint(out)}", file=sys.stderr)
        return 1
    return 0


def _unconfirmed_line(spec: SweepSpec, out: Path, writer: ResultsWriter) -> str | None:
    """Tune-then-confirm: the closing line when a family's search ended with no completed
    trial, so it has no confirmation (resuming would not change that: its trials ended)."""
    if spec.tune_per_model is None:
        return None
    from suite.confirm import unconfirmed

    missing = unconfirmed(spec, writer)
    if not missing:
        return None
    return (f"sweep {spec.name}: no search trial of {', '.join(missing)} completed, so "
            f"{'it has' if len(missing) == 1 else 'they have'} no confirmation; reasons in the "
            f"error column of {out / 'trials.parquet'}; fix the cause and run the sweep again")


def print_leaderboard(writer: ResultsWriter, spec: SweepSpec, top: int = 10) -> None:
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


def finish(out: Path, spec: SweepSpec, mode: str) -> None:
    """Summarize the results folder and log the summary run to W&B."""
    from suite.summary import summarize_dir

    log_summary_run(out, spec, mode, summarize_dir(out))


def log_summary_run(out: Path, spec: SweepSpec, mode: str, summary: Any) -> None:
    """The W&B summary run of a sweep: its tables, plots and results files (none if disabled)."""
    if mode == "disabled":
        return
    from suite import tracking

    tracking.log_summary(
        out_dir=out, sweep_name=spec.name, project=spec.wandb.project,
        entity=spec.wandb.entity, mode=mode, tables=summary.tables, images=summary.plots,
        files=[out / "trials.parquet", out / "terms.parquet"],
    )


# -- commands -----------------------------------------------------------------------------------


def _preflight(spec: SweepSpec, out: Path, *, local: bool) -> dict[tuple, Any]:
    """Every check before Ray (SpecError on a problem); returns the loaded datasets."""
    from suite import preflight

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
    from suite.preflight import absolute_data_path, data_overrides
    from suite.spec import SpecError, load_sweep

    if args.ray_temp_dir:
        os.environ["RAY_TMPDIR"] = args.ray_temp_dir
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    try:
        spec = load_sweep(args.config, output=args.out, data=data_overrides(args),
                          drop_duplicates=True if args.drop_duplicates else None)
        if args.smoke:
            spec = spec.with_smoke()
            if args.out is None:  # smoke results never replace a real sweep's
                spec = spec.model_copy(update={"output": spec.output.rstrip("/") + "-smoke"})
        spec = absolute_data_path(spec)
        out = Path(spec.output)
        datasets = _preflight(spec, out, local=address is None)
    except SpecError as err:
        return _fail(str(err))
    from suite import tracking

    mode = tracking.resolve_mode(args.wandb, spec.wandb.mode)
    try:
        with OutputLock(out, f"ocfb-suite sweep {args.config}"):
            return run_sweep(spec, out, datasets, mode=mode, address=address,
                             smoke=bool(args.smoke))
    except LockHeld as err:
        return _fail(str(err))


def _finished_text(writer: ResultsWriter, spec: SweepSpec) -> str:
    """The closing line's count. A resume counts the trials that had not ended before it: a
    trial that ended within the second before a kill (Ray's state not yet saved) reruns its
    last term and ends again, which made "41 trials finished" of 36 that remained."""
    if not writer.ended_before:
        return f"{writer.finished} trials finished"
    ended = {tid for tid, t in writer.trials.items() if t["status"] not in ("running", "pending")}
    new = len(ended - writer.ended_before)
    again = max(0, writer.finished - new)
    expected = spec.expected_trials()
    return (f"{new} remaining trial(s) finished"
            + (f" ({again} that had already ended reran from their checkpoints)" if again
               else "")
            + f"; {len(ended)} of {expected if expected is not None else '?'} ended in all")


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
    from suite.folders import FolderError, check_results, read_sweep_json
    from suite.spec import SpecError

    out = Path(args.dir)
    meta_path = out / "sweep.json"
    try:
        meta = read_sweep_json(out)
        check_results(out, need_trials=False)  # resume reads them back
        spec = spec_from_json(meta)
    except FolderError as err:
        return _fail(str(err))
    except SpecError as err:  # one line: the first problem, and how many more
        lines = [x for x in str(err).splitlines() if x.strip()]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return _fail(f"{meta_path}: not a valid sweep spec: {lines[0] if lines else err}"
                     f"{more}; restore it from a copy, or rerun the sweep with --out {out}")
    done = _finished(out, meta)
    if done is not None:
        print(f"sweep {spec.name} in {out} is already complete ({done} of {done} trials "
              f"finished); nothing to resume. Rebuild the summary with: ocfb-suite summarize "
              f"{out}")
        return 0
    address = args.address or meta.get("address") or "local"
    if address.startswith("ray://"):
        # Ray Client runs the Tuner remotely, where this run's results writer cannot be attached
        return _fail(f"--address {address}: resume needs a cluster address the driver joins "
                     "directly (HOST:PORT), not a Ray Client ray:// address")
    if args.ray_temp_dir:
        os.environ["RAY_TMPDIR"] = args.ray_temp_dir
    try:
        with OutputLock(out, f"ocfb-suite resume {out}"):
            return _resume_locked(spec, out, meta, args, address)
    except LockHeld as err:
        return _fail(str(err))
    except SpecError as err:
        return _fail(str(err))


def _resume_locked(spec: SweepSpec, out: Path, meta: dict[str, Any], args: argparse.Namespace,
                   address: str) -> int:
    from suite import preflight, tuner
    from suite.spec import SpecError

    for bad in unreadable_state_files(tuner.experiment_path(spec, out)):
        # Ray would print a JSONDecodeError traceback and fall back to an older state
        aside = bad.with_name(bad.name + ".truncated")
        os.replace(bad, aside)
        print(f"note: Ray's state file {bad.name} is truncated (the disk filled or the driver "
              f"died while writing it); moved it to {aside.name} and resuming from the trials' "
              f"checkpoints and {out / 'terms.parquet'}", file=sys.stderr)
    from ray import tune

    # a tune-then-confirm sweep keeps one experiment per stage (suite.confirm restores each)
    if spec.tune_per_model is None and not tune.Tuner.can_restore(
            tuner.experiment_path(spec, out)):
        return _fail(f"{out}: Ray saved no readable experiment state at "
                     f"{tuner.experiment_path(spec, out)} (killed before the first trial "
                     "started?); run the sweep again instead")
    try:
        datasets = preflight.load_datasets(spec)
    except SpecError as err:  # resume has no data flags: name sweep.json's keys instead
        from suite.preflight import flags_as_keys

        return _fail(f"{flags_as_keys(str(err))} (the data no longer loads as the sweep read "
                     f"it: restore the file, or fix the data keys in {out / 'sweep.json'})")
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
    from suite.folders import FolderError, check_results, read_sweep_json
    from suite.summary import summarize_dir

    out = Path(args.dir)
    try:
        meta = read_sweep_json(out)
        check_results(out, need_trials=True)
    except FolderError as err:
        return _fail(str(err))
    summary = summarize_dir(out)
    for note in summary.notes:
        print(note)
    from suite.results import unflushed_trials

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
