"""Tune-then-confirm, run: one Ray Tune experiment per searched family, then one confirmation.

`suite.spec.tuning` derives the stages' sweeps from a file with `tune_per_model`; this module
runs them in order inside one `run_sweep` (one results writer, one output folder, one lock):

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

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ocfb.config import RunConfig
from suite.spec import SweepSpec, parse_layers
from suite.spec.tuning import STAGE_COLUMN, confirm_spec, families, search_specs

CHOSEN_FILE = "chosen.json"
ENDED = ("completed", "stopped", "diverged", "error")


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
    is left out, with a note on stderr."""
    metric, mode = spec.objective.metric, spec.objective.mode
    col = f"best.{metric}"
    out: dict[str, dict[str, Any]] = {}
    for m in families(spec):
        keys = list(spec.per_model.get(m, {}))
        if not keys:
            out[m] = {}
            continue
        rows = trials
        if not rows.empty and col in rows:
            rows = rows[(rows["config.model"] == m) & (rows[STAGE_COLUMN] == "search")
                        & (rows["status"] == "completed") & rows[col].notna()]
        if rows.empty or col not in rows:
            print(f"ocfb-suite: error: no search trial of {m} completed with {metric}; it is "
                  f"not confirmed (see {STAGE_COLUMN} and status in trials.parquet)",
                  file=sys.stderr)
            continue
        cols = [f"config.{k}" for k in keys]
        means = rows.groupby(cols, sort=False, dropna=False)[col].mean()
        best = means.idxmax() if mode == "max" else means.idxmin()
        best = best if isinstance(best, tuple) else (best,)
        out[m] = {k: _plain(k, v) for k, v in zip(keys, best, strict=True)}
    return out


def _ended(writer: Any, stage: SweepSpec) -> int:
    """Trials of this stage (its models and seeds) that ended, as the writer holds them."""
    models = set(families(stage))
    seeds = set(stage.seeds)
    n = 0
    for t in writer.trials.values():
        cols = t.get("config_cols") or {}
        if (cols.get("config.model") in models and cols.get("config.seed") in seeds
                and t.get("status") in ENDED):
            n += 1
    return n


def _run_stage(stage: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: Any, *,
               restore: bool) -> bool:
    """Run (or restore, or skip when done) one stage; True when all its trials ended."""
    from ray import tune

    from suite import tuner

    expected = stage.expected_trials() or 0
    if _ended(writer, stage) >= expected:
        return True
    again = restore and tune.Tuner.can_restore(tuner.experiment_path(stage, out))
    tuner.build_tuner(stage, out, datasets, restore=again).fit()
    writer.flush()
    return writer.write_error is None and _ended(writer, stage) >= expected


def run_stages(spec: SweepSpec, out: Path, datasets: dict[tuple, Any], writer: Any, *,
               restore: bool = False) -> None:
    """Stage 1 (every family's search), the choice, stage 2 (the confirmation); stops at the
    first stage that did not finish (the driver's closing lines then say resume)."""
    from suite.results import write_json

    for stage in search_specs(spec):
        if not _run_stage(stage, out, datasets, writer, restore=restore):
            return
    trials, _ = writer.frames()
    chosen = choose(trials, spec)
    write_json({"objective": spec.objective.metric, "mode": spec.objective.mode,
                "chosen": chosen}, out / CHOSEN_FILE)
    if chosen:
        _run_stage(confirm_spec(spec, chosen), out, datasets, writer, restore=restore)


def chosen_config(spec: SweepSpec, model: str, values: dict[str, Any], seed: int) -> RunConfig:
    """The RunConfig a confirmation trial of `model` runs (for readers of chosen.json)."""
    return spec.run_config({"model": model, **values, "seed": seed})
