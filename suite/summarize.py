"""Comparison tables, statistics and plots of a finished (or partial) sweep: `ocfb-suite summarize`.

The summaries are pure functions from the sweep's data frames (trials.parquet, terms.parquet) to
data frames, so they are tested on hand-made frames; `summarize_dir` reads a sweep folder, calls
them, and writes summary.md, tables/<name>.csv and plots/*.png atomically.

Statistics: every number is a mean over trials with a t-based 95 % confidence interval (half
width, `ci95`) and its n. Strategy comparisons are paired over seeds (same seed = same data split
and initial negatives) with Holm-corrected p-values. Trials that errored, diverged, are pending or
still running have no usable metrics: they are left out of the statistics and named in the notes.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ocfb.config import STRATEGIES
from ocfb.metrics import format_classification_report
from suite.results import write_csv, write_text

# Trials whose metrics count: completed ones and those the scheduler stopped early (ASHA stops
# the bad ones, so leaving them out would flatter every mean). "running" means the sweep was
# interrupted mid-trial: its partial history is not comparable, so it is left out and named.
USABLE_STATUSES: tuple[str, ...] = ("completed", "stopped")
CI_LEVEL = 0.95
ALPHA = 0.05
# An exact two-sided Wilcoxon signed-rank test on n non-zero differences cannot go below
# p = 2 / 2**n, which is >= 0.05 up to n = 5: below 6 pairs the test cannot say anything.
WILCOXON_MIN_N = 6
# Every plot has this size, so its pixel size is known: 1200 x 800 pixels.
PLOT_SIZE_IN: tuple[float, float] = (12.0, 8.0)
PLOT_DPI = 100
LEADERBOARD_TOP = 10

# The paper protocol's classification report, and the holdout protocol's ranking metrics.
PAPER_REPORT_METRICS: tuple[str, ...] = (
    "test_auc",
    "test_accuracy",
    "test_precision_neg",
    "test_recall_neg",
    "test_f1_neg",
    "test_support_neg",
    "test_precision_pos",
    "test_recall_pos",
    "test_f1_pos",
    "test_support_pos",
    "test_precision_weighted",
    "test_recall_weighted",
    "test_f1_weighted",
)
HOLDOUT_RANKING_METRICS: tuple[str, ...] = tuple(
    f"test_{kind}@{k}" for kind in ("hr", "ndcg", "full_hr", "full_ndcg") for k in (5, 10, 20)
) + ("test_auc",)
# Figures 5-6 of the paper: AUC and per-class precision / recall against the term.
PAPER_PLOT_METRICS: tuple[str, ...] = (
    "test_auc",
    "test_accuracy",
    "test_precision_pos",
    "test_precision_neg",
    "test_recall_pos",
    "test_recall_neg",
)
HOLDOUT_PLOT_METRICS: tuple[str, ...] = ("test_hr@10", "test_ndcg@10", "test_auc")
# (label, metric under paper, metric under holdout): the same quantity under both protocols.
GAP_METRICS: tuple[tuple[str, str, str], ...] = (
    ("auc", "test_auc", "test_auc"),
    ("precision_pos", "test_precision_pos", "test_precision"),
    ("recall_pos", "test_recall_pos", "test_recall"),
    ("f1_pos", "test_f1_pos", "test_f1"),
)
MODEL_ORDER: tuple[str, ...] = ("gmf", "mlp", "neumf")
SECTION_TITLES: tuple[str, ...] = (
    "1. Leaderboard",
    "2. Best per model type",
    "3. Threshold x terms",
    "4. Negatives x model and other pivots",
    "5. Strategy comparison",
    "6. Protocol gap",
)


@dataclass
class Summary:
    """Everything `summarize_dir` produced: the tables (also written as CSV), the PNG paths, the
    markdown of summary.md and the notes about missing or failed trials."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    markdown: str = ""
    notes: list[str] = field(default_factory=list)


# -- small helpers ------------------------------------------------------------------------------


def _cfg(key: str) -> str:
    """Column name of config key `key` ("threshold" or "config.threshold" -> "config.threshold")."""
    return key if key.startswith("config.") else f"config.{key}"


def _bare(col: str) -> str:
    return col.removeprefix("config.")


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column `name`, or an all-NaN column where a partial sweep's frame lacks it."""
    if name in df.columns:
        return df[name]
    return pd.Series(np.nan, index=df.index, dtype="float64")


def _numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


