"""The sections of summary.md: each builds its tables, renders markdown, optionally plots.

A new section is a new class with a `title` and `build(ctx) -> Part`, added to `SECTIONS` in
suite/summary/report.py; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ocfb.metrics import format_classification_report
from ocfb.names import default_objective
from suite.summary.common import (
    HOLDOUT_PLOT_METRICS,
    HOLDOUT_RANKING_METRICS,
    PAPER_PLOT_METRICS,
    PAPER_REPORT_METRICS,
    cfg,
    col,
    config_label,
    fmt,
    fmt_p,
    is_missing,
    label,
    md_table,
    ordered,
    pm,
)
from suite.summary.plots import plot_heatmap, plot_metrics_vs_term
from suite.summary.selection import report_metric
from suite.summary.tables import axis_by_term, best_per_model, leaderboard, pivot, to_grid


@dataclass
class Context:
    """What every section reads: the sweep's settings and its frames, already cleaned.

    `sel`: one row per usable, deduplicated trial (selection.select); `terms_ok`: their per-term
    rows; `terms_full`: those of trials that ran every term (per-term tables leave early-stopped
    trials out, else later terms would average the survivors only)."""

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


@dataclass
class Part:
    """A built section: its markdown, the tables to write as CSV, the PNGs it wrote."""

    markdown: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)


class Section(Protocol):
    """One section of summary.md."""

    title: str

    def build(self, ctx: Context) -> Part:
        """Tables, markdown and plots of this section."""
        ...


def grid_rows(cells: pd.DataFrame, row_key: str, col_key: str,
              best: tuple[Any, Any] | None) -> tuple[pd.DataFrame, list[list[Any]]]:
    """Markdown rows of a row_key x col_key grid: "mean +- ci (n)" per cell, the best in bold."""
    grid, ci, n = (to_grid(cells, row_key, col_key, v) for v in ("mean", "ci95", "n"))
    rows = []
    for i, r in enumerate(grid.index):
        row = [r]
        for j, c in enumerate(grid.columns):
            v = grid.iat[i, j]
            s = "" if is_missing(v) else pm(v, ci.iat[i, j], n.iat[i, j])
            if best is not None and s and label(best[0]) == r and label(best[1]) == c:
                s = f"**{s}**"
            row.append(s)
        rows.append(row)
    return grid, rows


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
        return Part(render_leaderboard(board, ctx.objective, ctx.mode), {"leaderboard": full})


def render_leaderboard(board: pd.DataFrame, objective: str, mode: str) -> str:
    """summary.md's leaderboard: rank (ref for baselines), axes, selection metric, test."""
    axes = board.attrs.get("axes", [])
    test = report_metric(objective)
    has_test = test != objective and test in board.columns
    header = ["rank", *axes, f"{objective} (validation, mean +- 95% CI, n seeds)"]
    header += [f"{test} at the selected term", f"{test} at the final term (fixed budget)"] if (
        has_test) else []
    header += ["selected term (mean)"]
    rows = []
    for _, r in board.iterrows():
        ref = r["kind"] == "baseline"
        row = ["ref" if ref else str(int(r["rank"])), *[label(r[a]) for a in axes],
               pm(r["mean"], r["ci95"], r["n_seeds"])]
        if has_test:
            row += [pm(r[test], r[f"{test}_ci95"]),
                    pm(r[f"final_{test}"], r[f"final_{test}_ci95"])]
        row.append("fitted once" if ref else fmt(r["sel_term"], 1))
        rows.append(row)
    trained = board[board["kind"] == "trained"]
    better = "higher" if mode == "max" else "lower"
    lines = [f"Top {len(trained)} of {board.attrs.get('n_configs', len(trained))} "
             f"configuration(s) by `{objective}` ({better} is better), each trial at the term "
             "where its validation objective peaks (earliest on ties); mean +- 95% CI (t) over "
             "seeds. Rows marked `ref` are reference baselines (fitted once, no terms).", "",
             md_table(header, rows)]
    if len(trained) >= 2 and not trained["ci95"].iloc[:2].isna().any():
        a, b = trained.iloc[0], trained.iloc[1]
        overlap = (a["ci_low"] <= b["ci_high"]) if mode == "max" else (
            a["ci_high"] >= b["ci_low"])
        lines += ["", f"The winner ({config_label(a, axes)}) leads the runner-up by "
                  f"{fmt(abs(a['mean'] - b['mean']))}; their 95% CIs "
                  + ("overlap: the lead may be noise." if overlap else "do not overlap.")]
    return "\n".join(lines)


