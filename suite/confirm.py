"""Tune-then-confirm: one Ray Tune experiment per searched family, then one confirmation.

A sweep file with `tune_per_model: {proposals: N, confirm_seeds: [...]}` (checked by
`suite.spec`) gives every model family the same budget (Dacrema et al. 2019, Rendle et al.
2020: an untuned baseline makes a comparison with a tuned model meaningless; DaisyRec 2.0 tunes
every model with the same Bayesian budget). This module derives each stage's own `SweepSpec`
(`search_specs`, `confirm_spec`) and runs them in order inside one `run_sweep` (one results
writer, one output folder, one lock):

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

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from suite.spec import STAGE_COLUMN, SweepSpec, parse_layers

if TYPE_CHECKING:
    from suite.results import ResultsWriter

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
                and t.get("status") in ENDED):
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