def _sort_key(v: Any) -> tuple[int, float, str]:
    """Natural order of axis values: numbers (also numeric strings) by value, then ratios like
    '4x' by ratio, then other strings, then missing values."""
    if _is_missing(v):
        return (3, 0.0, "")
    if isinstance(v, bool | np.bool_):
        return (0, float(v), "")
    if isinstance(v, int | float | np.integer | np.floating):
        return (0, float(v), "")
    s = str(v)
    try:
        return (0, float(s), "")
    except ValueError:
        pass
    m = _RATIO.match(s)
    if m:
        return (1, float(m.group(1)), "")
    return (2, 0.0, s)


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Distinct values in natural order (one missing value at most)."""
    out: list[Any] = []
    seen_missing = False
    for v in pd.unique(pd.Series(list(values), dtype="object")):
        if _is_missing(v):
            if not seen_missing:
                out.append(None)
                seen_missing = True
            continue
        out.append(v)
    return sorted(out, key=_sort_key)


def _same(a: Any, b: Any) -> bool:
    if _is_missing(a) or _is_missing(b):
        return _is_missing(a) and _is_missing(b)
    return a == b


def _mask_eq(s: pd.Series, v: Any) -> pd.Series:
    return s.isna() if _is_missing(v) else s == v


def _label(v: Any) -> str:
    """Human form of an axis value: 0.5 not 0.5000000001, '-' for a missing value."""
    if _is_missing(v):
        return "-"
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def _py(v: Any) -> Any:
    """numpy scalar -> python scalar (for attrs and messages)."""
    return v.item() if isinstance(v, np.generic) else v


def mean_ci(values: Iterable[float], level: float = CI_LEVEL) -> tuple[float, float, int]:
    """Mean, t-based confidence half-width and n of the finite values (half-width NaN if n < 2).

    The interval is mean +- t_{(1+level)/2, n-1} * s / sqrt(n), as scipy.stats.t.interval.
    """
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    return mean, float(stats.t.ppf((1.0 + level) / 2.0, n - 1) * sem), n


def _fmt(v: Any, digits: int = 4) -> str:
    if _is_missing(v) or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    v = float(v)
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def _pm(mean: float, ci: float, n: int | None = None) -> str:
    """'0.8123 +- 0.0100 (n=3)': the way every number appears in summary.md."""
    if _is_missing(mean):
        return "n/a"
    body = _fmt(mean) if _is_missing(ci) else f"{_fmt(mean)} +- {_fmt(ci)}"
    return body if n is None else f"{body} (n={int(n)})"


def _fmt_p(p: float) -> str:
    if _is_missing(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float) -> str:
    """'p=0.030' or 'p<0.001', for sentences."""
    s = _fmt_p(p)
    return f"p{s}" if s.startswith("<") else f"p={s}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def cell(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _check_mode(mode: str) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")


def _usable(trials: pd.DataFrame, objective: str | None = None) -> pd.DataFrame:
    """Completed or early-stopped trials (with a finite best objective when one is named)."""
    if trials.empty or "status" not in trials.columns:
        return trials.iloc[0:0]
    ok = trials["status"].isin(USABLE_STATUSES)
    if objective is not None:
        ok &= np.isfinite(_numeric(_col(trials, f"best.{objective}")))
    return trials[ok]


def varying_axes(trials: pd.DataFrame) -> list[str]:
    """Config keys (without the 'config.' prefix) that take more than one value in `trials`."""
    out = []
    for c in trials.columns:
        if c.startswith("config.") and trials[c].nunique(dropna=False) > 1:
            out.append(_bare(c))
    return out


def _group_cols(trials: pd.DataFrame, axes: Iterable[str] | None, drop: Iterable[str]) -> list[str]:
    axes = varying_axes(trials) if axes is None else list(axes)
    dropped = {_bare(d) for d in drop}
    cols = []
    for a in axes:
        c = _cfg(a)
        if _bare(c) not in dropped and c in trials.columns and c not in cols:
            cols.append(c)
    return cols


def _groups(df: pd.DataFrame, cols: list[str]) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(key tuple, rows) per distinct combination of `cols`, missing values kept as a group."""
    if not cols:
        return [((), df)] if len(df) else []
    out = []
    for key, g in df.groupby(cols, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((tuple(_py(k) for k in key), g))
    return out


def _test_counterpart(objective: str) -> str | None:
    """'val_hr@10' -> 'test_hr@10': the test metric reported alongside a validation objective."""
    return "test_" + objective.removeprefix("val_") if objective.startswith("val_") else None


def _default_objective(protocol: str) -> str:
    # Same rule as ocfb.algorithm.default_objective, restated so that summarizing does not
    # import torch (the algorithm module's dependency) just for this mapping.
    return "val_hr@10" if protocol == "holdout" else "test_auc"


# -- pure summaries -----------------------------------------------------------------------------


def leaderboard(
    trials: pd.DataFrame,
    objective: str,
    mode: str,
    axes: Sequence[str] | None,
    top: int | None = LEADERBOARD_TOP,
) -> pd.DataFrame:
    """Configurations ranked by the objective at each trial's best term: mean, 95 % CI and n over
    seeds (grouping by every axis but seed), mean term of best, and the test counterpart of a
    validation objective. `top=None` keeps every configuration; attrs["n_configs"] = the total."""
    _check_mode(mode)
    ok = _usable(trials, objective)
    cols = _group_cols(trials, axes, drop=("seed",))
    test_metric = _test_counterpart(objective)
    rows = []
    for key, g in _groups(ok, cols):
        mean, ci, n = mean_ci(_numeric(g[f"best.{objective}"]))
        row: dict[str, Any] = {_bare(c): v for c, v in zip(cols, key, strict=True)}
        row.update(mean=mean, ci95=ci, ci_low=mean - ci, ci_high=mean + ci, n_seeds=n)
        row["best_term"] = mean_ci(_numeric(_col(g, "best_term")))[0]
        if test_metric and f"best.{test_metric}" in g.columns:
            t_mean, t_ci, _ = mean_ci(_numeric(g[f"best.{test_metric}"]))
            row[test_metric] = t_mean
            row[f"{test_metric}_ci95"] = t_ci
        rows.append(row)
    stat_cols = ["mean", "ci95", "ci_low", "ci_high", "n_seeds", "best_term"]
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[_bare(c) for c in cols] + stat_cols)
    if rows:
        # Ties keep the natural order of the axis values, so the table is deterministic.
        order = sorted(
            range(len(df)),
            key=lambda i: (
                -df["mean"].iat[i] if mode == "max" else df["mean"].iat[i],
                tuple(_sort_key(df[_bare(c)].iat[i]) for c in cols),
            ),
        )
        df = df.iloc[order].reset_index(drop=True)
    n_configs = len(df)
    if top is not None:
        df = df.head(top).copy()
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df.attrs["n_configs"] = n_configs
    df.attrs["axes"] = [_bare(c) for c in cols]
    df.attrs["objective"] = objective
    return df


def _metric_at_best(
    trial: pd.Series, metric: str, terms: pd.DataFrame | None
) -> float:
    """A trial's `metric` at its best term: the best.<metric> column, else read off terms."""
    v = trial.get(f"best.{metric}", np.nan)
    v = float(v) if not _is_missing(v) else math.nan
    if math.isfinite(v) or terms is None or metric not in terms.columns:
        return v
    bt = trial.get("best_term", np.nan)
    if _is_missing(bt):
        return math.nan
    hit = terms[(terms["trial_id"] == trial["trial_id"]) & (terms["term"] == int(bt))]
    return float(hit[metric].iloc[0]) if len(hit) else math.nan


