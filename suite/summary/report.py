"""summary.md of a sweep folder: read the results, clean them once, run the sections.

Cleaning, done once for every section: only completed or early-stopped trials count; config
keys that do not apply to a trial's model or strategy are blanked and a (configuration, seed)
pair counts once (no pseudo-replicates); each trial is selected on validation (selection.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ocfb.names import default_objective, is_test_metric
from suite.results import write_csv, write_text
from suite.summary.common import bare, cfg, check_mode, usable, varying_axes
from suite.summary.notes import missing_and_failed
from suite.summary.sections import (
    BestPerModelSection,
    Context,
    LeaderboardSection,
    PivotsSection,
    Section,
    ThresholdTermsSection,
)
from suite.summary.selection import canonicalize, dedupe, select
from suite.summary.verdicts import ProtocolGapSection, StrategiesSection, ThresholdVerdictsSection

SECTIONS: tuple[Section, ...] = (
    LeaderboardSection(), BestPerModelSection(), ThresholdTermsSection(), PivotsSection(),
    StrategiesSection(), ThresholdVerdictsSection(), ProtocolGapSection(),
)
SECTION_TITLES: tuple[str, ...] = tuple(s.title for s in SECTIONS)


@dataclass
class Summary:
    """Everything `summarize_dir` produced: the tables (also written as CSV), the PNG paths, the
    markdown of summary.md and the notes about missing or failed trials."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    markdown: str = ""
    notes: list[str] = field(default_factory=list)


def _read_sweep(d: Path) -> dict[str, Any]:
    p = d / "sweep.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: {d} is not a sweep output folder")
    try:
        spec = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON: {err}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{p}: expected a JSON object")
    return spec


def _read_parquet(path: Path, notes: list[str]) -> pd.DataFrame:
    if not path.is_file():
        notes.append(f"{path.name} is missing: the sweep has not recorded any {path.stem} yet.")
        return pd.DataFrame()
    return pd.read_parquet(path)


def _with_config(terms: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """terms with every config.<key> column of trials (an older or partial terms file may lack
    some), trials' values winning so both carry the same canonical configuration."""
    if terms.empty or trials.empty or "trial_id" not in trials.columns:
        return terms
    need = [c for c in trials.columns if c.startswith("config.")]
    return terms.drop(columns=[c for c in need if c in terms.columns]).merge(
        trials[["trial_id", *need]], on="trial_id", how="left")


def _objective(spec: dict[str, Any], protocol: str, notes: list[str]) -> tuple[str, str]:
    obj = spec.get("objective") or {}
    metric = str(obj.get("metric") or default_objective(protocol))
    mode = str(obj.get("mode") or "max")
    check_mode(mode)
    if is_test_metric(metric):
        notes.append(f"The sweep's objective `{metric}` is a test metric; test never selects, "
                     f"so this summary selects on `{default_objective(protocol)}` (validation).")
        metric, mode = default_objective(protocol), "max"
    return metric, mode


def _axes(spec: dict[str, Any], trials: pd.DataFrame) -> list[str]:
    # The runner's axes first; any other config key that varies among the trials is an axis
    # too (a leaderboard that silently pooled it would mislead).
    axes = [bare(str(a)) for a in spec.get("axes") or []]
    axes += [a for a in (varying_axes(trials) if len(trials) else []) if a not in axes]
    return [a for a in dict.fromkeys(axes) if cfg(a) in trials.columns]


def build_context(d: Path, spec: dict[str, Any], notes: list[str]) -> Context:
    """Read trials and terms, clean them (canonical configs, one trial per config and seed),
    select every usable trial on validation."""
    trials = canonicalize(_read_parquet(d / "trials.parquet", notes))
    terms = _with_config(_read_parquet(d / "terms.parquet", notes), trials)
    protocol = str(spec.get("protocol") or "holdout")
    objective, mode = _objective(spec, protocol, notes)
    axes = _axes(spec, trials)
    notes += missing_and_failed(trials, _expected(spec), axes, objective)
    ok, dup_notes = dedupe(usable(trials))
    notes += dup_notes
    ids = set(ok["trial_id"]) if "trial_id" in ok.columns else set()
    terms_ok = terms[terms["trial_id"].isin(ids)] if not terms.empty else terms
    sel = select(ok, terms_ok, objective, mode) if len(ok) else pd.DataFrame(
        columns=["trial_id", "kind", "sel_term"])
    done = set(ok.loc[ok["status"] == "completed", "trial_id"]) if len(ok) else set()
    terms_full = terms_ok[terms_ok["trial_id"].isin(done)] if not terms_ok.empty else terms_ok
    return Context(name=str(spec.get("name") or d.name), protocol=protocol, objective=objective,
                   mode=mode, axes=axes, spec=spec, trials=trials, sel=sel, terms=terms,
                   terms_ok=terms_ok, terms_full=terms_full, plots_dir=d / "plots")


def _expected(spec: dict[str, Any]) -> int | None:
    e = spec.get("expected_trials")
    return None if e is None else int(e)


def _status_counts(trials: pd.DataFrame) -> str:
    if trials.empty or "status" not in trials.columns:
        return "none recorded"
    counts = trials["status"].value_counts()
    order = ["completed", "stopped", "running", "pending", "error", "diverged"]
    keys = [k for k in order if k in counts.index] + [k for k in counts.index if k not in order]
    return ", ".join(f"{int(counts[k])} {k}" for k in keys)


def _header(ctx: Context, notes: list[str]) -> str:
    expected = _expected(ctx.spec)
    lines = [
        f"# Sweep summary: {ctx.name}", "",
        f"- Objective: `{ctx.objective}` ({ctx.mode}imize), protocol: `{ctx.protocol}`; "
        "validation selects, test reports",
        f"- Trials: {len(ctx.trials)} present" + (f" of {expected} expected" if expected
                                                 is not None else "")
        + f" ({_status_counts(ctx.trials)}); {len(ctx.sel)} usable for the statistics",
        f"- Axes: {', '.join(ctx.axes) if ctx.axes else 'none'}",
        "- Every number: mean +- 95% confidence interval (t) and n over seeds. Tables as CSV in "
        "`tables/`, plots in `plots/`.", "", "## Notes", "",
        "\n".join(f"- {n}" for n in notes) if notes else (
            "- Every trial completed" + (", none is missing." if expected is not None else ".")),
    ]
    return "\n".join(lines)


def summarize_dir(out_dir: str | Path) -> Summary:
    """Summarize a sweep folder (sweep.json, trials.parquet, terms.parquet; partial sweeps too):
    writes summary.md, tables/<name>.csv and plots/*.png atomically and returns them."""
    d = Path(out_dir)
    spec = _read_sweep(d)
    notes: list[str] = []
    ctx = build_context(d, spec, notes)
    out = Summary(notes=notes)
    body = []
    for section in SECTIONS:
        part = section.build(ctx)
        out.tables.update(part.tables)
        out.plots += part.plots
        body.append(f"## {section.title}\n\n{part.markdown}")
    if out.plots:
        body.append("## Plots\n\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in out.plots))
    out.markdown = "\n\n".join([_header(ctx, notes), *body]) + "\n"
    for name, df in out.tables.items():
        write_csv(df, d / "tables" / f"{name}.csv")
    write_text(out.markdown, d / "summary.md")
    return out
