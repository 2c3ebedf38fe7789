"""The sweep driver: `run_sweep` runs (or resumes) a checked sweep under its lock, as Ray Tune's
own examples read: sweep.json, the results writer, Ray, the Tuner (`suite.tuner`) or the
tune-then-confirm stages, then the closing line and exit code, the summary, the W&B summary run
and the dashboard.

Exit codes: 0 done; 1 the sweep ran but is not a result (interrupted by Ctrl-C or SIGTERM, a
results write failed, every trial diverged or failed, or a tune-then-confirm family had no
completed search trial to confirm), always with the reason and, where it helps, the resume
command; 2 (EXIT_USAGE) a problem found before Ray starts (bad file, bad data, unwritable
output, a folder held by another live driver).

Tune-then-confirm. A sweep file with `tune_per_model: {proposals: N, confirm_seeds: [...]}`
gives every model family the same budget (Dacrema et al. 2019, Rendle et al. 2020: an untuned
baseline makes a comparison with a tuned model meaningless; DaisyRec 2.0 tunes every model with
the same Bayesian budget). Each stage gets its own `SweepSpec` (`search_specs`,
`confirm_spec`), run in order inside one `run_sweep` (one results writer, one output folder,
one lock):

1. each searched family's search (`proposals` configurations on the search seeds), as its own
   Tuner and experiment (`ray/<name>-search-<model>`): one searcher per family, so no family's
   proposals are spent on another's space, and a plain Optuna / random searcher does it;
2. `choose`: each family's validation argmax of the objective over its completed search trials
   (mean over the search seeds), written to `chosen.json`;
3. the confirmation grid (chosen configurations x confirm seeds, `ray/<name>-confirm`).

Resume: a stage whose trials all ended (as the results files hold them) is skipped, one with a
saved experiment is restored, any other starts; so `ocfb-suite resume` reruns whichever stage
is unfinished. An interrupted stage (Ctrl-C, SIGTERM, a results write error) stops the run:
later stages must not start on a partial search.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from suite.folders import RAY_LOG, archive_previous, own_children, ray_logs_to_file, start_reaper
from suite.results import (
    ENDED_STATUSES,
    OPEN_STATUSES,
    ResultsWriter,
    applicable_data,
    describe_os_error,
    flat_config,
    record_of,
    write_json,
)
from suite.spec import STAGE_COLUMN, SweepSpec, parse_layers
from suite.spec.vocabulary import usage_error


def resume_hint(out: Path) -> str:
    """The closing line's hint: the command that continues this sweep."""
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
        return usage_error(problem)
    _sigterm_as_interrupt()
    ray_logs_to_file(out)
    tuner.activate(session)
    started = time.time()
    try:
        if spec.tune_per_model is not None:  # tune-then-confirm: one Tuner per stage
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


# -- closing ------------------------------------------------------------------------------------


def _close(spec: SweepSpec, out: Path, writer: ResultsWriter, mode: str, wall: float,
           verbose: bool) -> int:
    """The closing lines and the exit code of a sweep driver."""
    if writer.write_error:
        print(f"ocfb-suite: error: cannot write {writer.write_error}; the results written "
              f"before it are intact in {out}; free space, then {resume_hint(out)}",
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
    unfinished = sum(s in OPEN_STATUSES for s in statuses)
    if not unfinished and (line := _unconfirmed_line(spec, out, writer)) is not None:
        print(line, file=sys.stderr)
        return 1
    expected = spec.expected_trials()
    if unfinished or (expected is not None and len(statuses) < expected):
        # Ray returns normally on Ctrl-C / SIGTERM; the sweep is not done and must not look done
        print(f"sweep {spec.name} interrupted: {unfinished} trial(s) unfinished, "
              f"{len(statuses)} of {expected if expected is not None else '?'} started; "
              f"{resume_hint(out)}", file=sys.stderr)
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
              f"{out / RAY_LOG}); {resume_hint(out)}", file=sys.stderr)
        return 1
    return 0