def best_per_model(
    trials: pd.DataFrame,
    terms: pd.DataFrame | None,
    objective: str,
    mode: str,
    protocol: str,
    axes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each model type's best configuration (by mean objective over seeds) with, averaged over its
    seeds at each seed's best term, the paper's classification report (`paper`) or the test
    ranking metrics (`holdout`); each metric as mean and `<metric>_ci95`."""
    _check_mode(mode)
    if protocol not in ("paper", "holdout"):
        raise ValueError(f"protocol must be 'paper' or 'holdout', got {protocol!r}")
    metrics = PAPER_REPORT_METRICS if protocol == "paper" else HOLDOUT_RANKING_METRICS
    ok = _usable(trials, objective)
    axes = varying_axes(trials) if axes is None else list(axes)
    other = _group_cols(trials, axes, drop=("seed", "model"))
    rows = []
    models = _ordered(_col(ok, "config.model")) if len(ok) else []
    for model in models:
        sub = ok[_mask_eq(_col(ok, "config.model"), model)]
        board = leaderboard(sub, objective, mode, [_bare(c) for c in other], top=1)
        if board.empty:
            continue
        best = board.iloc[0]
        g = sub
        for c in other:
            g = g[_mask_eq(g[c], best[_bare(c)])]
        row: dict[str, Any] = {"model": model}
        row.update({_bare(c): best[_bare(c)] for c in other})
        row.update(
            n_seeds=int(best["n_seeds"]),
            best_term=float(best["best_term"]),
            objective=objective,
            mean=float(best["mean"]),
            ci95=float(best["ci95"]),
            trials=",".join(str(t) for t in g["trial_id"]),
        )
        for m in metrics:
            vals = [_metric_at_best(t, m, terms) for _, t in g.iterrows()]
            mean, ci, _ = mean_ci(vals)
            row[m] = mean
            row[f"{m}_ci95"] = ci
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update(protocol=protocol, objective=objective, axes=[_bare(c) for c in other])
    return df


def _cells(df: pd.DataFrame, a: str, b: str, value: str) -> pd.DataFrame:
    """Long table of mean / CI / n of `value` per (a, b) cell, cells in natural order."""
    rows = []
    for ka in _ordered(df[a]) if len(df) else []:
        da = df[_mask_eq(df[a], ka)]
        for kb in _ordered(da[b]):
            mean, ci, n = mean_ci(_numeric(da[_mask_eq(da[b], kb)][value]))
            if n == 0:
                continue
            rows.append({a: ka, b: kb, "mean": mean, "ci95": ci,
                         "ci_low": mean - ci, "ci_high": mean + ci, "n": n})
    cols = [a, b, "mean", "ci95", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=cols)


def _mark_best(out: pd.DataFrame, a: str, b: str, mode: str) -> pd.DataFrame:
    """Set attrs["best"] = (a value, b value) of the best mean (ties: the first cell)."""
    best, best_value = None, math.nan
    for i in range(len(out)):
        v = out["mean"].iat[i]
        if math.isfinite(v) and (best is None or _better(v, best_value, mode)):
            best, best_value = (_py(out[a].iat[i]), _py(out[b].iat[i])), float(v)
    out.attrs["best"] = best
    out.attrs["best_value"] = best_value
    return out


def axis_by_term(terms: pd.DataFrame, axis: str, objective: str, mode: str) -> pd.DataFrame:
    """Objective per (axis value, term), averaged over seeds and the other axes (one row per
    trial and term counts once): long table axis, term, mean, ci95, ci_low, ci_high, n.
    attrs["best"] = (axis value, term) of the best cell, attrs["best_value"] its mean."""
    _check_mode(mode)
    col = _cfg(axis)
    name = _bare(col)
    if len(terms) and col not in terms.columns:
        raise KeyError(f"terms has no column {col!r}; it varies axes {varying_axes(terms)}")
    if objective not in terms.columns or terms.empty:
        out = pd.DataFrame(columns=[name, "term", "mean", "ci95", "ci_low", "ci_high", "n"])
        return _mark_best(out, name, "term", mode)
    df = terms[[col, "term", objective]].rename(columns={col: name})
    df = df[np.isfinite(_numeric(df[objective]))]
    out = _cells(df, name, "term", objective)
    out["term"] = out["term"].astype("int64")
    return _mark_best(out, name, "term", mode)


def pivot(trials: pd.DataFrame, a: str, b: str, objective: str, mode: str) -> pd.DataFrame:
    """Objective (each trial at its best term) per (a, b) cell, averaged over seeds and the other
    axes: long table a, b, mean, ci95, ci_low, ci_high, n; attrs["best"] = the best cell."""
    _check_mode(mode)
    ca, cb = _cfg(a), _cfg(b)
    if ca == cb:
        raise ValueError(f"pivot needs two different axes, got {a!r} twice")
    missing = [c for c in (ca, cb) if c not in trials.columns]
    if missing:
        raise KeyError(f"trials has no column(s) {missing}")
    ok = _usable(trials, objective)
    df = ok[[ca, cb, f"best.{objective}"]].rename(columns={ca: _bare(ca), cb: _bare(cb)})
    out = _cells(df, _bare(ca), _bare(cb), f"best.{objective}")
    return _mark_best(out, _bare(ca), _bare(cb), mode)


def to_grid(cells: pd.DataFrame, a: str, b: str, value: str = "mean") -> pd.DataFrame:
    """Wide a x b view of a long cell table (rows a, columns b), values in natural order."""
    rows, cols = _ordered(cells[a]), _ordered(cells[b])
    grid = pd.DataFrame(np.nan, index=range(len(rows)), columns=range(len(cols)), dtype=object)
    for i in range(len(cells)):
        r = next(k for k, v in enumerate(rows) if _same(v, cells[a].iat[i]))
        c = next(k for k, v in enumerate(cols) if _same(v, cells[b].iat[i]))
        grid.iat[r, c] = cells[value].iat[i]
    grid.index = pd.Index([_label(v) for v in rows], name=a)
    grid.columns = pd.Index([_label(v) for v in cols], name=b)
    return grid


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order; NaN stays NaN and is not
    counted in the family size."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        # Step-down: the k-th smallest p is multiplied by (m - k + 1), and adjusted p-values are
        # made monotone so that a larger raw p never gets a smaller adjusted one.
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _paired_tests(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test and Wilcoxon signed-rank p-values (NaN where n does not allow)."""
    d = x - y
    n = d.size
    if n < 2:
        return math.nan, math.nan
    if np.all(d == 0):
        # No difference at all: no evidence of one (scipy would return NaN from 0 / 0).
        return 1.0, (1.0 if n >= WILCOXON_MIN_N else math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(stats.ttest_rel(x, y).pvalue)
        w_p = math.nan
        if np.count_nonzero(d) >= WILCOXON_MIN_N:
            w_p = float(stats.wilcoxon(x, y).pvalue)
    return t_p, w_p


def _strategy_order(values: Iterable[Any]) -> list[Any]:
    known = {s: i for i, s in enumerate(STRATEGIES)}
    return sorted(_ordered(values), key=lambda s: (known.get(s, len(known)), _sort_key(s)))


def strategy_comparison(
    trials: pd.DataFrame, objective: str, mode: str, reference: str = "ocfb"
) -> tuple[pd.DataFrame, str]:
    """Each strategy's objective (mean, CI, n) and, paired over seeds (and the other varying
    axes), `reference` minus each other strategy: mean difference, paired t-test and Wilcoxon
    p-values, both Holm-corrected over the comparisons, and a plain sentence per comparison."""
    _check_mode(mode)
    ok = _usable(trials, objective)
    scol, value = "config.strategy", f"best.{objective}"
    if scol not in ok.columns or ok.empty:
        return pd.DataFrame(), "No completed trial has a strategy and the objective: no comparison."
    # Trials pair when they share every varying config key except the strategy itself
    # (replace_fraction only means something to random-replace, so it does not split pairs).
    keys = _group_cols(ok, None, drop=("strategy", "replace_fraction"))
    arms = _strategy_order(ok[scol])
    per_arm: dict[Any, pd.Series] = {}
    for s in arms:
        g = ok[ok[scol] == s]
        if keys:
            per_arm[s] = g.groupby(keys, dropna=False)[value].mean()
        else:
            per_arm[s] = pd.Series([g[value].mean()])
    rows = []
    for s in arms:
        mean, ci, n = mean_ci(_numeric(ok[ok[scol] == s][value]))
        rows.append({"strategy": s, "mean": mean, "ci95": ci, "ci_low": mean - ci,
                     "ci_high": mean + ci, "n": n})
    df = pd.DataFrame(rows)
    for c in ("n_pairs", "diff", "diff_ci95", "t_p", "wilcoxon_p"):
        df[c] = np.nan
    if reference not in arms:
        df["t_p_holm"] = np.nan
        df["wilcoxon_p_holm"] = np.nan
        df["verdict"] = ""
        return df, f"No completed {reference} trial: nothing to compare the other strategies to."
    unit = "seeds" if [_bare(k) for k in keys] == ["seed"] else "pairs matched on seed and config"
    ref = per_arm[reference]
    for i, s in enumerate(arms):
        if s == reference:
            continue
        both = pd.concat([ref.rename("ref"), per_arm[s].rename("other")], axis=1, join="inner")
        both = both[np.isfinite(both["ref"]) & np.isfinite(both["other"])]
        x, y = both["ref"].to_numpy(float), both["other"].to_numpy(float)
        d_mean, d_ci, n = mean_ci(x - y)
        t_p, w_p = _paired_tests(x, y)
        cols = ["n_pairs", "diff", "diff_ci95", "t_p", "wilcoxon_p"]
        df.loc[i, cols] = [n, d_mean, d_ci, t_p, w_p]
    df["n_pairs"] = df["n_pairs"].astype("Int64")
    df["t_p_holm"] = holm(df["t_p"].to_numpy(float))
    df["wilcoxon_p_holm"] = holm(df["wilcoxon_p"].to_numpy(float))
    verdicts, sentences = [], []
    for i, s in enumerate(arms):
        if s == reference:
            verdicts.append("reference")
            continue
        r = df.iloc[i]
        n = 0 if _is_missing(r["n_pairs"]) else int(r["n_pairs"])
        if n < 2 or _is_missing(r["t_p_holm"]):
            verdicts.append("no test")
            sentences.append(
                f"{reference} vs {s}: only {n} paired {unit}, too few for a test "
                f"(mean difference {_fmt(r['diff'])} {objective})."
            )
            continue
        d, p = float(r["diff"]), float(r["t_p_holm"])
        verdict = "beyond noise" if p < ALPHA else "within noise"
        verdicts.append(verdict)
        if d == 0:
            verb = "ties"
        else:
            verb = "beats" if _better(d, 0.0, mode) else "trails"
        by = "" if d == 0 else f" by {_fmt(abs(d))} {objective}"
        wil = "" if _is_missing(r["wilcoxon_p_holm"]) else (
            f"; Wilcoxon {_p_is(float(r['wilcoxon_p_holm']))}"
        )
        sentences.append(
            f"{reference} {verb} {s}{by} (paired t-test {_p_is(p)} after Holm{wil}, "
            f"{n} {unit}): {verdict}."
        )
    df["verdict"] = verdicts
    direction = "higher" if mode == "max" else "lower"
    text = "\n".join(sentences) + (
        f"\n(diff = {reference} minus the other strategy; {direction} {objective} is better; "
        f"beyond noise = Holm-corrected paired t-test p < {ALPHA}.)"
        if sentences
        else ""
    )
    df.attrs.update(reference=reference, objective=objective, pair_keys=[_bare(k) for k in keys])
    return df, text.strip()


def _term_gains(trials: pd.DataFrame, terms: pd.DataFrame, metric: str) -> pd.Series:
    """Per trial: metric at its last term minus metric at term 0 (NaN where either is missing)."""
    if metric not in terms.columns:
        return pd.Series(np.nan, index=trials["trial_id"].to_numpy(), dtype="float64")
    t = terms[terms["trial_id"].isin(trials["trial_id"])][["trial_id", "term", metric]]
    t = t.sort_values(["trial_id", "term"])
    first = t[t["term"] == 0].groupby("trial_id")[metric].first()
    # The row of the highest term, even where its value is NaN (groupby.last would skip it).
    last = t.groupby("trial_id").tail(1).set_index("trial_id")[metric]
    gain = (last - first).reindex(trials["trial_id"].to_numpy())
    return _numeric(gain)


def protocol_gap(trials: pd.DataFrame, terms: pd.DataFrame) -> pd.DataFrame | None:
    """How much of OCF-B's gain (last term minus term 0, completed `ocfb` trials) under the
    `paper` protocol survives under `holdout`, per comparable metric and model type (and 'all').
    None when the sweep did not run both protocols."""
    if trials.empty or "config.protocol" not in trials.columns or terms is None or terms.empty:
        return None
    done = trials[_col(trials, "status") == "completed"]
    if "config.strategy" in done.columns:
        done = done[done["config.strategy"] == "ocfb"]
    by_protocol = {p: done[done["config.protocol"] == p] for p in ("paper", "holdout")}
    if any(g.empty for g in by_protocol.values()):
        return None
    models = _ordered(_col(done, "config.model"))
    groups: list[tuple[str, Any]] = [(_label(m), m) for m in models if not _is_missing(m)]
    if len(groups) != 1:
        groups.append(("all", None))
    else:
        groups = [("all", None)]
    rows = []
    for label, paper_metric, holdout_metric in GAP_METRICS:
        gains = {
            "paper": _term_gains(by_protocol["paper"], terms, paper_metric),
            "holdout": _term_gains(by_protocol["holdout"], terms, holdout_metric),
        }
        for glabel, model in groups:
            row: dict[str, Any] = {"metric": label, "model": glabel,
                                   "paper_metric": paper_metric, "holdout_metric": holdout_metric}
            for p, g in by_protocol.items():
                sel = gains[p]
                if model is not None:
                    sel = sel[(_col(g, "config.model") == model).to_numpy()]
                mean, ci, n = mean_ci(sel)
                row.update({f"{p}_gain": mean, f"{p}_ci95": ci, f"n_{p}": n})
            pg, hg = row["paper_gain"], row["holdout_gain"]
            row["survives"] = hg / pg if math.isfinite(pg) and pg > 0 and math.isfinite(hg) else (
                math.nan
            )
            if row["n_paper"] or row["n_holdout"]:
                rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _describe(trial: pd.Series, axes: Sequence[str]) -> str:
    parts = [f"{_bare(c)}={_label(trial.get(c))}" for c in axes if c in trial.index]
    return f"{trial['trial_id']} ({', '.join(parts)})" if parts else str(trial["trial_id"])


def _first_line(msg: Any, limit: int = 200) -> str:
    if _is_missing(msg) or not str(msg).strip():
        return ""
    line = str(msg).strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _terms_done(trial: pd.Series) -> str:
    v = trial.get("terms_done")
    return "?" if _is_missing(v) else str(int(v))


def missing_and_failed(
    trials: pd.DataFrame,
    expected: int | None,
    axes: Sequence[str] | None = None,
    objective: str | None = None,
) -> list[str]:
    """One note per trial that errored, diverged, is still running or pending (naming its
    configuration and why), one for the early-stopped trials, and one for the expected trials
    that are absent from trials.parquet."""
    notes: list[str] = []
    n = len(trials)
    if n and "status" in trials.columns:
        cols = _group_cols(trials, axes, drop=())
        status = trials["status"].astype("object")
        for _, t in trials[status == "error"].iterrows():
            why = _first_line(t.get("error")) or "no error message recorded"
            notes.append(f"Trial {_describe(t, cols)} errored after {_terms_done(t)} term(s): "
                         f"{why}. Left out of every table.")
        for _, t in trials[status == "diverged"].iterrows():
            why = _first_line(t.get("error"))
            notes.append(
                f"Trial {_describe(t, cols)} diverged (non-finite training loss) after "
                f"{_terms_done(t)} term(s){': ' + why if why else ''}. Left out of every table."
            )
        for _, t in trials[status == "running"].iterrows():
            notes.append(
                f"Trial {_describe(t, cols)} is still marked running after {_terms_done(t)} "
                "term(s): the sweep was interrupted or is in progress; `resume` finishes it. "
                "Its partial results are left out."
            )
        for _, t in trials[status == "pending"].iterrows():
            notes.append(f"Trial {_describe(t, cols)} is pending: it never started. "
                         "`resume` runs it.")
        stopped = trials[status == "stopped"]
        if len(stopped):
            done = _numeric(_col(stopped, "terms_done"))
            span = (f" after {int(done.min())}-{int(done.max())} term(s)"
                    if done.notna().any() else "")
            notes.append(
                f"{len(stopped)} trial(s) were stopped early by the scheduler{span} and count at "
                f"their best term: {', '.join(str(t) for t in stopped['trial_id'])}."
            )
        known = set(USABLE_STATUSES) | {"error", "diverged", "running", "pending"}
        for _, t in trials[~status.isin(known)].iterrows():
            notes.append(f"Trial {_describe(t, cols)} has unknown status {t['status']!r}; "
                         "left out.")
        if objective is not None:
            fine = trials[status.isin(USABLE_STATUSES)]
            bad = fine[~np.isfinite(_numeric(_col(fine, f"best.{objective}")))]
            # One line per protocol: a paper-protocol trial never logs a validation metric,
            # and listing each of them would bury the real failures.
            by = "config.protocol" if "config.protocol" in bad.columns else None
            for p, g in _groups(bad, [by] if by else []):
                where = f" under protocol {_label(p[0])}" if by else ""
                ids = [str(t) for t in g["trial_id"]]
                more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
                shown = ", ".join(ids[:10]) + more
                notes.append(
                    f"{len(ids)} completed trial(s){where} have no finite {objective}, so they are "
                    f"left out of the tables ranked by it (sections 1, 3-5): {shown}."
                )
    if expected is not None:
        if n < expected:
            notes.append(
                f"{expected - n} of {expected} expected trial(s) are absent from trials.parquet: "
                "the sweep stopped before creating them; `resume` runs them."
            )
        elif n > expected:
            notes.append(f"trials.parquet holds {n} trials, more than the {expected} expected.")
    return notes


# -- plots --------------------------------------------------------------------------------------


def _new_figure(nrows: int = 1, ncols: int = 1):  # noqa: ANN202 - matplotlib types, imported lazily
    # The object-oriented API without pyplot: no global backend or figure registry is touched,
    # so summarizing inside a notebook or a Ray driver has no side effects.
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axs


def _save_png(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    """Save atomically (temporary name, then rename) at the fixed size: never bbox 'tight',
    which would change the pixel size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _curve(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and CI half-width of `metric` per term over the given trial-term rows."""
    out = []
    for term, g in rows.groupby("term", sort=True):
        mean, ci, n = mean_ci(_numeric(g[metric]))
        if n:
            out.append({"term": int(term), "mean": mean, "ci95": ci, "n": n})
    return pd.DataFrame(out, columns=["term", "mean", "ci95", "n"])


def _draw_curve(ax, curve: pd.DataFrame, label: str, color: Any) -> None:  # noqa: ANN001
    ax.plot(curve["term"], curve["mean"], marker="o", ms=3, color=color, label=label)
    band = curve["ci95"].fillna(0.0)
    ax.fill_between(curve["term"], curve["mean"] - band, curve["mean"] + band, color=color,
                    alpha=0.2, linewidth=0)


def _model_color(model: Any, i: int) -> str:
    try:
        return f"C{MODEL_ORDER.index(model)}"
    except ValueError:
        return f"C{(i + len(MODEL_ORDER)) % 10}"


def plot_metrics_vs_term(
    terms: pd.DataFrame, best: pd.DataFrame, metrics: Sequence[str], title: str, path: Path
) -> Path | None:
    """Each metric against the term for every model type's best configuration, mean line and a
    95 % CI band over its seeds (the paper's Figures 5-6). None when there is nothing to draw."""
    metrics = [m for m in dict.fromkeys(metrics) if m in terms.columns]
    if best.empty or not metrics or terms.empty:
        return None
    ncols = 1 if len(metrics) == 1 else (2 if len(metrics) <= 4 else 3)
    nrows = math.ceil(len(metrics) / ncols)
    fig, axs = _new_figure(nrows, ncols)
    for k, metric in enumerate(metrics):
        ax = axs[k // ncols][k % ncols]
        for i, (_, b) in enumerate(best.iterrows()):
            ids = str(b["trials"]).split(",")
            curve = _curve(terms[terms["trial_id"].astype(str).isin(ids)], metric)
            if curve.empty:
                continue
            _draw_curve(ax, curve, f"{b['model']} ({int(curve['n'].max())} seeds)",
                        _model_color(b["model"], i))
        ax.set_title(metric)
        ax.set_xlabel("term (0 = plain negative sampling)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    for k in range(len(metrics), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(title)
    return _save_png(fig, path)


def plot_heatmap(
    cells: pd.DataFrame, axis: str, objective: str, mode: str, title: str, path: Path
) -> Path | None:
    """Heat map of the objective over (axis value, term) from `axis_by_term`, best cell framed."""
    if cells.empty:
        return None
    from matplotlib.patches import Rectangle

    grid = to_grid(cells, axis, "term").astype(float)
    fig, axs = _new_figure()
    ax = axs[0][0]
    im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower",
                   cmap="viridis" if mode == "max" else "viridis_r")
    ax.set_xticks(range(grid.shape[1]), list(grid.columns))
    ax.set_yticks(range(grid.shape[0]), list(grid.index))
    ax.set_xlabel("term (0 = plain negative sampling)")
    ax.set_ylabel(axis)
    better = "higher" if mode == "max" else "lower"
    fig.colorbar(im, ax=ax, label=f"{objective} (mean; {better} is better)")
    if grid.size <= 200:
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                v = grid.iat[r, c]
                if math.isfinite(v):
                    # Dark text on the bright end of the colour map, light text on the dark end.
                    bright = im.norm(v) > 0.6 if mode == "max" else im.norm(v) < 0.4
                    ax.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=9,
                            color="black" if bright else "white")
    best = cells.attrs.get("best")
    if best is not None:
        r = list(grid.index).index(_label(best[0]))
        c = list(grid.columns).index(_label(best[1]))
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red",
                               linewidth=2.5, label=f"best: {axis}={_label(best[0])}, "
                               f"term {best[1]}"))
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.08), fontsize="small")
    ax.set_title(title)
    return _save_png(fig, path)


