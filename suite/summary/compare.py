"""Equal-budget verdicts: strategies against each other, and each threshold against term 0.

Comparing arms at their own best terms rewards the arm whose score swings most (issue 9: mean
best terms 3.0 / 1.0 / 3.8 / 0.8 made `static` look as good as OCF-B, which beats it at term 15).
So every comparison here is at the same budget: at every term, and at each trial's validation-
selected term. Pairs are matched on seed only: an arm's value at a seed is the mean over its
configurations at that seed, so two configurations per arm and 3 seeds give 3 pairs, not 6.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ocfb.names import STRATEGIES
from suite.summary.common import col, fmt, fmt_p, numeric, ordered, sort_key
from suite.summary.stats import friedman, holm, paired, verdict

SELECTED = "selected"  # the budget label of "each trial at its validation-selected term"


def strategy_order(values: Sequence[Any]) -> list[Any]:
    """Strategies in names.STRATEGIES order, unknown ones after them."""
    known = {s: i for i, s in enumerate(STRATEGIES)}
    return sorted(ordered(values), key=lambda s: (known.get(s, len(known)), sort_key(s)))


def on_validation(sel: pd.DataFrame) -> pd.DataFrame:
    """Trials whose selected term was chosen by the validation objective (a trial without it
    falls back to its final term, which is no "selected term" to compare)."""
    if "selected_on" not in sel.columns:
        return sel
    return sel[sel["selected_on"] == "validation"]


def arm_seed_table(rows: pd.DataFrame, arm_col: str, metric: str) -> pd.DataFrame:
    """seeds x arms matrix of `metric`, each cell the mean over the arm's rows at that seed
    (configurations are averaged, never paired)."""
    df = pd.DataFrame({"arm": rows[arm_col].to_numpy(), "seed": col(rows, "config.seed"),
                       "v": numeric(rows[metric]) if metric in rows else np.nan})
    df = df[np.isfinite(df["v"].astype(float))]
    if df.empty:
        return pd.DataFrame()
    return df.groupby(["seed", "arm"])["v"].mean().unstack("arm")


def _budgets(terms: pd.DataFrame, sel: pd.DataFrame, arm_col: str,
             metric: str) -> list[tuple[Any, pd.DataFrame]]:
    """(budget, seeds x arms matrix) for every term every arm reached, then `selected`."""
    out: list[tuple[Any, pd.DataFrame]] = []
    if not terms.empty and metric in terms.columns:
        for term, g in terms.groupby("term", sort=True):
            out.append((int(term), arm_seed_table(g, arm_col, metric)))
    sel_metric = f"sel.{metric}"
    if sel_metric in sel.columns:
        out.append((SELECTED, arm_seed_table(on_validation(sel), arm_col, sel_metric)))
    return out


def _compare(mat: pd.DataFrame, pairs: list[tuple[Any, Any]], mode: str) -> list[dict[str, Any]]:
    rows = []
    for a, b in pairs:
        if a not in mat.columns or b not in mat.columns:
            continue
        res = paired(mat[a].to_numpy(float), mat[b].to_numpy(float))
        rows.append({"a": a, "b": b, **res.as_dict()})
    for key in ("t_p", "wilcoxon_p"):
        adj = holm([r[key] for r in rows])
        for r, p in zip(rows, adj, strict=True):
            r[f"{key}_holm"] = float(p)
    for r in rows:
        r["verdict"] = verdict(r["diff"], r["t_p_holm"], mode, str(r["a"]), r["why_no_test"])
    return rows


def paired_by_budget(terms: pd.DataFrame, sel: pd.DataFrame, arm_col: str, metric: str,
                     pairs: list[tuple[Any, Any]], mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For every budget (each term, then `selected`): each pair (a, b) compared as a - b over
    seeds (effect size with 95 % CI, paired t and Wilcoxon, Holm across the pairs at that
    budget), and a Friedman test across all arms. Returns (comparisons, friedman) tables."""
    comp, fried = [], []
    for budget, mat in _budgets(terms, sel, arm_col, metric):
        if mat.empty:
            continue
        for r in _compare(mat, pairs, mode):
            comp.append({"budget": budget, **r})
        stat, p, why = friedman(mat.to_numpy(float))
        fried.append({"budget": budget, "arms": ",".join(str(a) for a in mat.columns),
                      "n_seeds": int(mat.dropna().shape[0]), "chi2": stat, "p": p,
                      "why_no_test": why})
    return pd.DataFrame(comp), pd.DataFrame(fried)