def _unconfirmed_line(spec: SweepSpec, out: Path, writer: ResultsWriter) -> str | None:
    """Tune-then-confirm: the closing line when a family's search ended with no completed
    trial, so it has no confirmation (resuming would not change that: its trials ended)."""
    if spec.tune_per_model is None:
        return None
    missing = unconfirmed(spec, writer)
    if not missing:
        return None
    return (f"sweep {spec.name}: no search trial of {', '.join(missing)} completed, so "
            f"{'it has' if len(missing) == 1 else 'they have'} no confirmation; reasons in the "
            f"error column of {out / 'trials.parquet'}; fix the cause and run the sweep again")


def _finished_text(writer: ResultsWriter, spec: SweepSpec) -> str:
    """The closing line's count. A resume counts the trials that had not ended before it: a
    trial that ended within the second before a kill (Ray's state not yet saved) reruns its
    last term and ends again, which made "41 trials finished" of 36 that remained."""
    if not writer.ended_before:
        return f"{writer.finished} trials finished"
    ended = {tid for tid, t in writer.trials.items() if t["status"] not in OPEN_STATUSES}
    new = len(ended - writer.ended_before)
    again = max(0, writer.finished - new)
    expected = spec.expected_trials()
    return (f"{new} remaining trial(s) finished"
            + (f" ({again} that had already ended reran from their checkpoints)" if again
               else "")
            + f"; {len(ended)} of {expected if expected is not None else '?'} ended in all")


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


# -- tune-then-confirm --------------------------------------------------------------------------


CHOSEN_FILE = "chosen.json"