def plot_strategies(
    trials: pd.DataFrame, terms: pd.DataFrame, objective: str, title: str, path: Path
) -> Path | None:
    """Left: each strategy's objective (mean +- 95 % CI and one dot per trial); right: the
    objective against the term per strategy with a CI band."""
    ok = _usable(trials, objective)
    if ok.empty or "config.strategy" not in ok.columns:
        return None
    arms = _strategy_order(ok["config.strategy"])
    fig, axs = _new_figure(1, 2)
    left, right = axs[0]
    rng = np.random.default_rng(0)  # fixed jitter: the same data always draws the same picture
    for i, s in enumerate(arms):
        vals = _numeric(ok[ok["config.strategy"] == s][f"best.{objective}"]).dropna()
        mean, ci, n = mean_ci(vals)
        left.errorbar([i], [mean], yerr=None if _is_missing(ci) else [ci], fmt="s", ms=9,
                      capsize=8, color=f"C{i}", label=f"{s}: mean \u00b1 95% CI (n={n})")
        left.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, s=14, alpha=0.6,
                     color=f"C{i}")
        if not terms.empty and objective in terms.columns:
            ids = set(ok[ok["config.strategy"] == s]["trial_id"].astype(str))
            curve = _curve(terms[terms["trial_id"].astype(str).isin(ids)], objective)
            if not curve.empty:
                _draw_curve(right, curve, s, f"C{i}")
    left.set_xticks(range(len(arms)), [str(s) for s in arms])
    left.set_xlabel("negative-sampling strategy")
    left.set_ylabel(f"{objective} at each trial's best term")
    left.set_title("objective per strategy (dots: trials)")
    left.grid(alpha=0.3, axis="y")
    left.legend(fontsize="small")
    right.set_xlabel("term (0 = plain negative sampling)")
    right.set_ylabel(objective)
    right.set_title("objective vs term (mean, 95% CI band)")
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize="small")
    fig.suptitle(title)
    return _save_png(fig, path)