def strategy_pairs(arms: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Each arm vs `ocfb`, and each remaining arm vs `resample-all` (the strongest classic)."""
    pairs = [("ocfb", s) for s in arms if s != "ocfb" and "ocfb" in arms]
    if "resample-all" in arms:
        pairs += [("resample-all", s) for s in arms if s not in ("ocfb", "resample-all")]
    return pairs


def strategy_verdicts(sel: pd.DataFrame, terms: pd.DataFrame, metric: str,
                      mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equal-budget strategy comparisons on `metric` (trained trials only)."""
    trained = sel[sel["kind"] == "trained"] if "kind" in sel.columns else sel
    arms = strategy_order(col(trained, "config.strategy").dropna())
    return paired_by_budget(terms, trained, "config.strategy", metric, strategy_pairs(arms),
                            mode)


def threshold_verdicts(sel: pd.DataFrame, terms: pd.DataFrame, metric: str,
                       mode: str) -> pd.DataFrame:
    """Each threshold's `metric` at every term t >= 1 and at the selected term, against its own
    term 0 (plain negative sampling) on the same seeds; Holm across thresholds per budget."""
    rows: list[dict[str, Any]] = []
    if terms.empty or metric not in terms.columns or "config.threshold" not in terms.columns:
        return pd.DataFrame()
    zero = terms[terms["term"] == 0]
    budgets = [(int(t), g) for t, g in terms[terms["term"] > 0].groupby("term", sort=True)]
    for budget, g in [*budgets, (SELECTED, None)]:
        found = []
        for th in ordered(terms["config.threshold"].dropna()):
            z = arm_seed_table(zero[zero["config.threshold"] == th], "config.threshold", metric)
            if g is None:
                s = on_validation(sel)
                s = s[col(s, "config.threshold") == th]
                x = arm_seed_table(s, "config.threshold", f"sel.{metric}")
            else:
                x = arm_seed_table(g[g["config.threshold"] == th], "config.threshold", metric)
            if z.empty or x.empty:
                continue
            both = pd.concat([x.iloc[:, 0].rename("x"), z.iloc[:, 0].rename("z")], axis=1)
            res = paired(both["x"].to_numpy(float), both["z"].to_numpy(float))
            a = "selected term" if g is None else f"term {budget}"
            found.append({"budget": budget, "threshold": th, "a": a, "b": "term 0",
                          **res.as_dict()})
        for key in ("t_p", "wilcoxon_p"):
            for r, p in zip(found, holm([r[key] for r in found]), strict=True):
                r[f"{key}_holm"] = float(p)
        for r in found:
            r["verdict"] = verdict(r["diff"], r["t_p_holm"], mode, r["a"], r["why_no_test"])
        rows += found
    return pd.DataFrame(rows)


def verdict_line(r: pd.Series | dict[str, Any], metric: str, what: str = "") -> str:
    """'ocfb vs static at term 15: +0.1000 [0.0700, 0.1300], Holm p 0.004: ocfb better'."""
    budget = r["budget"]
    at = ("at the validation-selected term" if budget == SELECTED else f"at term {budget}")
    head = f"{what}{r['a']} vs {r['b']} {at}" if not what else f"{what}: {r['a']} vs {r['b']}"
    if what and budget == SELECTED:
        head = f"{what}: selected term vs term 0"
    diff = f"{'+' if r['diff'] > 0 else ''}{fmt(r['diff'])}"
    ci = "" if pd.isna(r["ci_low"]) else f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
    if r["why_no_test"]:
        return f"{head}: {diff}{ci} {metric} over {int(r['n_pairs'])} seed(s); {r['verdict']}"
    return (f"{head}: {diff}{ci} {metric} ({int(r['n_pairs'])} seeds), Holm p "
            f"{fmt_p(r['t_p_holm'])}: {r['verdict']}")
