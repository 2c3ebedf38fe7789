"""Notes of summary.md: which trials failed, are missing, still running or were stopped early."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite.summary.common import (
    USABLE_STATUSES,
    bare,
    col,
    group_cols,
    groups,
    is_missing,
    label,
    numeric,
)


def _describe(trial: pd.Series, axes: Sequence[str]) -> str:
    parts = [f"{bare(c)}={label(trial.get(c))}" for c in axes if c in trial.index]
    return f"{trial['trial_id']} ({', '.join(parts)})" if parts else str(trial["trial_id"])


def _first_line(msg: Any, limit: int = 200) -> str:
    if is_missing(msg) or not str(msg).strip():
        return ""
    line = str(msg).strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _terms_done(trial: pd.Series) -> str:
    v = trial.get("terms_done")
    return "?" if is_missing(v) else str(int(v))


def _status_notes(trials: pd.DataFrame, cols: list[str]) -> list[str]:
    notes: list[str] = []
    status = trials["status"].astype("object")
    for _, t in trials[status == "error"].iterrows():
        why = _first_line(t.get("error")) or "no error message recorded"
        notes.append(f"Trial {_describe(t, cols)} errored after {_terms_done(t)} term(s): "
                     f"{why}. Left out of every table.")
    for _, t in trials[status == "diverged"].iterrows():
        why = _first_line(t.get("error"))
        notes.append(f"Trial {_describe(t, cols)} diverged (non-finite training loss) after "
                     f"{_terms_done(t)} term(s){': ' + why if why else ''}. Left out of every "
                     "table.")
    for _, t in trials[status == "running"].iterrows():
        notes.append(f"Trial {_describe(t, cols)} is still marked running after "
                     f"{_terms_done(t)} term(s): the sweep was interrupted or is in progress; "
                     "`resume` finishes it. Its partial results are left out.")
    for _, t in trials[status == "pending"].iterrows():
        notes.append(f"Trial {_describe(t, cols)} is pending: it never started. `resume` runs it.")
    stopped = trials[status == "stopped"]
    if len(stopped):
        done = numeric(col(stopped, "terms_done"))
        span = f" after {int(done.min())}-{int(done.max())} term(s)" if done.notna().any() else ""
        notes.append(f"{len(stopped)} trial(s) were stopped early by the scheduler{span} and "
                     "count at their validation-selected term: "
                     f"{', '.join(str(t) for t in stopped['trial_id'])}.")
    known = set(USABLE_STATUSES) | {"error", "diverged", "running", "pending"}
    for _, t in trials[~status.isin(known)].iterrows():
        notes.append(f"Trial {_describe(t, cols)} has unknown status {t['status']!r}; left out.")
    return notes


def _no_objective_notes(trials: pd.DataFrame, objective: str) -> list[str]:
    fine = trials[trials["status"].isin(USABLE_STATUSES)]
    bad = fine[~np.isfinite(numeric(col(fine, f"best.{objective}")))]
    # One line per protocol: listing each trial of a protocol that never logs the metric
    # would bury the real failures.
    by = "config.protocol" if "config.protocol" in bad.columns else None
    notes = []
    for p, g in groups(bad, [by] if by else []):
        where = f" under protocol {label(p[0])}" if by else ""
        ids = [str(t) for t in g["trial_id"]]
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        notes.append(f"{len(ids)} completed trial(s){where} have no finite {objective}, so they "
                     f"are left out of the tables ranked by it: {', '.join(ids[:10])}{more}.")
    return notes


def missing_and_failed(trials: pd.DataFrame, expected: int | None,
                       axes: Sequence[str] | None = None,
                       objective: str | None = None) -> list[str]:
    """One note per trial that errored, diverged, is still running or pending (naming its
    configuration and why), one for the early-stopped trials, one per protocol whose usable
    trials lack the objective, and one for the expected trials absent from trials.parquet."""
    notes: list[str] = []
    n = len(trials)
    if n and "status" in trials.columns:
        notes += _status_notes(trials, group_cols(trials, axes, drop=()))
        if objective is not None and f"best.{objective}" in trials.columns:
            notes += _no_objective_notes(trials, objective)
    if expected is not None:
        if n < expected:
            notes.append(f"{expected - n} of {expected} expected trial(s) are absent from "
                         "trials.parquet: the sweep stopped before creating them; `resume` "
                         "runs them.")
        elif n > expected:
            notes.append(f"trials.parquet holds {n} trials, more than the {expected} expected.")
    return notes
