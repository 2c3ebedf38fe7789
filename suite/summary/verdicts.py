"""Verdicts at equal budget: strategies against each other, thresholds against their control.

Comparing arms at their own best terms rewards the arm whose score swings most (issue 9: mean
best terms 3.0 / 1.0 / 3.8 / 0.8 made `static` look as good as OCF-B, which beats it at term 15).
So every comparison is at the same budget: at every term, and at each trial's validation-
selected term. Pairs are matched on seed only: an arm's value at a seed is the mean over its
configurations at that seed, so two configurations per arm and 3 seeds give 3 pairs, not 6.
Several trained models are never pooled: each model is compared on its own.

The verdict lines of a section (the last term and the selected term) form one Holm family; the
per-term tables are exploratory (Holm within each term). Each line is read on the verdict
metric (full ranking under `holdout` where the records hold it) with the other metric beside it
(issue 20, item 2), and has one of four outcomes (stats.outcome). `compare` ranks the same
arms across datasets on the seeds x arms blocks built here (`seed_arm_matrix`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ocfb.names import BASELINE_MODELS, STRATEGIES
from suite.spec.vocabulary import BASELINE_SPACES
from suite.summary.frames import (
    col,
    config_col,
    full_counterpart,
    is_missing,
    label,
    numeric,
    ordered,
    report_metric,
    sampled_counterpart,
    sort_key,
)
from suite.summary.stats import (
    DEFAULT_ROPE,
    Paired,
    friedman,
    holm,
    kind_of,
    outcome,
    paired,
)

SELECTED = "selected"  # the budget label of "each trial at its validation-selected term"
HOLM_KEYS = ("t_p", "wilcoxon_p", "tost_p")


@dataclass(frozen=True)
class VerdictPlan:
    """What the verdict sections compare on: `metric` decides, `beside` (its sampled or
    full-ranking counterpart, where recorded) is shown next to it; `rope` is the region of
    practical equivalence in the metric's units."""

    metric: str
    beside: str | None
    rope: float
    mode: str

    @property
    def metrics(self) -> list[str]:
        """The verdict metric, then the one beside it."""
        return [self.metric, *([self.beside] if self.beside else [])]


def _held(metric: str, frames: Sequence[pd.DataFrame]) -> bool:
    """Some record holds a finite `metric` (per term, or at the selected term)."""
    for f in frames:
        for c in (metric, f"sel.{metric}"):
            if c in f.columns and numeric(f[c]).notna().any():
                return True
    return False


def verdict_plan(spec: dict[str, Any], objective: str, protocol: str, mode: str,
                 frames: Sequence[pd.DataFrame]) -> VerdictPlan:
    """The sweep's `verdicts: {metric, rope}` where given, else: under `holdout` the full-ranking
    counterpart of the reported metric where the records hold it, the sampled one beside it;
    rope `DEFAULT_ROPE`. A bad setting is refused naming the key and what is allowed."""
    settings = spec.get("verdicts") or {}
    if not isinstance(settings, dict):
        raise ValueError(f"sweep.json: verdicts must be a mapping with 'metric' and/or 'rope', "
                         f"got {settings!r}")
    rope = settings.get("rope", DEFAULT_ROPE)
    if isinstance(rope, bool) or not isinstance(rope, int | float) or not (
            math.isfinite(rope) and rope > 0):
        raise ValueError(f"sweep.json: verdicts.rope must be a positive number (e.g. "
                         f"{DEFAULT_ROPE}), got {rope!r}")
    reported = report_metric(objective)
    named = settings.get("metric")
    if named is not None and not str(named).startswith("test_"):
        raise ValueError(f"sweep.json: verdicts.metric must be a test metric (test_...), got "
                         f"{named!r}: validation selects, test decides")
    if named:
        metric = str(named)
    else:
        full = full_counterpart(reported)
        metric = full if protocol == "holdout" and full and _held(full, frames) else reported
    other = full_counterpart(metric) or sampled_counterpart(metric)
    beside = other if other and _held(other, frames) else None
    return VerdictPlan(metric, beside, float(rope), mode)


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