def _plain(key: str, value: Any) -> Any:
    """A results column's value as the sweep file would write it (numpy scalars, layers text,
    a negatives count the columns store as text)."""
    if hasattr(value, "item"):
        value = value.item()
    if key == "layers":
        return parse_layers(value)
    if key == "negatives" and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def choose(trials: pd.DataFrame, spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """model -> the searched values of its validation argmax (empty for an unsearched family).

    Among the family's completed search trials, configurations (its searched keys) are ranked
    by the objective at the selected term (`best.<metric>`), averaged over the search seeds;
    ties go to the first configuration in trial order. A family with no completed search trial
    is left out (`unconfirmed` names it)."""
    metric, mode = spec.objective.metric, spec.objective.mode
    col = f"best.{metric}"
    out: dict[str, dict[str, Any]] = {}
    for m in spec.families():
        keys = list(spec.per_model.get(m, {}))
        if not keys:
            out[m] = {}
            continue
        rows = trials
        if not rows.empty and col in rows:
            rows = rows[(rows["config.model"] == m) & (rows[STAGE_COLUMN] == "search")
                        & (rows["status"] == "completed") & rows[col].notna()]
        if rows.empty or col not in rows:
            continue  # the driver's closing line names it (`unconfirmed`)
        cols = [f"config.{k}" for k in keys]
        means = rows.groupby(cols, sort=False, dropna=False)[col].mean()
        best = means.idxmax() if mode == "max" else means.idxmin()
        best = best if isinstance(best, tuple) else (best,)
        out[m] = {k: _plain(k, v) for k, v in zip(keys, best, strict=True)}
    return out


def _raw(spec: SweepSpec) -> dict[str, Any]:
    raw = spec.to_json()
    for k in ("axes", "expected_trials", "tune_per_model"):
        raw.pop(k, None)
    return raw


def search_specs(spec: SweepSpec) -> list[SweepSpec]:
    """Stage 1: one flat sweep per searched family (its sub-space at the top level, the model
    pinned as a one-value grid so every trial's config names it), `proposals` samples each."""
    tpm = spec.tune_per_model
    assert tpm is not None
    out = []
    for m in spec.families():
        sub = spec.per_model.get(m)
        if not sub:
            continue
        raw = _raw(spec)
        raw["name"] = f"{spec.name}-search-{m}"
        raw["fixed"] = {k: v for k, v in raw["fixed"].items() if k not in sub and k != "model"}
        raw["space"] = {"model": {"grid": [m]}, **raw["per_model"][m]}
        raw["per_model"] = {}
        raw["search"] = {**raw["search"], "num_samples": tpm.proposals}
        out.append(type(spec).from_dict(raw, f"{spec.name} (search {m})"))
    return out


def confirm_spec(spec: SweepSpec, chosen: dict[str, dict[str, Any]]) -> SweepSpec:
    """Stage 2: a grid of each family's chosen configuration x the confirmation seeds, run to
    the end (FIFO: equal budget, no early stopping). `chosen`: model -> its searched values."""
    tpm = spec.tune_per_model
    assert tpm is not None
    raw = _raw(spec)
    models = list(chosen)
    raw["name"] = f"{spec.name}-confirm"
    raw["fixed"] = {k: v for k, v in raw["fixed"].items() if k != "model"}
    raw["space"] = {"model": {"grid": models}}
    raw["per_model"] = {m: {k: {"grid": [v]} for k, v in vals.items()}
                        for m, vals in chosen.items() if vals}
    raw["seeds"] = list(tpm.confirm_seeds)
    raw["search"] = {"algorithm": "grid", "num_samples": 1, "seed": spec.search.seed}
    raw["scheduler"] = {"type": "fifo"}
    return type(spec).from_dict(raw, f"{spec.name} (confirm)")


def _ended(writer: ResultsWriter, stage: SweepSpec) -> int:
    """Trials of this stage (its models and seeds) that ended, as the writer holds them."""
    models = set(stage.families())
    seeds = set(stage.seeds)
    n = 0
    for t in writer.trials.values():
        cols = t.get("config_cols") or {}
        if (cols.get("config.model") in models and cols.get("config.seed") in seeds
                and t.get("status") in ENDED_STATUSES):
            n += 1
    return n


def _run_stage(stage: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: ResultsWriter, *,
               restore: bool) -> bool:
    """Run (or restore, or skip when done) one stage; True when all its trials ended."""
    from ray import tune

    from suite import tuner

    expected = stage.expected_trials() or 0
    if _ended(writer, stage) >= expected:
        return True
    again = restore and tune.Tuner.can_restore(tuner.experiment_path(stage, out))
    tuner.fit(stage, out, datasets, writer, restore=again)
    writer.flush()
    return writer.write_error is None and _ended(writer, stage) >= expected


def run_stages(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: ResultsWriter, *,
               restore: bool = False) -> None:
    """Stage 1 (every family's search), the choice, stage 2 (the confirmation); stops at the
    first stage that did not finish (the driver's closing lines then say resume)."""
    for stage in search_specs(spec):
        if not _run_stage(stage, out, datasets, writer, restore=restore):
            return
    trials, _ = writer.frames()
    chosen = choose(trials, spec)
    write_json({"objective": spec.objective.metric, "mode": spec.objective.mode,
                "chosen": chosen}, out / CHOSEN_FILE)
    if chosen:
        _run_stage(confirm_spec(spec, chosen), out, datasets, writer, restore=restore)


def unconfirmed(spec: SweepSpec, writer: ResultsWriter) -> list[str]:
    """The families whose search ended without one completed trial (all errored or diverged),
    so none of their configurations was chosen or confirmed. Empty while any stage is unfinished:
    the closing line then says resume, not this."""
    if any(_ended(writer, s) < (s.expected_trials() or 0) for s in search_specs(spec)):
        return []
    trials, _ = writer.frames()
    chosen = choose(trials, spec)
    if chosen:
        stage = confirm_spec(spec, chosen)
        if _ended(writer, stage) < (stage.expected_trials() or 0):
            return []
    return [m for m in spec.families() if m not in chosen]