class BestPerModelSection:
    """Each model's configuration chosen on validation; its test numbers, nested estimate."""

    title = "2. Best per model type"

    def build(self, ctx: Context) -> Part:
        """One table per protocol present (a protocol axis runs both)."""
        protos = [p for p in ordered(col(ctx.sel, "config.protocol")) if p in ("paper",
                                                                               "holdout")]
        protos = protos or ([ctx.protocol] if len(ctx.sel) else [])
        if not protos:
            return Part("_Not applicable: no completed trial yet._")
        out = Part("")
        texts = []
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
            texts.append(render_best(best, p, obj))
            metrics = [obj, *(PAPER_PLOT_METRICS if p == "paper" else
                              (report_metric(obj), *HOLDOUT_PLOT_METRICS))]
            png = plot_metrics_vs_term(
                ctx.terms_full, best, metrics,
                f"{ctx.name}: best configuration per model type ({p} protocol), mean and 95% "
                "CI band over seeds; dashed: baselines", ctx.plots_dir / f"metrics_vs_term_{p}.png")
            out.plots += [png] if png else []
        out.markdown = "\n\n".join(texts)
        return out


def _nested_text(best: pd.DataFrame, test: str) -> str:
    lines = []
    for _, r in best[best["kind"] == "trained"].iterrows():
        if is_missing(r["nested"]):
            continue
        lines.append(f"- {r['model']}: {test} {fmt(r[test])} as picked, "
                     f"{pm(r['nested'], r['nested_ci95'], r['nested_n'])} cross-seed (chosen on "
                     f"the other seeds, scored on the held-out one); the plain pick overstates "
                     f"it by {fmt(r['overstates'])}. Optimistic (configuration and term selected "
                     f"on test): {fmt(r['optimistic'])}.")
    return "\n".join(lines)


def render_best(best: pd.DataFrame, protocol: str, objective: str) -> str:
    """The paper's classification report per model (`paper`) or a metric x model table."""
    axes = best.attrs.get("axes", [])
    test = report_metric(objective)
    parts = [f"Protocol `{protocol}`: each model type's configuration with the best mean "
             f"`{objective}` over seeds (validation); its test metrics at each seed's "
             "validation-selected term. Baselines: reference rows."]
    if protocol == "paper":
        for _, r in best.iterrows():
            report = {m.removeprefix("test_"): r[m] for m in PAPER_REPORT_METRICS}
            kind = "baseline, fitted once" if r["kind"] == "baseline" else (
                f"selected term {fmt(r['sel_term'], 1)} on average")
            title = (f"{r['model']} ({config_label(r, axes)}; {int(r['n_seeds'])} seed(s), "
                     f"{kind})")
            try:
                body = format_classification_report(report, title=title)
            except (ValueError, TypeError, KeyError):
                body = f"{title}\n(classification report not recorded)"
            body += f"\nAUC {pm(r['test_auc'], r['test_auc_ci95'])}"
            parts.append("```\n" + body + "\n```")
    else:
        metrics = [m for m in HOLDOUT_RANKING_METRICS if m in best.columns]
        names = [f"{m} (baseline)" if k == "baseline" else str(m)
                 for m, k in zip(best["model"], best["kind"], strict=True)]
        rows = [["configuration", *[config_label(r, axes) for _, r in best.iterrows()]],
                ["seeds", *[str(int(n)) for n in best["n_seeds"]]],
                ["selected term (mean)", *["fitted once" if r["kind"] == "baseline" else
                                           fmt(r["sel_term"], 1) for _, r in best.iterrows()]],
                [f"{objective} (selection)", *[pm(r["mean"], r["ci95"])
                                               for _, r in best.iterrows()]]]
        rows += [[m, *[pm(r[m], r[f"{m}_ci95"]) for _, r in best.iterrows()]] for m in metrics]
        rows.append([f"{test} at the final term (fixed budget)",
                     *[pm(r[f"final_{test}"], r[f"final_{test}_ci95"]) for _, r in
                       best.iterrows()]])
        parts.append(md_table(["metric", *names], rows))
    nested = _nested_text(best, test)
    if nested:
        parts.append("How much picking the best configuration flatters it:\n" + nested)
    return "\n\n".join(parts)