def arm_label(row: pd.Series, axes: Sequence[str]) -> str:
    """'neumf/dns' for a trained row, 'ease' for a baseline (its loop keys are blank)."""
    parts = [label(row[config_col(a)]) for a in axes
             if config_col(a) in row.index and not is_missing(row[config_col(a)])]
    return "/".join(parts) or "-"


def seed_arm_matrix(sel: pd.DataFrame, axes: Sequence[str], metric: str) -> pd.DataFrame:
    """seeds x arms of `sel.<metric>` (each seed's mean over an arm's rows), an arm being a
    row's values of `axes` but seed: the blocks `compare` ranks across datasets."""
    sel = on_validation(sel)
    axes = [a for a in axes if a != "seed"]
    arms = sel.apply(lambda r: arm_label(r, axes), axis=1) if len(sel) else pd.Series()
    df = pd.DataFrame({"arm": arms, "seed": sel.get("config.seed"),
                       "v": pd.to_numeric(sel.get(f"sel.{metric}"), errors="coerce")})
    return df.groupby(["seed", "arm"])["v"].mean().unstack("arm")


def _by_model(frame: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """({"model": m}, rows) per trained model; a frame without a model column is one group.
    Where the rows vary the protocol, per protocol too: the group also holds `protocol` and its
    model label names it ('mlp, paper protocol'), so a verdict never averages `paper` (whose arms
    rewrite their own test sets) with `holdout` (results/protocol-gap pooled them into one "ocfb
    better than static" line until this split)."""
    models = ordered(frame["config.model"]) if "config.model" in frame.columns else [None]
    protocols = ordered(col(frame, "config.protocol").dropna())
    out: list[tuple[dict[str, Any], pd.DataFrame]] = []
    for m in models:
        rows = frame if m is None else frame[frame["config.model"] == m]
        if len(protocols) < 2:
            out.append(({"model": m}, rows))
            continue
        for p in protocols:
            name = f"{p} protocol" if m is None else f"{label(m)}, {p} protocol"
            g = rows[col(rows, "config.protocol") == p]
            out += [({"model": name, "protocol": p}, g)] if len(g) else []
    return out


def _budgets(terms: pd.DataFrame, sel: pd.DataFrame, arm_col: str,
             metric: str) -> list[tuple[Any, pd.DataFrame]]:
    """(budget, seeds x arms matrix) for every term every arm reached, then `selected`."""
    out: list[tuple[Any, pd.DataFrame]] = []
    if not terms.empty and metric in terms.columns:
        for term, g in terms.groupby("term", sort=True):
            out.append((int(term), arm_seed_table(g, arm_col, metric)))
    if f"sel.{metric}" in sel.columns:
        out.append((SELECTED, arm_seed_table(on_validation(sel), arm_col, f"sel.{metric}")))
    return out


def family(rows: pd.DataFrame | list[dict[str, Any]], plan: VerdictPlan) -> pd.DataFrame:
    """Holm across the given lines (one family: `t_p_holm`, `wilcoxon_p_holm`, `tost_p_holm`)
    and each line's outcome; lines of different metrics are separate families."""
    df = pd.DataFrame(rows).reset_index(drop=True)
    if df.empty:
        return df
    for key in HOLM_KEYS:
        df[f"{key}_holm"] = np.nan
        for _, idx in df.groupby("metric", sort=False).groups.items():
            df.loc[idx, f"{key}_holm"] = holm(df.loc[idx, key].to_numpy(float))
    df["verdict"] = [
        outcome(r["diff"], r["t_p_holm"], r["tost_p_holm"], plan.mode, str(r["a"]),
                r["why_no_test"], int(r["n_pairs"]), r["mde"], r["rope"])
        for _, r in df.iterrows()]
    return df


def _compare(mat: pd.DataFrame, pairs: list[tuple[Any, Any]], rope: float) -> list[dict]:
    rows = []
    for a, b in pairs:
        if a in mat.columns and b in mat.columns:
            res = paired(mat[a].to_numpy(float), mat[b].to_numpy(float), rope)
            rows.append({"a": a, "b": b, **res.as_dict()})
    return rows


def strategy_pairs(arms: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Each arm vs `ocfb`, each remaining arm vs `resample-all` (the strongest classic), the two
    published rivals (`pop`, `srns`) vs `dns` (the best arm on MovieLens-100K before them), and
    `pop` vs `pop-ocfb`: does OCF-B's filter help on a better sampler?"""
    pairs = [("ocfb", s) for s in arms if s != "ocfb" and "ocfb" in arms]
    if "resample-all" in arms:
        pairs += [("resample-all", s) for s in arms if s not in ("ocfb", "resample-all")]
    if "dns" in arms:
        pairs += [("dns", s) for s in ("pop", "srns") if s in arms]
    if "pop" in arms and "pop-ocfb" in arms:
        pairs.append(("pop", "pop-ocfb"))
    return pairs


def strategy_verdicts(sel: pd.DataFrame, terms: pd.DataFrame,
                      plan: VerdictPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equal-budget strategy comparisons (trained trials, each model on its own) on every metric
    of `plan`, at every term and at the selected term; Holm within each (metric, model, budget):
    exploratory. Returns (comparisons, Friedman across all arms per model and budget)."""
    trained = sel[sel["kind"] == "trained"] if "kind" in sel.columns else sel
    comp, fried = [], []
    for group, rows in _by_model(trained):
        t = terms[terms["trial_id"].isin(rows["trial_id"])] if len(terms) else terms
        arms = strategy_order(col(rows, "config.strategy").dropna())
        for metric in plan.metrics:
            for budget, mat in _budgets(t, rows, "config.strategy", metric):
                if mat.empty:
                    continue
                found = [{"metric": metric, **group, "budget": budget, **r}
                         for r in _compare(mat, strategy_pairs(arms), plan.rope)]
                comp += family(found, plan).to_dict("records") if found else []
                stat, p, why = friedman(mat.to_numpy(float))
                fried.append({"metric": metric, **group, "budget": budget,
                              "arms": ",".join(str(a) for a in mat.columns),
                              "n_seeds": int(mat.dropna().shape[0]), "chi2": stat, "p": p,
                              "why_no_test": why})
    return pd.DataFrame(comp), pd.DataFrame(fried)


def model_pairs(models: Sequence[Any], trained: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Every pair with a trained (neural) model on the left: each trained model vs each later
    one and vs each baseline. Baselines are references, never compared among themselves here."""
    return [(a, b) for i, a in enumerate(models) if a in trained for b in models[i + 1:]]


def tunable(model: Any) -> bool:
    """False for a model with nothing to tune (popularity): its budget never makes a pair
    unequal."""
    return model not in BASELINE_MODELS or model in BASELINE_SPACES


def configs_per_seed(sel: pd.DataFrame, model: Any) -> int:
    """How many configurations a model's best one was chosen among (trials per seed)."""
    rows = sel[col(sel, "config.model") == model]
    return int(rows.groupby(col(rows, "config.seed")).size().max()) if len(rows) else 0


def model_budget(best: pd.DataFrame, model: Any) -> str:
    """The `tuning_budget` of a model's row in `best` ("" when the table has none)."""
    if "tuning_budget" not in best.columns:
        return ""
    return str(best.loc[best["model"] == model, "tuning_budget"].iat[0])


def model_verdicts(sel: pd.DataFrame, best: pd.DataFrame, plan: VerdictPlan) -> pd.DataFrame:
    """Each model's best configuration (`best`: `tables.best_per_model`, chosen on validation)
    against the others on the same seeds, at each trial's validation-selected term (a baseline
    has one). One Holm family per metric. Whether the rows had the same tuning budget is the
    table's `tuning_budget` column; `budgets_differ` marks lines whose two sides did not."""
    if best.empty or "trials" not in best.columns:
        return pd.DataFrame()
    picked = {t for ts in best["trials"] for t in str(ts).split(",")}
    rows = sel[sel["trial_id"].astype(str).isin(picked)]
    models = list(best["model"])
    trained = list(best.loc[best["kind"] == "trained", "model"])
    budget = {m: (model_budget(best, m), configs_per_seed(sel, m)) for m in models}
    lines: list[dict[str, Any]] = []
    for metric in plan.metrics:
        mat = arm_seed_table(rows, "config.model", f"sel.{metric}")
        if mat.empty:
            continue
        for r in _compare(mat, model_pairs(models, trained), plan.rope):
            differ = (tunable(r["a"]) and tunable(r["b"])
                      and budget.get(r["a"]) != budget.get(r["b"]))
            lines.append({"metric": metric, "model": None, "budget": SELECTED, **r,
                          "budgets_differ": differ})
    return family(lines, plan) if lines else pd.DataFrame()


def _seed_series(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Per seed, the mean of `metric` over `rows` (configurations averaged)."""
    df = pd.DataFrame({"seed": col(rows, "config.seed"),
                       "v": numeric(rows[metric]) if metric in rows else np.nan})
    df = df[np.isfinite(df["v"].astype(float))]
    return df.groupby("seed")["v"].mean()


# The leaderboard's best row, its runner-up, and their paired comparison on seeds (`lead`).
Lead = tuple[pd.Series, pd.Series, Paired]


def lead(board: pd.DataFrame, sel: pd.DataFrame, objective: str, mode: str,
         rope: float) -> Lead | None:
    """The best row of `board` (`tables.leaderboard`, baselines in the race) against the
    runner-up on the objective, paired on the seeds both ran: the effect with its CI and tests.
    DESIGN §4: a difference of means without a test is not a finding (this line compared CI
    overlap before). Both rows were picked on this metric, so the lead it shows is optimistic."""
    rows = board[board["mean"].notna()].sort_values("mean", ascending=mode != "max",
                                                     kind="stable")
    if len(rows) < 2:
        return None
    a, b = rows.iloc[0], rows.iloc[1]
    ids = sel["trial_id"].astype(str)
    x, y = (_seed_series(sel[ids.isin(str(r["trials"]).split(",")).to_numpy()],
                         f"sel.{objective}") for r in (a, b))
    both = pd.concat([x.rename("x"), y.rename("y")], axis=1)  # `paired` drops unmatched seeds
    return a, b, paired(both["x"].to_numpy(float), both["y"].to_numpy(float), rope)


def _control(static: pd.DataFrame, zero: pd.DataFrame, static_metric: str,
             zero_metric: str) -> tuple[str, pd.Series]:
    """The control of one (model, threshold) line at one budget: `static` at the same budget
    when the sweep ran it (equal epochs), else the same trials at term 0."""
    if len(static):
        return "static", _seed_series(static, static_metric)
    return "term 0", _seed_series(zero, zero_metric)


def _threshold_lines(sel: pd.DataFrame, terms: pd.DataFrame, metric: str,
                     group: dict[str, Any], plan: VerdictPlan) -> list[dict[str, Any]]:
    strategy = col(terms, "config.strategy")
    has_static = bool((strategy == "static").any())
    ocfb_terms = terms[strategy != "static"] if has_static else terms
    static_terms = terms[strategy == "static"] if has_static else terms.iloc[0:0]
    sel_ocfb = on_validation(sel[col(sel, "config.strategy") != "static"])
    sel_static = on_validation(sel[col(sel, "config.strategy") == "static"])
    zero = ocfb_terms[ocfb_terms["term"] == 0]
    budgets = sorted(int(t) for t in ocfb_terms.loc[ocfb_terms["term"] > 0, "term"].unique())
    per_term = col(ocfb_terms, "config.epochs_per_term")
    ept = float(numeric(per_term).dropna().iloc[0]) if numeric(per_term).notna().any() else 1.0
    rows: list[dict[str, Any]] = []
    for budget in [*budgets, SELECTED]:
        for th in ordered(ocfb_terms["config.threshold"].dropna()):
            if budget == SELECTED:
                mine = sel_ocfb[col(sel_ocfb, "config.threshold") == th]
                x = _seed_series(mine, f"sel.{metric}")
                control, z = _control(sel_static, zero[zero["config.threshold"] == th],
                                      f"sel.{metric}", metric)
                extra = float(numeric(col(mine, "sel_term")).mean()) * ept
            else:
                at = ocfb_terms[ocfb_terms["term"] == budget]
                x = _seed_series(at[at["config.threshold"] == th], metric)
                control, z = _control(static_terms[static_terms["term"] == budget],
                                      zero[zero["config.threshold"] == th], metric, metric)
                extra = budget * ept
            both = pd.concat([x.rename("x"), z.rename("z")], axis=1)
            if both.dropna().empty:
                continue
            res = paired(both["x"].to_numpy(float), both["z"].to_numpy(float), plan.rope)
            rows.append({"metric": metric, **group, "budget": budget, "threshold": th,
                         "a": f"threshold {th:g}", "b": control, "control": control,
                         "extra_epochs": math.nan if control == "static" else extra,
                         **res.as_dict()})
    return rows


def threshold_verdicts(sel: pd.DataFrame, terms: pd.DataFrame,
                       plan: VerdictPlan) -> pd.DataFrame:
    """Each threshold at every term t >= 1 and at the selected term against its control on the
    same seeds and model: `static` at the same term (equal epochs) when the sweep ran `static`,
    else its own term 0 (then `extra_epochs` says how many more epochs the threshold had).
    Holm within each (metric, model, budget): exploratory; `family` makes the section's."""
    if terms.empty or "config.threshold" not in terms.columns:
        return pd.DataFrame()
    out = []
    for group, rows in _by_model(terms):
        s = sel[sel["trial_id"].isin(rows["trial_id"])]
        for metric in plan.metrics:
            if metric not in rows.columns and f"sel.{metric}" not in s.columns:
                continue
            lines = _threshold_lines(s, rows, metric, group, plan)
            for _, g in pd.DataFrame(lines).groupby("budget", sort=False) if lines else []:
                out += family(g, plan).to_dict("records")
    return pd.DataFrame(out)


def key_rows(comp: pd.DataFrame, plan: VerdictPlan) -> pd.DataFrame:
    """The verdict lines of a section: the last term every line reached and the selected term,
    Holm-corrected as one family per metric across both budgets (issue 20, item 5)."""
    if comp.empty:
        return comp
    terms = [b for b in comp["budget"] if b != SELECTED]
    last = max(int(b) for b in terms) if terms else None
    key = comp[(comp["budget"] == SELECTED) | (comp["budget"] == last)]
    return family(key.drop(columns=[c for c in key.columns if c.endswith("_holm")]), plan)


def side_by_side(key: pd.DataFrame, plan: VerdictPlan) -> pd.DataFrame:
    """One row per verdict line: the verdict metric's columns, and the `beside` metric's
    difference, CI, Holm p and verdict as `beside_*`, with `agree` (same kind of outcome)."""
    main = key[key["metric"] == plan.metric].reset_index(drop=True)
    if main.empty or plan.beside is None:
        return main
    ids = ["model", "budget", "a", "b"]
    other = key[key["metric"] == plan.beside][[*ids, "diff", "ci_low", "ci_high", "t_p_holm",
                                               "verdict", "n_pairs"]]
    other = other.rename(columns={c: f"beside_{c}" for c in other.columns if c not in ids})
    out = main.merge(other, on=ids, how="left")
    out["agree"] = [
        "n/a" if not isinstance(b, str) else ("yes" if kind_of(v) == kind_of(b) else "no")
        for v, b in zip(out["verdict"], out["beside_verdict"], strict=True)]
    return out
