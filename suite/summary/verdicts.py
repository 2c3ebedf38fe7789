"""Sections 5-7 of summary.md: strategy and threshold verdicts at equal budget, protocol gap."""

from __future__ import annotations

import pandas as pd

from suite.summary.common import cfg, fmt, fmt_p, md_table, pm
from suite.summary.compare import SELECTED, strategy_verdicts, threshold_verdicts, verdict_line
from suite.summary.plots import plot_strategy_differences
from suite.summary.sections import Context, Part, comparison_table, threshold_scope
from suite.summary.selection import report_metric
from suite.summary.stats import ALPHA, MIN_SEEDS
from suite.summary.tables import protocol_gap

_HOW = ("Pairs are matched on seed only (an arm's value at a seed is the mean over its "
        "configurations at that seed); difference = first minus second with its 95% t "
        f"interval; p-values Holm-corrected across the comparisons at the same budget; a "
        f"verdict needs Holm p < {ALPHA}; fewer than {MIN_SEEDS} seeds: no test.")


def _final_budget(comp: pd.DataFrame) -> int | None:
    terms = [b for b in comp["budget"] if b != SELECTED]
    return int(max(terms)) if terms else None


def _key_rows(comp: pd.DataFrame) -> pd.DataFrame:
    last = _final_budget(comp)
    return comp[(comp["budget"] == SELECTED) | (comp["budget"] == last)]


class StrategiesSection:
    """Each strategy vs ocfb (and vs resample-all) at every term and at the selected term."""

    title = "5. Strategy comparison at equal budget"

    def build(self, ctx: Context) -> Part:
        """Verdict lines, the key table, Friedman, the per-term difference figure."""
        trained = ctx.sel[ctx.sel["kind"] == "trained"]
        if cfg("strategy") not in trained.columns or trained[cfg("strategy")].nunique() < 2:
            return Part("_Not applicable: the completed trials do not vary `strategy`._")
        metric = report_metric(ctx.objective)
        terms = ctx.terms_full[ctx.terms_full["trial_id"].isin(trained["trial_id"])]
        comp, fried = strategy_verdicts(trained, terms, metric, ctx.mode)
        if comp.empty:
            return Part("_No pair of strategies shares a seed with a finite "
                        f"`{metric}`: nothing to compare._")
        key = _key_rows(comp)
        lines = [f"On `{metric}` (test), each trial at the same term (equal budget) and at its "
                 f"validation-selected term. {_HOW}", ""]
        lines += [f"- {verdict_line(r, metric)}" for _, r in key.iterrows()]
        lines += ["", comparison_table(key, metric, "budget"), ""]
        lines += [_friedman_text(fried)]
        lines += ["", "Every term: `tables/strategies_by_term.csv`; figure: "
                  "`plots/strategy_differences.png` (arm minus ocfb, mean and 95% CI band)."]
        part = Part("\n".join(lines), {"strategies": key.reset_index(drop=True),
                                       "strategies_by_term": comp,
                                       "strategies_friedman": fried})
        png = plot_strategy_differences(
            comp, metric, "ocfb", f"{ctx.name}: each strategy minus ocfb on {metric}",
            ctx.plots_dir / "strategy_differences.png")
        part.plots += [png] if png else []
        return part


def _friedman_text(fried: pd.DataFrame) -> str:
    if fried.empty:
        return "Friedman test across all arms: not run (no budget with every arm)."
    out = []
    for _, r in fried[fried["budget"] == SELECTED].iterrows():
        where = "at the selected term"
        out.append(_friedman_line(r, where))
    terms = fried[fried["budget"] != SELECTED]
    if len(terms):
        r = terms.iloc[-1]
        out.append(_friedman_line(r, f"at term {r['budget']}"))
    return "\n".join(f"- {x}" for x in out)


def _friedman_line(r: pd.Series, where: str) -> str:
    if r["why_no_test"]:
        return f"Friedman across {r['arms']} {where}: not run ({r['why_no_test']})."
    return (f"Friedman across {r['arms']} {where}: chi2 {fmt(r['chi2'], 2)}, p {fmt_p(r['p'])} "
            f"({r['n_seeds']} seeds).")


class ThresholdVerdictsSection:
    """Does OCF-B improve on its own term 0, per threshold, at equal budget?"""

    title = "6. Thresholds against term 0"

    def build(self, ctx: Context) -> Part:
        """Verdict lines per threshold at the final and the selected term; every term as CSV."""
        terms, scope = threshold_scope(ctx)
        metric = report_metric(ctx.objective)
        if terms.empty or cfg("threshold") not in terms.columns or terms["term"].max() < 1:
            return Part("_Not applicable: no completed OCF-B trial with terms after term 0._")
        sel = ctx.sel[ctx.sel["trial_id"].isin(terms["trial_id"])]
        comp = threshold_verdicts(sel, terms, metric, ctx.mode)
        if comp.empty:
            return Part(f"_No threshold has `{metric}` at term 0 and a later term._")
        key = _key_rows(comp)
        lines = [f"On `{metric}` (test; {scope}): each threshold at a later term minus the same "
                 f"trials at term 0 (plain negative sampling). {_HOW}", ""]
        lines += [f"- {verdict_line(r, metric, f'threshold {r.threshold:g}')}"
                  for _, r in key.iterrows()]
        lines += ["", comparison_table(key, metric, "threshold"), "",
                  "Every term: `tables/thresholds_vs_term0_by_term.csv`."]
        return Part("\n".join(lines), {"thresholds_vs_term0": key.reset_index(drop=True),
                                       "thresholds_vs_term0_by_term": comp})


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
                 "them.", "", md_table(header, rows)]
        auc = gap[(gap["metric"] == "auc") & (gap["model"] == "all")]
        if len(auc):
            r = auc.iloc[0]
            frac = ("n/a (no positive gain under paper)" if pd.isna(r["survives"])
                    else f"{100 * r['survives']:.0f}%")
            lines += ["", f"Test AUC: {fmt(r['paper_gain'])} under paper vs "
                          f"{fmt(r['holdout_gain'])} under holdout; share of the gain that "
                          f"survives: {frac}."]
        return Part("\n".join(lines), {"protocol_gap": gap})
