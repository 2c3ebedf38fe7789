"""The reports: summary.md of one sweep folder (`summarize_dir`) and compare.md across folders
(`compare_dirs`, the `ocfb-suite compare` command).

summary.md: read the results, clean them once, run the sections. Cleaning, done once for every
section: only completed or early-stopped trials count; config keys that do not apply to a
trial's model or strategy are blanked and a (configuration, seed) pair counts once (no
pseudo-replicates); each trial is selected on validation (frames.py). The notes name every
trial that failed, is missing or still running; the Findings section repeats, one sentence
each, the verdicts that passed (issue 20, item 7).

compare.md: each folder is a sweep of the same arms (leaderboard rows: a model and strategy,
or a baseline) on other data. The arms are ranked within each (dataset, seed) block on the
verdict metric (each trial at its validation-selected term); the average ranks, a Friedman
test over the blocks and the Nemenyi post-hoc test with its critical-difference diagram
(Demšar 2006) follow, with each dataset's strategy verdicts side by side. Folders whose arms
differ are refused, naming the arms each lacks.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ocfb.names import default_objective, is_test_metric
from suite.results import write_csv, write_text
from suite.spec.vocabulary import usage_error
from suite.summary.frames import (
    STAGE_COL,
    TUNING_BUDGET_COLS,
    USABLE_STATUSES,
    bare,
    canonicalize,
    check_mode,
    col,
    config_col,
    dedupe,
    group_cols,
    groups,
    is_missing,
    label,
    numeric,
    select,
    usable,
    varying_axes,
)
from suite.summary.rendering import fmt, fmt_p, md_table, plot_critical_difference, signed
from suite.summary.sections import (
    BestPerModelSection,
    Context,
    LeaderboardSection,
    PivotsSection,
    ProtocolGapSection,
    StrategiesSection,
    SummarySection,
    ThresholdTermsSection,
    ThresholdVerdictsSection,
)
from suite.summary.stats import ALPHA, average_ranks, critical_difference, friedman, nemenyi
from suite.summary.verdicts import (
    SELECTED,
    VerdictPlan,
    key_rows,
    seed_arm_matrix,
    side_by_side,
    strategy_verdicts,
    verdict_plan,
)

if TYPE_CHECKING:
    from suite.cli import Subcommands

SECTIONS: tuple[SummarySection, ...] = (
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
    findings: list[str] = field(default_factory=list)


def read_sweep(d: Path) -> dict[str, Any]:
    """sweep.json of folder `d` as a dict; a missing or malformed file is refused naming it."""
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
    # too (a leaderboard that silently pooled it would mislead). A tune-then-confirm stage or
    # a tuning budget describes rows; neither is an axis.
    axes = [bare(str(a)) for a in spec.get("axes") or []]
    axes += [a for a in (varying_axes(trials) if len(trials) else []) if a not in axes]
    return [a for a in dict.fromkeys(axes) if config_col(a) in trials.columns
            and config_col(a) not in (STAGE_COL, *TUNING_BUDGET_COLS)]


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
    ok = _confirmed(ok, notes)
    ids = set(ok["trial_id"]) if "trial_id" in ok.columns else set()
    terms_ok = terms[terms["trial_id"].isin(ids)] if not terms.empty else terms
    sel = select(ok, terms_ok, objective, mode) if len(ok) else pd.DataFrame(
        columns=["trial_id", "kind", "sel_term"])
    done = set(ok.loc[ok["status"] == "completed", "trial_id"]) if len(ok) else set()
    terms_full = terms_ok[terms_ok["trial_id"].isin(done)] if not terms_ok.empty else terms_ok
    plan = verdict_plan(spec, objective, protocol, mode, [sel, terms_full])
    return Context(name=str(spec.get("name") or d.name), protocol=protocol, objective=objective,
                   mode=mode, axes=axes, spec=spec, trials=trials, sel=sel, terms=terms,
                   terms_ok=terms_ok, terms_full=terms_full, plots_dir=d / "plots", plan=plan)


def _confirmed(ok: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Under tune-then-confirm (`config.stage`), the tables read the confirmation trials only:
    their seeds played no part in choosing the configuration. Until a confirmation trial has
    ended, the search trials stand in, and a note says so."""
    if STAGE_COL not in ok.columns:
        return ok
    stage = ok[STAGE_COL].astype("object")
    n_search, n_confirm = int((stage == "search").sum()), int((stage == "confirm").sum())
    if n_confirm == 0:
        notes.append(f"Tune-then-confirm sweep: no confirmation trial has ended yet; the tables "
                     f"read the {n_search} search trial(s), whose seeds chose the "
                     "configurations (optimistic).")
        return ok
    notes.append(f"Tune-then-confirm sweep: {n_search} search trial(s) chose each model "
                 f"family's configuration on validation; every table reads the {n_confirm} "
                 "confirmation trial(s), on seeds that played no part in the search. The "
                 "`tuning budget` column says what search each row had.")
    return ok[stage == "confirm"]


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