# -- summary.md ---------------------------------------------------------------------------------


def _read_parquet(path: Path, notes: list[str]) -> pd.DataFrame:
    if not path.is_file():
        notes.append(f"{path.name} is missing: the sweep has not recorded any {path.stem} yet.")
        return pd.DataFrame()
    return pd.read_parquet(path)


def _with_config(terms: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """terms with every config.<key> column of trials (the runner denormalises them, but an
    older or partial terms file may lack some)."""
    if terms.empty or trials.empty or "trial_id" not in trials.columns:
        return terms
    need = [c for c in trials.columns if c.startswith("config.") and c not in terms.columns]
    if not need:
        return terms
    return terms.merge(trials[["trial_id", *need]], on="trial_id", how="left")


def _config_label(row: pd.Series, axes: Sequence[str]) -> str:
    return ", ".join(f"{a}={_label(row[a])}" for a in axes if a in row.index) or "-"


def _section_leaderboard(board: pd.DataFrame, objective: str, mode: str) -> str:
    if board.empty:
        return "_Not applicable: no completed trial has a finite objective yet._"
    axes = board.attrs.get("axes", [])
    test_metric = _test_counterpart(objective)
    has_test = test_metric is not None and test_metric in board.columns
    header = ["rank", *axes, f"{objective} (mean +- 95% CI, n seeds)"]
    header += [f"{test_metric} (test, same term)"] if has_test else []
    header += ["best term (mean)"]
    rows = []
    for _, r in board.iterrows():
        row = [str(r["rank"]), *[_label(r[a]) for a in axes]]
        row.append(_pm(r["mean"], r["ci95"], r["n_seeds"]))
        row += [_pm(r[test_metric], r[f"{test_metric}_ci95"])] if has_test else []
        row.append(_fmt(r["best_term"], 1))
        rows.append(row)
    n_cfg = board.attrs.get("n_configs", len(board))
    better = "higher" if mode == "max" else "lower"
    lines = [
        f"Top {len(board)} of {n_cfg} configuration(s) by `{objective}` ({better} is better), "
        "each trial taken at its best term; mean +- 95% CI (t) over seeds.",
        "",
        _md_table(header, rows),
    ]
    if len(board) >= 2 and all(_is_missing(x) is False for x in board["ci95"].iloc[:2]):
        a, b = board.iloc[0], board.iloc[1]
        overlap = (a["ci_low"] <= b["ci_high"]) if mode == "max" else (a["ci_high"] >= b["ci_low"])
        lines += [
            "",
            f"The winner ({_config_label(a, axes)}) leads the runner-up by "
            f"{_fmt(abs(a['mean'] - b['mean']))}; their 95% CIs "
            + ("overlap: the lead may be noise." if overlap else "do not overlap."),
        ]
    return "\n".join(lines)


def _section_best_per_model(per_protocol: list[tuple[str, str, pd.DataFrame]]) -> str:
    parts = []
    for protocol, objective, best in per_protocol:
        if best.empty:
            parts.append(f"_Protocol {protocol}: no completed trial has `{objective}`._")
            continue
        axes = best.attrs.get("axes", [])
        head = (f"Protocol `{protocol}`: each model type's best configuration by `{objective}`; "
                "metrics averaged over its seeds, each seed at its best term.")
        parts.append(head)
        if protocol == "paper":
            for _, r in best.iterrows():
                report = {m.removeprefix("test_"): r[m] for m in PAPER_REPORT_METRICS}
                title = (f"{r['model']} ({_config_label(r, axes)}; {int(r['n_seeds'])} seed(s), "
                         f"best term {_fmt(r['best_term'], 1)} on average)")
                try:
                    body = format_classification_report(report, title=title)
                except (ValueError, TypeError):
                    body = f"{title}\n(classification report not recorded)"
                body += f"\nAUC {_pm(r['test_auc'], r['test_auc_ci95'])}"
                parts.append("```\n" + body + "\n```")
        else:
            metrics = [m for m in HOLDOUT_RANKING_METRICS if m in best.columns]
            header = ["metric", *[str(m) for m in best["model"]]]
            rows = [["configuration", *[_config_label(r, axes) for _, r in best.iterrows()]],
                    ["seeds", *[str(int(n)) for n in best["n_seeds"]]],
                    ["best term (mean)", *[_fmt(t, 1) for t in best["best_term"]]],
                    [f"{objective} (selection)",
                     *[_pm(r["mean"], r["ci95"]) for _, r in best.iterrows()]]]
            rows += [[m, *[_pm(r[m], r[f"{m}_ci95"]) for _, r in best.iterrows()]]
                     for m in metrics]
            parts.append(_md_table(header, rows))
    return "\n\n".join(parts)


def _grid_rows(
    cells: pd.DataFrame, row_key: str, col_key: str, best: tuple[Any, Any] | None
) -> tuple[pd.DataFrame, list[list[Any]]]:
    """Markdown rows of a row_key x col_key grid: "mean +- ci (n)" per cell, the best in bold."""
    grid, ci, n = (to_grid(cells, row_key, col_key, v) for v in ("mean", "ci95", "n"))
    rows = []
    for i, r in enumerate(grid.index):
        row = [r]
        for j, c in enumerate(grid.columns):
            v = grid.iat[i, j]
            s = "" if _is_missing(v) else _pm(v, ci.iat[i, j], n.iat[i, j])
            if best is not None and s and _label(best[0]) == r and _label(best[1]) == c:
                s = f"**{s}**"
            row.append(s)
        rows.append(row)
    return grid, rows


def _section_axis_term(cells: pd.DataFrame, axis: str, objective: str, scope: str) -> str:
    if cells.empty:
        return "_Not applicable: no per-term history of a completed trial yet._"
    best = cells.attrs.get("best")
    grid, rows = _grid_rows(cells, "term", axis, None if best is None else (best[1], best[0]))
    header = ["term", *[f"{axis}={c}" for c in grid.columns]]
    lines = [
        f"`{objective}` at every term for every {axis} ({scope}; mean +- 95% CI over seeds and the "
        "other axes, n = trials). Read off the per-term history: one trial covers every term "
        "count. Term 0 is plain negative sampling.",
        "",
        _md_table(header, rows),
    ]
    if best is not None:
        lines += ["", f"Best cell (bold): {axis}={_label(best[0])} at term {best[1]}, "
                      f"{_fmt(cells.attrs['best_value'])}."]
    return "\n".join(lines)


def _section_pivot(cells: pd.DataFrame, a: str, b: str, objective: str) -> str:
    if cells.empty:
        return f"_{a} x {b}: no completed trial yet._"
    grid, rows = _grid_rows(cells, a, b, cells.attrs.get("best"))
    out = [f"### {a} x {b}", "",
           f"`{objective}` (each trial at its best term), mean +- 95% CI over seeds and the other "
           "axes, n = trials; best cell in bold.", "",
           _md_table([f"{a} \\ {b}", *grid.columns], rows)]
    return "\n".join(out)


def _section_strategies(df: pd.DataFrame, text: str, objective: str) -> str:
    if df.empty:
        return text
    header = ["strategy", f"{objective} (mean +- 95% CI, n)", "paired diff (ocfb - this)",
              "pairs", "t-test p (Holm)", "Wilcoxon p (Holm)", "verdict"]
    rows = []
    for _, r in df.iterrows():
        rows.append([
            str(r["strategy"]),
            _pm(r["mean"], r["ci95"], r["n"]),
            "" if _is_missing(r["diff"]) else _pm(r["diff"], r["diff_ci95"]),
            "" if _is_missing(r["n_pairs"]) else str(int(r["n_pairs"])),
            _fmt_p(r["t_p_holm"]) if not _is_missing(r["t_p_holm"]) else "",
            _fmt_p(r["wilcoxon_p_holm"]) if not _is_missing(r["wilcoxon_p_holm"]) else "",
            str(r["verdict"]),
        ])
    return "\n\n".join([_md_table(header, rows), text])


def _section_gap(gap: pd.DataFrame) -> str:
    header = ["metric", "model", "gain under paper", "gain under holdout", "fraction surviving"]
    rows = [[r["metric"], r["model"], _pm(r["paper_gain"], r["paper_ci95"], r["n_paper"]),
             _pm(r["holdout_gain"], r["holdout_ci95"], r["n_holdout"]),
             "n/a" if _is_missing(r["survives"]) else f"{100 * r['survives']:.0f}%"]
            for _, r in gap.iterrows()]
    lines = ["OCF-B's gain = metric at the last term minus term 0 (completed `ocfb` trials). "
             "Under `paper` the test negatives are rewritten every term, so the test set gets "
             "easier; `holdout` freezes them.", "", _md_table(header, rows)]
    auc = gap[(gap["metric"] == "auc") & (gap["model"] == "all")]
    if len(auc):
        r = auc.iloc[0]
        frac = ("n/a (no positive gain under paper)" if _is_missing(r["survives"])
                else f"{100 * r['survives']:.0f}%")
        lines += ["", f"Test AUC: +{_fmt(r['paper_gain'])} under paper vs "
                      f"{_fmt(r['holdout_gain'])} under holdout; share of the gain that "
                      f"survives: {frac}."]
    return "\n".join(lines)


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


def _status_counts(trials: pd.DataFrame) -> str:
    if trials.empty or "status" not in trials.columns:
        return "none recorded"
    counts = trials["status"].value_counts()
    order = ["completed", "stopped", "running", "pending", "error", "diverged"]
    keys = [k for k in order if k in counts.index] + [k for k in counts.index if k not in order]
    return ", ".join(f"{int(counts[k])} {k}" for k in keys)


def summarize_dir(out_dir: str | Path) -> Summary:
    """Summarize a sweep folder (sweep.json, trials.parquet, terms.parquet; partial sweeps too):
    writes summary.md, tables/<name>.csv and plots/*.png atomically and returns them."""
    d = Path(out_dir)
    spec = _read_sweep(d)
    notes: list[str] = []
    trials = _read_parquet(d / "trials.parquet", notes)
    terms = _read_parquet(d / "terms.parquet", notes)
    terms = _with_config(terms, trials)
    if not terms.empty and "trial_id" in trials.columns:
        ok_ids = set(_usable(trials)["trial_id"])
        terms_ok = terms[terms["trial_id"].isin(ok_ids)]
    else:
        terms_ok = terms.iloc[0:0] if not terms.empty else terms
    # Per-term tables and curves use only trials that ran every term: with early-stopped trials
    # in them, later terms would average the survivors only and look better than they are.
    if not terms_ok.empty and "status" in trials.columns:
        full_ids = set(trials.loc[trials["status"] == "completed", "trial_id"])
        terms_full = terms_ok[terms_ok["trial_id"].isin(full_ids)]
    else:
        terms_full = terms_ok

    name = str(spec.get("name") or d.name)
    protocol = str(spec.get("protocol") or "holdout")
    obj_spec = spec.get("objective") or {}
    objective = str(obj_spec.get("metric") or _default_objective(protocol))
    mode = str(obj_spec.get("mode") or "max")
    _check_mode(mode)
    # The runner's axes first; any other config key that varies among the trials is an axis
    # too (a leaderboard that silently pooled it would mislead).
    axes = [_bare(str(a)) for a in spec.get("axes") or []]
    axes += [a for a in (varying_axes(trials) if len(trials) else []) if a not in axes]
    axes = [a for a in dict.fromkeys(axes) if _cfg(a) in trials.columns]
    expected = spec.get("expected_trials")
    expected = None if expected is None else int(expected)
    notes += missing_and_failed(trials, expected, axes, objective)

    tables: dict[str, pd.DataFrame] = {}
    plots: list[Path] = []
    sections: list[str] = []
    plots_dir = d / "plots"
    usable = _usable(trials, objective)

    # 1. Leaderboard
    # summary.md shows the top configurations; the CSV keeps every one of them.
    board = leaderboard(trials, objective, mode, axes)
    if len(usable):
        tables["leaderboard"] = leaderboard(trials, objective, mode, axes, top=None)
    sections.append(_section_leaderboard(board, objective, mode))

    # 2. Best per model type, per protocol present (a protocol axis runs both).
    protocols = _ordered(_col(_usable(trials), "config.protocol")) if len(trials) else []
    protocols = [p for p in protocols if p in ("paper", "holdout")] or (
        [protocol] if len(usable) else []
    )
    per_protocol = []
    for p in protocols:
        sub = trials if len(protocols) == 1 else trials[_col(trials, "config.protocol") == p]
        obj_p, mode_p = objective, mode
        if _usable(sub, objective).empty:
            obj_p, mode_p = _default_objective(p), "max"
        best = best_per_model(sub, terms_ok, obj_p, mode_p, p, axes)
        per_protocol.append((p, obj_p, best))
        if not best.empty:
            key = "best_per_model" if len(protocols) == 1 else f"best_per_model_{p}"
            tables[key] = best
            metrics = [obj_p, *(PAPER_PLOT_METRICS if p == "paper" else
                                ((_test_counterpart(obj_p) or obj_p), *HOLDOUT_PLOT_METRICS))]
            png = plot_metrics_vs_term(
                terms_full, best, metrics,
                f"{name}: best configuration per model type ({p} protocol), mean and 95% CI "
                "band over seeds", plots_dir / f"metrics_vs_term_{p}.png")
            if png:
                plots.append(png)
    sections.append(_section_best_per_model(per_protocol) if per_protocol else
                    "_Not applicable: no completed trial yet._")

    # 3. Threshold x terms. When strategy varies, only ocfb trials: the threshold is OCF-B's.
    th_terms, scope = terms_full, "trials that ran every term; early-stopped ones left out"
    if "config.strategy" in th_terms.columns and th_terms["config.strategy"].nunique() > 1:
        th_terms, scope = th_terms[th_terms["config.strategy"] == "ocfb"], "ocfb trials only"
    if th_terms.empty or objective not in th_terms.columns or "config.threshold" not in th_terms:
        sections.append("_Not applicable: no per-term history of a completed trial with "
                        f"`{objective}` yet._")
    else:
        cells = axis_by_term(th_terms, "threshold", objective, mode)
        tables["threshold_x_terms"] = cells
        sections.append(_section_axis_term(cells, "threshold", objective, scope))
        if cells["threshold"].nunique() > 1:
            png = plot_heatmap(cells, "threshold", objective, mode,
                               f"{name}: {objective} by threshold and term ({scope})",
                               plots_dir / "threshold_x_terms.png")
            if png:
                plots.append(png)

    # 4. Negatives x model and the other pivots named in sweep.json.
    pairs: list[tuple[str, str]] = [("negatives", "model")]
    for pair in spec.get("pivots") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            t = (_bare(str(pair[0])), _bare(str(pair[1])))
            if t not in pairs:
                pairs.append(t)
    pivot_parts = []
    for a, b in pairs:
        missing = [k for k in (a, b) if _cfg(k) not in trials.columns]
        if missing or usable.empty:
            why = (f"no column(s) {', '.join(_cfg(k) for k in missing)} in trials.parquet"
                   if missing else "no completed trial yet")
            pivot_parts.append(f"### {a} x {b}\n\n_Skipped: {why}._")
            continue
        cells = pivot(trials, a, b, objective, mode)
        tables[f"{a}_x_{b}"] = cells
        pivot_parts.append(_section_pivot(cells, a, b, objective))
    sections.append("\n\n".join(pivot_parts))

    # 5. Strategy comparison
    if "config.strategy" in usable.columns and usable["config.strategy"].nunique() > 1:
        strat, text = strategy_comparison(trials, objective, mode)
        tables["strategies"] = strat
        sections.append(_section_strategies(strat, text, objective))
        png = plot_strategies(trials, terms_ok, objective,
                              f"{name}: negative-sampling strategies on {objective}",
                              plots_dir / "strategies.png")
        if png:
            plots.append(png)
    else:
        sections.append("_Not applicable: the completed trials do not vary `strategy`._")

    # 6. Protocol gap
    gap = protocol_gap(trials, terms)
    if gap is None or gap.empty:
        sections.append("_Not applicable: the sweep has no completed OCF-B trials under both the "
                        "`paper` and `holdout` protocols._")
    else:
        tables["protocol_gap"] = gap
        sections.append(_section_gap(gap))

    n_present = len(trials)
    header = [
        f"# Sweep summary: {name}",
        "",
        f"- Objective: `{objective}` ({mode}imize), protocol: `{protocol}`",
        f"- Trials: {n_present} present"
        + (f" of {expected} expected" if expected is not None else "")
        + f" ({_status_counts(trials)}); {len(usable)} usable for the statistics",
        f"- Axes: {', '.join(axes) if axes else 'none'}",
        "- Every number: mean +- 95% confidence interval (t) and n. Tables as CSV in `tables/`, "
        "plots in `plots/`.",
        "",
        "## Notes",
        "",
        "\n".join(f"- {n}" for n in notes) if notes else (
            "- Every trial completed" + (", none is missing." if expected is not None else ".")
        ),
    ]
    body = [f"## {title}\n\n{text}" for title, text in zip(SECTION_TITLES, sections, strict=True)]
    if plots:
        body.append("## Plots\n\n" + "\n".join(
            f"![{p.stem}](plots/{p.name})" for p in plots))
    markdown = "\n\n".join(["\n".join(header), *body]) + "\n"

    for tname, df in tables.items():
        write_csv(df, d / "tables" / f"{tname}.csv")
    write_text(markdown, d / "summary.md")
    return Summary(tables=tables, plots=plots, markdown=markdown, notes=notes)
