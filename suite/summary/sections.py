"""The sections of summary.md: each builds its tables, renders markdown, optionally plots, and
hands its passing verdicts to the Findings section.

A new section is a new class with a `title` and `build(ctx) -> Part`, added to `SECTIONS` in
suite/summary/report.py; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ocfb.names import PROTOCOLS, default_objective
from suite.summary.frames import (
    HOLDOUT_PLOT_METRICS,
    PAPER_PLOT_METRICS,
    col,
    config_col,
    label,
    ordered,
    report_metric,
)
from suite.summary.rendering import (
    finding,
    fmt,
    fmt_p,
    grid_rows,
    md_table,
    plot_heatmap,
    plot_metrics_vs_term,
    plot_strategy_differences,
    pm,
    render_best,
    render_leaderboard,
    verdict_line,
    verdict_table,
)
from suite.summary.stats import ALPHA, MIN_SEEDS
from suite.summary.tables import (
    axis_by_term,
    best_per_model,
    leaderboard,
    pivot,
    protocol_gap,
    to_grid,
)
from suite.summary.verdicts import (
    SELECTED,
    VerdictPlan,
    configs_per_seed,
    key_rows,
    lead,
    model_budget,
    model_verdicts,
    side_by_side,
    strategy_verdicts,
    threshold_verdicts,
)


@dataclass
class Context:
    """What every section reads: the sweep's settings and its frames, already cleaned.

    `sel`: one row per usable, deduplicated trial (frames.select); `terms_ok`: their per-term
    rows; `terms_full`: those of trials that ran every term (per-term tables leave early-stopped
    trials out, else later terms would average the survivors only); `plan`: what the verdicts
    compare on."""

    name: str
    protocol: str
    objective: str
    mode: str
    axes: list[str]
    spec: dict[str, Any]
    trials: pd.DataFrame
    sel: pd.DataFrame
    terms: pd.DataFrame
    terms_ok: pd.DataFrame
    terms_full: pd.DataFrame
    plots_dir: Path
    plan: VerdictPlan


@dataclass
class Part:
    """A built section: its markdown, the tables to write as CSV, the PNGs it wrote, and one
    sentence per verdict that passed (for the Findings section)."""

    markdown: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


class SummarySection(Protocol):
    """One section of summary.md."""

    title: str

    def build(self, ctx: Context) -> Part:
        """Tables, markdown and plots of this section."""
        ...


def _grid(cells: pd.DataFrame, row_key: str, col_key: str,
          best: tuple[Any, Any] | None) -> tuple[pd.DataFrame, list[list[Any]]]:
    grid, ci, n = (to_grid(cells, row_key, col_key, v) for v in ("mean", "ci95", "n"))
    return grid, grid_rows(grid, ci, n, best)


class LeaderboardSection:
    """Configurations ranked on validation, test reported at the selected and final terms."""

    title = "1. Leaderboard"

    def build(self, ctx: Context) -> Part:
        """Top configurations in the text, every one in the CSV; baselines as reference rows."""
        board = leaderboard(ctx.sel, ctx.objective, ctx.mode, ctx.axes)
        if board.empty:
            return Part(f"_Not applicable: no completed trial has a finite `{ctx.objective}` "
                        "(validation) yet._")
        full = leaderboard(ctx.sel, ctx.objective, ctx.mode, ctx.axes, top=None)
        top = lead(board, ctx.sel, ctx.objective, ctx.mode, ctx.plan.rope)
        text = render_leaderboard(board, ctx.objective, ctx.mode, top)
        return Part(text + _paper_test_caveat(ctx, board), {"leaderboard": full})


def _protocols(ctx: Context) -> list[Any]:
    """The protocols the usable trials ran (the sweep's own where none is recorded)."""
    found = [p for p in ordered(col(ctx.sel, "config.protocol")) if p in PROTOCOLS]
    return found or [ctx.protocol]


# DESIGN §4: under `paper` OCF-B rewrites the test negatives too, so each arm's test set is its
# own; results/protocol-gap measures what that adds (test AUC +0.108 paper vs -0.001 holdout).
PAPER_CAVEAT = ("under `paper` each arm is scored on the test set its own replacements rewrote "
                "(`static` and baselines keep term 0's), so the difference includes that "
                "protocol's artefact")


def _paper_test_caveat(ctx: Context, rows: pd.DataFrame, protocol: str | None = None) -> str:
    """A table under `paper` with trained rows says its test columns are not on one test set."""
    if "paper" not in ([protocol] if protocol else _protocols(ctx)) or "trained" not in set(
            col(rows, "kind")):
        return ""
    return ("\n\nUnder `paper`, OCF-B rewrites the test negatives every term (the paper's "
            "protocol): each row's test columns are on the test set its own replacements "
            "rewrote, easier each term, while `static` and baselines (fitted once) keep term "
            "0's. Validation negatives are frozen at term 0: compare rows on validation.")


def _paper_caveat(ctx: Context) -> Callable[[pd.Series], str]:
    """A verdict row's caveat for its Finding: PAPER_CAVEAT when the row is under `paper` (the
    sweep's one protocol, or the row's `protocol` where the sweep varies it)."""
    only_paper = _protocols(ctx) == ["paper"]

    def caveat(r: pd.Series) -> str:
        return PAPER_CAVEAT if only_paper or r.get("protocol") == "paper" else ""

    return caveat


class BestPerModelSection:
    """Each model's configuration chosen on validation; its test numbers, nested estimate."""

    title = "2. Best per model type"

    def build(self, ctx: Context) -> Part:
        """One table per protocol present (a protocol axis runs both)."""
        protos = _protocols(ctx) if len(ctx.sel) else []
        if not protos:
            return Part("_Not applicable: no completed trial yet._")
        out, texts = Part(""), []
        for p in protos:
            sub = ctx.sel if len(protos) == 1 else ctx.sel[col(ctx.sel, "config.protocol") == p]
            obj = ctx.objective
            if not pd.to_numeric(col(sub, f"sel.{obj}"), errors="coerce").notna().any():
                obj = default_objective(p)
            best = best_per_model(sub, ctx.terms_ok, obj, ctx.mode, p, ctx.axes)
            if best.empty:
                texts.append(f"_Protocol {p}: no completed trial has `{obj}`._")
                continue
            out.tables["best_per_model" if len(protos) == 1 else f"best_per_model_{p}"] = best
            texts.append(render_best(best, p, obj) + _paper_test_caveat(ctx, best, p))
            if len(protos) == 1:  # the plan's metrics belong to the sweep's one protocol
                verdicts = _model_verdict_part(ctx, sub, best)
                texts.append(verdicts.markdown)
                out.tables.update(verdicts.tables)
                out.findings += verdicts.findings
            metrics = [obj, *(PAPER_PLOT_METRICS if p == "paper" else
                              (report_metric(obj), *HOLDOUT_PLOT_METRICS))]
            png = plot_metrics_vs_term(
                ctx.terms_full, best, metrics,
                f"{ctx.name}: best configuration per model type ({p} protocol), mean and 95% "
                "CI band over seeds; dashed: baselines", ctx.plots_dir / f"metrics_vs_term_{p}.png")
            out.plots += [png] if png else []
        out.markdown = "\n\n".join(texts)
        return out


def _model_verdict_part(ctx: Context, sel: pd.DataFrame, best: pd.DataFrame) -> Part:
    """Section 2's verdicts: each model's best configuration against the others, on seeds, with
    what tuning each had (a searched model against a fixed one is said, not hidden)."""
    comp = model_verdicts(sel, best, ctx.plan)
    if comp.empty:
        return Part("_Model verdicts: fewer than two models share a seed with a finite "
                    f"`{ctx.plan.metric}`._")
    plan, why = _section_plan(comp, ctx.plan)
    key = side_by_side(comp, plan)
    budgets = "; ".join(
        f"{m}: {model_budget(best, m) or 'tuning not recorded'}, best of "
        f"{configs_per_seed(sel, m)} configuration(s) per seed" for m in best["model"])
    unequal = bool(comp["budgets_differ"].any())
    fairness = ("**These models did not have the same tuning budget**: a model picked among "
                "more configurations had more chances on validation. " if unequal else
                "Every model had the same tuning budget (popularity has nothing to tune). ")
    intro = ("**Model verdicts**: each model's best configuration against the others on the "
             "same seeds, at each trial's validation-selected term (a baseline has one). "
             f"Tuning: {budgets}. {fairness}{why}{_how(plan, 'validation-selected term')}")
    part = _verdict_part(key, plan, intro, "section 2", _paper_caveat(ctx))
    part.tables = {"model_verdicts": key}
    return part


def _trained_terms(ctx: Context) -> pd.DataFrame:
    """Per-term rows of trained trials that ran every term (baselines have no terms)."""
    t = ctx.terms_full
    if "config.model" in t.columns:
        t = t[~t["trial_id"].isin(ctx.sel.loc[ctx.sel["kind"] == "baseline", "trial_id"])]
    return t


def _pooled(t: pd.DataFrame) -> str:
    models = [str(m) for m in ordered(col(t, "config.model").dropna())]
    return f"; pools models {', '.join(models)}" if len(models) > 1 else ""


class ThresholdTermsSection:
    """The objective at every (threshold, term) cell: the term-count ablation read off history."""

    title = "3. Threshold x terms"

    def build(self, ctx: Context) -> Part:
        """Table, and a heat map when more than one threshold ran."""
        t, scope = _trained_terms(ctx), "trials that ran every term; early-stopped ones left out"
        if config_col("strategy") in t.columns and t[config_col("strategy")].nunique() > 1:
            t, scope = t[t[config_col("strategy")] == "ocfb"], "ocfb trials only"
        scope += _pooled(t)
        if t.empty or ctx.objective not in t.columns or config_col("threshold") not in t.columns:
            return Part("_Not applicable: no per-term history of a completed trial with "
                        f"`{ctx.objective}` yet._")
        cells = axis_by_term(t, "threshold", ctx.objective, ctx.mode)
        best = cells.attrs.get("best")
        grid, rows = _grid(cells, "term", "threshold", None if best is None else (best[1],
                                                                                  best[0]))
        lines = [f"`{ctx.objective}` at every term for every threshold ({scope}; each seed "
                 "averaged over the other axes first, then mean +- 95% CI over seeds, n = "
                 "seeds). Read off the per-term history: one trial covers every term count. "
                 "Term 0 is plain negative sampling; term m has had m terms' more epochs.", "",
                 md_table(["term", *[f"threshold={c}" for c in grid.columns]], rows)]
        if best is not None:
            lines += ["", f"Best cell (bold): threshold={label(best[0])} at term {best[1]}, "
                          f"{fmt(cells.attrs['best_value'])}."]
        part = Part("\n".join(lines), {"threshold_x_terms": cells})
        if cells["threshold"].nunique() > 1:
            png = plot_heatmap(cells, "threshold", ctx.objective, ctx.mode,
                               f"{ctx.name}: {ctx.objective} by threshold and term ({scope})",
                               ctx.plots_dir / "threshold_x_terms.png")
            part.plots += [png] if png else []
        return part


class PivotsSection:
    """negatives x model, and every pivot named in sweep.json."""

    title = "4. Negatives x model and other pivots"

    def build(self, ctx: Context) -> Part:
        """One grid per pair of axes, each trial at its validation-selected term."""
        pairs: list[tuple[str, str]] = [("negatives", "model")]
        for pair in ctx.spec.get("pivots") or []:
            if isinstance(pair, list | tuple) and len(pair) == 2:
                t = (str(pair[0]).removeprefix("config."), str(pair[1]).removeprefix("config."))
                pairs += [t] if t not in pairs else []
        out, texts = Part(""), []
        for a, b in pairs:
            missing = [k for k in (a, b) if config_col(k) not in ctx.trials.columns]
            if missing or ctx.sel.empty:
                why = (f"no column(s) {', '.join(config_col(k) for k in missing)} in "
                       "trials.parquet" if missing else "no completed trial yet")
                texts.append(f"### {a} x {b}\n\n_Skipped: {why}._")
                continue
            cells = pivot(ctx.sel, a, b, ctx.objective, ctx.mode)
            out.tables[f"{a}_x_{b}"] = cells
            texts.append(self._render(cells, a, b, ctx.objective))
        out.markdown = "\n\n".join(texts)
        return out

    @staticmethod
    def _render(cells: pd.DataFrame, a: str, b: str, objective: str) -> str:
        left = cells.attrs.get("left_out") or []
        note = (f" Reference baselines ({', '.join(left)}) have no `{a}` or `{b}` and are "
                "never pooled into a cell: see the leaderboard." if left else "")
        if cells.empty:
            return f"### {a} x {b}\n\n_No completed trial has `{objective}`._{note}"
        grid, rows = _grid(cells, a, b, cells.attrs.get("best"))
        return "\n".join([
            f"### {a} x {b}", "", f"`{objective}` (each trial at its validation-selected term): "
            "each seed averaged over the other axes first, then mean +- 95% CI over seeds, "
            f"n = seeds; best cell in bold.{note}", "",
            md_table([f"{a} \\ {b}", *grid.columns], rows)])


def _how(plan: VerdictPlan, budgets: str = "last term and validation-selected term") -> str:
    beside = (f" `{plan.beside}` is shown beside each line, and a line says when the two "
              "disagree." if plan.beside else "")
    return (f"Verdicts on `{plan.metric}` (test).{beside} Pairs are matched on seed only (an "
            "arm's value at a seed is the mean over its configurations at that seed); "
            "difference = first minus second with its 95% t interval. The lines below "
            f"({budgets}) are one Holm family per metric; a per-term CSV, where there is one, "
            f"is exploratory (Holm within each term). Outcomes: better / worse (Holm paired "
            f"t p < {ALPHA}), practically equivalent (Holm TOST p < {ALPHA} for |difference| < "
            f"{plan.rope:g}), else inconclusive with the smallest effect the seeds could detect "
            f"(paired t, 80% power, alpha {ALPHA}); fewer than {MIN_SEEDS} seeds: no test.")


def _section_plan(comp: pd.DataFrame, plan: VerdictPlan) -> tuple[VerdictPlan, str]:
    """The plan, or (where no line of this section has the verdict metric: full ranking is not
    recorded at term 0) the metric beside it alone, with a sentence saying so."""
    if plan.beside is None or (comp["metric"] == plan.metric).any():
        return plan, ""
    return (VerdictPlan(plan.beside, None, plan.rope, plan.mode),
            f"`{plan.metric}` is not recorded for these comparisons (full ranking runs at the "
            f"selected and last terms only), so they use `{plan.beside}`. ")


def _verdict_part(key: pd.DataFrame, plan: VerdictPlan, intro: str, section: str,
                  caveat: Callable[[pd.Series], str] | None = None) -> Part:
    """Verdict lines, their table and their findings; `caveat(row)`, where it says something,
    ends that row's finding (a Finding travels without the section's text around it)."""
    show_model = key["model"].nunique(dropna=True) > 1
    lines = [intro, ""] + [f"- {verdict_line(r, plan, show_model)}" for _, r in key.iterrows()]
    lines += ["", verdict_table(key, plan)]
    found = []
    for _, r in key.iterrows():
        f, extra = finding(r, plan, section, show_model), caveat(r) if caveat else ""
        found += [f"{f[:-1]}; {extra}." if extra else f] if f else []
    return Part("\n".join(lines), findings=found)


class StrategiesSection:
    """Each strategy vs ocfb (and vs resample-all) at every term and at the selected term."""

    title = "5. Strategy comparison at equal budget"

    def build(self, ctx: Context) -> Part:
        """Verdict lines, the key table, Friedman, the per-term difference figure."""
        trained = ctx.sel[ctx.sel["kind"] == "trained"]
        if (config_col("strategy") not in trained.columns
                or trained[config_col("strategy")].nunique() < 2):
            return Part("_Not applicable: the completed trials do not vary `strategy`._")
        terms = ctx.terms_full[ctx.terms_full["trial_id"].isin(trained["trial_id"])]
        comp, fried = strategy_verdicts(trained, terms, ctx.plan)
        if comp.empty:
            return Part("_No pair of strategies shares a seed with a finite "
                        f"`{ctx.plan.metric}`: nothing to compare._")
        plan, why = _section_plan(comp, ctx.plan)
        key = side_by_side(key_rows(comp, plan), plan)
        part = _verdict_part(key, plan, "Each trial at the same term (equal budget) and at "
                             f"its validation-selected term. {why}{_how(plan)}", "section 5",
                             _paper_caveat(ctx))
        part.markdown += "\n\n" + _friedman_text(fried, plan.metric) + (
            "\n\nEvery term: `tables/strategies_by_term.csv`; figure: "
            "`plots/strategy_differences.png` (arm minus ocfb, mean and 95% CI band).")
        part.tables = {"strategies": key, "strategies_by_term": comp,
                       "strategies_friedman": fried}
        # Full-ranking metrics exist at the last term only: the figure uses the metric with
        # the most terms.
        per_term = comp[comp["budget"] != SELECTED].groupby("metric")["budget"].nunique()
        shown = str(per_term.idxmax()) if len(per_term) else ctx.plan.metric
        rows = comp[(comp["metric"] == shown) & (comp["model"].astype(str) ==
                                                 str(comp["model"].iat[0]))]
        png = plot_strategy_differences(
            rows, shown, "ocfb", f"{ctx.name}: each strategy minus ocfb on {shown}",
            ctx.plots_dir / "strategy_differences.png")
        part.plots += [png] if png else []
        return part


def _friedman_text(fried: pd.DataFrame, metric: str) -> str:
    rows = fried[fried["metric"] == metric] if len(fried) else fried
    if rows.empty:
        return "Friedman test across all arms: not run (no budget with every arm)."
    out = []
    for _, g in rows.groupby("model", sort=False, dropna=False):
        terms = g[g["budget"] != SELECTED]
        picks = [*g[g["budget"] == SELECTED].itertuples(), *terms.tail(1).itertuples()]
        for r in picks:
            where = ("at the selected term" if r.budget == SELECTED else f"at term {r.budget}")
            where += f" ({r.model})" if rows["model"].nunique() > 1 else ""
            out.append(f"Friedman on `{metric}` across {r.arms} {where}: " + (
                f"not run ({r.why_no_test})." if r.why_no_test else
                f"chi2 {fmt(r.chi2, 2)}, p {fmt_p(r.p)} ({r.n_seeds} seeds)."))
    return "\n".join(f"- {x}" for x in out)


class ThresholdVerdictsSection:
    """Does OCF-B beat its control, per threshold, at equal budget?"""

    title = "6. Thresholds against their control"

    def build(self, ctx: Context) -> Part:
        """Verdict lines per threshold at the last and the selected term; every term as CSV."""
        t = _trained_terms(ctx)
        strategy = col(t, "config.strategy")
        if strategy.nunique() > 1:
            t = t[strategy.isin(["ocfb", "static"])]
            if col(t, "config.threshold").nunique() == 1:
                # One threshold: its line is section 5's "ocfb vs static", and a second Holm
                # family for the same pair could read it differently.
                return Part("_Not applicable: the sweep ran one threshold; ocfb against static "
                            "at equal epochs is in section 5._")
        if t.empty or config_col("threshold") not in t.columns or t["term"].max() < 1:
            return Part("_Not applicable: no completed OCF-B trial with terms after term 0._")
        sel = ctx.sel[ctx.sel["trial_id"].isin(t["trial_id"])]
        comp = threshold_verdicts(sel, t, ctx.plan)
        if comp.empty:
            return Part(f"_No threshold has `{ctx.plan.metric}` at a later term and its "
                        "control._")
        plan, why = _section_plan(comp, ctx.plan)
        key = side_by_side(key_rows(comp, plan), plan)
        if (col(t, "config.strategy") == "static").any():
            control = ("each threshold (ocfb trials) minus `static` at the same term: equal "
                       "epochs, same seeds, same model")
        else:
            control = ("each threshold at a later term minus the same trials at term 0. The "
                       "sweep has no `static` trials, so every difference includes the effect "
                       "of the extra epochs (named on each line); add `static` to the strategy "
                       "grid for the control at equal epochs")
        models = [str(m) for m in ordered(col(t, "config.model").dropna())]
        split = f"; each model on its own ({', '.join(models)})" if len(models) > 1 else ""
        intro = f"{control[0].upper()}{control[1:]}{split}. {why}{_how(plan)}"
        part = _verdict_part(key, plan, intro, "section 6", _paper_caveat(ctx))
        part.markdown += "\n\nEvery term: `tables/threshold_verdicts_by_term.csv`."
        part.tables = {"threshold_verdicts": key, "threshold_verdicts_by_term": comp}
        return part


class ProtocolGapSection:
    """How much of OCF-B's paper-protocol gain survives a frozen holdout."""

    title = "7. Protocol gap"

    def build(self, ctx: Context) -> Part:
        """Gain (last term minus term 0) under each protocol, and the share that survives."""
        gap = protocol_gap(ctx.trials, ctx.terms)
        if gap is None or gap.empty:
            return Part("_Not applicable: the sweep has no completed OCF-B trials under both "
                        "the `paper` and `holdout` protocols._")
        header = ["metric", "model", "gain under paper", "gain under holdout",
                  "fraction surviving"]
        rows = [[r["metric"], r["model"], pm(r["paper_gain"], r["paper_ci95"], r["n_paper"]),
                 pm(r["holdout_gain"], r["holdout_ci95"], r["n_holdout"]),
                 "n/a" if pd.isna(r["survives"]) else f"{100 * r['survives']:.0f}%"]
                for _, r in gap.iterrows()]
        lines = ["OCF-B's gain = test metric at the last term minus term 0 (completed `ocfb` "
                 "trials; a fixed budget, nothing selected). Under `paper` the test negatives "
                 "are rewritten every term, so the test set gets easier; `holdout` freezes "
                 "them. Under `paper` the validation negatives are frozen at term 0 while the "
                 "test negatives follow the paper's rewriting, so selection on validation no "
                 "longer rides the same artefact.", "", md_table(header, rows)]
        auc = gap[(gap["metric"] == "auc") & (gap["model"] == "all")]
        if len(auc):
            r = auc.iloc[0]
            frac = ("n/a (no positive gain under paper)" if pd.isna(r["survives"])
                    else f"{100 * r['survives']:.0f}%")
            lines += ["", f"Test AUC: {fmt(r['paper_gain'])} under paper vs "
                          f"{fmt(r['holdout_gain'])} under holdout; share of the gain that "
                          f"survives: {frac}."]
        return Part("\n".join(lines), {"protocol_gap": gap})