def _findings(findings: Sequence[str]) -> str:
    """The Findings section: the verdict lines that passed or read equivalent, one sentence
    each, generated from the verdict tables and nothing else."""
    if findings:
        body = "\n".join(f"- {f}" for f in findings)
    else:
        body = ("- No verdict line passed (better / worse at Holm p < 0.05) or read "
                "practically equivalent; see sections 2, 5 and 6.")
    return ("## Findings\n\nOne sentence per verdict line that passed or read practically "
            "equivalent, generated from sections 2 (models), 5 (strategies) and 6 "
            "(thresholds).\n\n" + body)


def summarize_dir(out_dir: str | Path) -> Summary:
    """Summarize a sweep folder (sweep.json, trials.parquet, terms.parquet; partial sweeps too):
    writes summary.md, tables/<name>.csv and plots/*.png atomically and returns them."""
    d = Path(out_dir)
    spec = read_sweep(d)
    notes: list[str] = []
    ctx = build_context(d, spec, notes)
    out = Summary(notes=notes)
    body = []
    for section in SECTIONS:
        part = section.build(ctx)
        out.tables.update(part.tables)
        out.plots += part.plots
        out.findings += part.findings
        body.append(f"## {section.title}\n\n{part.markdown}")
    if out.plots:
        body.append("## Plots\n\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in out.plots))
    out.markdown = "\n\n".join([_header(ctx, notes), _findings(out.findings), *body]) + "\n"
    for name, df in out.tables.items():
        write_csv(df, d / "tables" / f"{name}.csv")
    write_text(out.markdown, d / "summary.md")
    return out


# -- notes: failed, missing, running, stopped trials --------------------------------------------


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


# -- compare.md: the same arms across datasets --------------------------------------------------


@dataclass
class Comparison:
    """What `compare_dirs` produced: blocks (dataset, seed) x arms, average ranks, Friedman,
    Nemenyi p-values, the verdicts side by side, and the markdown of compare.md."""

    metric: str
    blocks: pd.DataFrame
    ranks: pd.Series
    chi2: float
    p: float
    why: str
    nemenyi: pd.DataFrame
    verdicts: pd.DataFrame
    markdown: str = ""
    plots: list[Path] = field(default_factory=list)


def _refuse_different_arms(mats: dict[str, pd.DataFrame]) -> None:
    every = set().union(*(set(m.columns) for m in mats.values()))
    lacking = {name: sorted(every - set(m.columns)) for name, m in mats.items()}
    bad = {n: arms for n, arms in lacking.items() if arms}
    if bad:
        said = "; ".join(f"{n} lacks {', '.join(a)}" for n, a in bad.items())
        raise ValueError(f"the folders' arms differ: {said}. `compare` needs the same arms "
                         "(models and strategies) on every dataset")


def _verdicts_per_dataset(ctxs: dict[str, Context], plan: VerdictPlan) -> pd.DataFrame:
    """Each dataset's strategy verdict lines (section 5) on the common metric, one column per
    dataset: 'difference [CI]: verdict'."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for name, ctx in ctxs.items():
        trained = ctx.sel[ctx.sel["kind"] == "trained"]
        if config_col("strategy") not in trained or trained[config_col("strategy")].nunique() < 2:
            continue
        comp, _ = strategy_verdicts(trained, ctx.terms_full, plan)
        key = side_by_side(key_rows(comp, plan), plan) if len(comp) else comp
        for _, r in key.iterrows():
            at = "selected term" if r["budget"] == SELECTED else "last term"
            ci = "" if is_missing(r["ci_low"]) else f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
            # one cell per (model group, comparison, budget): several groups never overwrite
            group = "" if is_missing(r.get("model")) else label(r["model"])
            out.setdefault((group, f"{r['a']} vs {r['b']}", at), {})[name] = (
                f"{signed(r['diff'])}{ci}: {r['verdict']}")
    several = len({g for g, _, _ in out}) > 1
    return pd.DataFrame([{**({"model": g} if several else {}), "comparison": c, "budget": b,
                          **cells} for (g, c, b), cells in out.items()])


def _common_plan(ctxs: dict[str, Context], metric: str | None) -> VerdictPlan:
    first = next(iter(ctxs.values()))
    m = metric or first.plan.metric
    for name, ctx in ctxs.items():
        if f"sel.{m}" not in ctx.sel.columns:
            raise ValueError(f"{name}: no trial records `{m}`; pass --metric with a metric "
                             "every folder holds (e.g. test_hr@10)")
    return VerdictPlan(m, None, first.plan.rope, first.mode)


def _compare_md(c: Comparison, names: list[str], cd: float) -> str:
    n, k = len(c.blocks), c.blocks.shape[1]
    ranks = md_table(["arm", "average rank (1 = best)", f"mean `{c.metric}`"],
                     [[a, f"{r:.2f}", fmt(c.blocks[a].mean())] for a, r in c.ranks.items()])
    test = (f"not run ({c.why})" if c.why else f"chi2 {fmt(c.chi2, 2)}, p {fmt_p(c.p)}")
    lines = [f"# Across datasets: {', '.join(names)}", "",
             f"- Metric: `{c.metric}` (test), each trial at its validation-selected term.",
             f"- Blocks: {n} (dataset, seed) pairs with every arm; {k} arms.", "",
             "## Average ranks", "", ranks, "",
             f"Friedman over the (dataset, seed) blocks: {test}. Nemenyi critical difference "
             f"at alpha {ALPHA:g}: {fmt(cd, 2)} ranks; figure `plots/critical_difference.png`; "
             "p-values `tables/compare_nemenyi.csv`."]
    if len(c.verdicts):
        cols = [*(["model"] if "model" in c.verdicts.columns else []), "comparison", "budget",
                *[x for x in names if x in c.verdicts.columns]]
        rows = c.verdicts.reindex(columns=cols).fillna("n/a").to_numpy().tolist()
        lines += ["", "## Strategy verdicts per dataset", "",
                  f"Section 5 of each folder's summary, on `{c.metric}`.", "",
                  md_table(cols, rows)]
    return "\n".join(lines) + "\n"


def compare_dirs(dirs: Sequence[str | Path], out: str | Path,
                 metric: str | None = None) -> Comparison:
    """Compare the same arms across sweep folders (one dataset each); writes compare.md,
    tables/compare_*.csv and plots/critical_difference.png under `out`."""
    if len(dirs) < 2:
        raise ValueError(f"compare needs two or more sweep folders, got {len(dirs)}")
    ctxs: dict[str, Context] = {}
    for d in map(Path, dirs):
        name = d.name if d.name not in ctxs else str(d)
        ctxs[name] = build_context(d, read_sweep(d), [])
    plan = _common_plan(ctxs, metric)
    mats = {n: seed_arm_matrix(ctx.sel, ctx.axes, plan.metric) for n, ctx in ctxs.items()}
    _refuse_different_arms(mats)
    arms = sorted(next(iter(mats.values())).columns)
    blocks = pd.concat({n: m[arms] for n, m in mats.items()}, names=["dataset", "seed"]).dropna()
    chi2, p, why = friedman(blocks.to_numpy(float))
    c = Comparison(plan.metric, blocks, average_ranks(blocks, plan.mode), chi2, p, why,
                   nemenyi(blocks) if not why else pd.DataFrame(),
                   _verdicts_per_dataset(ctxs, plan))
    o = Path(out)
    cd = critical_difference(len(arms), len(blocks)) if len(blocks) else math.nan
    if not c.nemenyi.empty:
        c.plots.append(plot_critical_difference(
            c.ranks, c.nemenyi, cd, f"{plan.metric}: average rank over {len(blocks)} "
            "(dataset, seed) blocks", o / "plots" / "critical_difference.png"))
    c.markdown = _compare_md(c, list(ctxs), cd)
    write_csv(blocks.reset_index(), o / "tables" / "compare_blocks.csv")
    write_csv(c.ranks.rename("average_rank").rename_axis("arm").reset_index(),
              o / "tables" / "compare_ranks.csv")
    write_csv(c.nemenyi.rename_axis("arm").reset_index(), o / "tables" / "compare_nemenyi.csv")
    write_csv(c.verdicts, o / "tables" / "compare_verdicts.csv")
    write_text(c.markdown, o / "compare.md")
    return c


def cmd_compare(args: argparse.Namespace) -> int:
    """`ocfb-suite compare DIR DIR ... --out DIR`."""
    from suite.folders import FolderError, check_results, read_sweep_json

    try:
        for d in args.dirs:
            read_sweep_json(Path(d))
            check_results(Path(d), need_trials=True)
        c = compare_dirs(args.dirs, args.out, args.metric)
    except (FolderError, ValueError) as err:
        return usage_error(str(err))
    print(f"wrote {Path(args.out) / 'compare.md'} (Friedman p {fmt_p(c.p)} over "
          f"{len(c.blocks)} blocks)")
    return 0


def register_cli(sub: Subcommands) -> None:
    """Add the `compare` subcommand to the CLI."""
    p = sub.add_parser("compare", help="the same arms across datasets: ranks, Friedman, "
                       "critical-difference diagram, verdicts side by side")
    p.add_argument("dirs", nargs="+", help="two or more sweep output folders, one per dataset")
    p.add_argument("--out", required=True, help="folder for compare.md, tables/ and plots/")
    p.add_argument("--metric", default=None,
                   help="test metric to rank on (default: the first folder's verdict metric)")
    p.set_defaults(func=cmd_compare)