def threshold_scope(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Per-term rows the threshold tables use: OCF-B trials only when strategy varies (the
    threshold is OCF-B's), trained trials only (baselines have no terms)."""
    t = ctx.terms_full
    if "config.model" in t.columns:
        t = t[~t["trial_id"].isin(ctx.sel.loc[ctx.sel["kind"] == "baseline", "trial_id"])]
    scope = "trials that ran every term; early-stopped ones left out"
    if cfg("strategy") in t.columns and t[cfg("strategy")].nunique() > 1:
        t, scope = t[t[cfg("strategy")] == "ocfb"], "ocfb trials only"
    return t, scope


class ThresholdTermsSection:
    """The objective at every (threshold, term) cell: the term-count ablation read off history."""

    title = "3. Threshold x terms"

    def build(self, ctx: Context) -> Part:
        """Table, and a heat map when more than one threshold ran."""
        t, scope = threshold_scope(ctx)
        if t.empty or ctx.objective not in t.columns or cfg("threshold") not in t.columns:
            return Part("_Not applicable: no per-term history of a completed trial with "
                        f"`{ctx.objective}` yet._")
        cells = axis_by_term(t, "threshold", ctx.objective, ctx.mode)
        best = cells.attrs.get("best")
        grid, rows = grid_rows(cells, "term", "threshold",
                               None if best is None else (best[1], best[0]))
        lines = [f"`{ctx.objective}` at every term for every threshold ({scope}; mean +- 95% CI "
                 "over seeds and the other axes, n = trials). Read off the per-term history: "
                 "one trial covers every term count. Term 0 is plain negative sampling.", "",
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
            missing = [k for k in (a, b) if cfg(k) not in ctx.trials.columns]
            if missing or ctx.sel.empty:
                why = (f"no column(s) {', '.join(cfg(k) for k in missing)} in trials.parquet"
                       if missing else "no completed trial yet")
                texts.append(f"### {a} x {b}\n\n_Skipped: {why}._")
                continue
            cells = pivot(ctx.sel, a, b, ctx.objective, ctx.mode)
            out.tables[f"{a}_x_{b}"] = cells
            if cells.empty:
                texts.append(f"### {a} x {b}\n\n_No completed trial has `{ctx.objective}`._")
                continue
            grid, rows = grid_rows(cells, a, b, cells.attrs.get("best"))
            texts.append("\n".join([
                f"### {a} x {b}", "", f"`{ctx.objective}` (each trial at its validation-selected "
                "term), mean +- 95% CI over seeds and the other axes, n = trials; best cell in "
                "bold.", "", md_table([f"{a} \\ {b}", *grid.columns], rows)]))
        out.markdown = "\n\n".join(texts)
        return out


def comparison_table(rows: pd.DataFrame, metric: str, first: str) -> str:
    """Markdown of comparison rows: who vs whom, difference [CI], pairs, p-values, verdict."""
    header = [first, "comparison", f"difference in {metric} [95% CI]", "seeds",
              "t p (Holm)", "Wilcoxon p (Holm)", "verdict"]
    body = []
    for _, r in rows.iterrows():
        ci = "" if is_missing(r["ci_low"]) else f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
        body.append([label(r.get(first, r["budget"])), f"{r['a']} vs {r['b']}",
                     f"{fmt(r['diff'])}{ci}", str(int(r["n_pairs"])), fmt_p(r["t_p_holm"]),
                     fmt_p(r["wilcoxon_p_holm"]), r["verdict"]])
    return md_table(header, body)
