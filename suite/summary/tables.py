"""The comparison tables: pure functions from selected trials / per-term rows to data frames.

Every table reads the per-trial selection (`frames.select`): the validation objective at the
validation-selected term chooses and ranks; test at that term, and at the final term ("fixed
budget"), is what gets reported. Reference baselines (popularity, EASE, ALS) appear as rows
of kind "baseline" beside the trained configurations, never ranked among them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ocfb.names import PROTOCOLS
from suite.summary.frames import (
    HOLDOUT_RANKING_METRICS,
    LEADERBOARD_TOP,
    PAPER_REPORT_METRICS,
    bare,
    better,
    canonicalize,
    check_mode,
    col,
    config_col,
    dedupe,
    ensure_selected,
    group_cols,
    groups,
    is_baseline_row,
    is_missing,
    label,
    mask_eq,
    numeric,
    ordered,
    py,
    report_metric,
    same,
    select,
    sort_key,
    tuning_budget,
    usable,
    value,
    varying_axes,
)
from suite.summary.stats import mean_ci

# (label, metric under paper, metric under holdout): the same quantity under both protocols.
GAP_METRICS: tuple[tuple[str, str, str], ...] = (
    ("auc", "test_auc", "test_auc"),
    ("precision_pos", "test_precision_pos", "test_precision"),
    ("recall_pos", "test_recall_pos", "test_recall"),
    ("f1_pos", "test_f1_pos", "test_f1"),
)


def _stat(row: dict[str, Any], name: str, values: pd.Series) -> None:
    mean, ci, n = mean_ci(values)
    row[name] = mean
    row[f"{name}_ci95"] = ci
    row[f"{name}_n"] = n


def _config_rows(sel: pd.DataFrame, cols: list[str], objective: str) -> list[dict[str, Any]]:
    """Per configuration (all `cols` equal): the objective's mean/CI/n over seeds, test at the
    selected and final terms, the mean selected term."""
    test = report_metric(objective)
    rows = []
    for key, g in groups(sel, cols):
        row: dict[str, Any] = {bare(c): v for c, v in zip(cols, key, strict=True)}
        row["kind"] = str(g["kind"].iat[0])
        mean, ci, n = mean_ci(value(g, "sel", objective))
        row.update(mean=mean, ci95=ci, ci_low=mean - ci, ci_high=mean + ci, n_seeds=n)
        row["sel_term"] = mean_ci(numeric(col(g, "sel_term")))[0]
        if test != objective:
            _stat(row, test, value(g, "sel", test))
            _stat(row, f"final_{test}", value(g, "final", test))
        row["final_term"] = mean_ci(numeric(col(g, "final_term")))[0]
        row["trials"] = ",".join(str(t) for t in g["trial_id"])
        row["tuning_budget"] = tuning_budget(g)
        rows.append(row)
    return rows


def _rank(rows: list[dict[str, Any]], names: list[str], mode: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    order = sorted(range(len(df)), key=lambda i: (
        -df["mean"].iat[i] if mode == "max" else df["mean"].iat[i],
        tuple(sort_key(df[c].iat[i]) for c in names)))
    return df.iloc[order].reset_index(drop=True)


def leaderboard(
    trials: pd.DataFrame, objective: str, mode: str, axes: Sequence[str] | None,
    top: int | None = LEADERBOARD_TOP,
) -> pd.DataFrame:
    """Configurations ranked by the validation objective at each trial's selected term (mean,
    95 % CI, n over seeds; grouping by every axis but seed), with test at the selected and the
    final term. Reference baselines follow as unranked rows (`kind` "baseline"; with `top`, the
    best configuration of each baseline model). attrs["n_configs"] = trained configurations."""
    check_mode(mode)
    sel = ensure_selected(trials, objective, mode)
    sel = sel[np.isfinite(value(sel, "sel", objective))]
    cols = group_cols(sel if axes is None else trials, axes, drop=("seed",))
    cols = [c for c in cols if c in sel.columns]
    names = [bare(c) for c in cols]
    trained = _rank(_config_rows(sel[sel["kind"] == "trained"], cols, objective), names, mode)
    base = _rank(_config_rows(sel[sel["kind"] == "baseline"], cols, objective), names, mode)
    n_configs = len(trained)
    if top is not None:
        trained = trained.head(top)
        if len(base) and "model" in base.columns:
            base = base.drop_duplicates("model", keep="first")
    if len(trained):
        trained.insert(0, "rank", np.arange(1, len(trained) + 1, dtype="float64"))
    if len(base):
        base.insert(0, "rank", np.nan)
    df = pd.concat([x for x in (trained, base) if len(x)], ignore_index=True) if (
        len(trained) or len(base)) else pd.DataFrame(columns=["rank", *names, "mean", "ci95"])
    df.attrs.update(n_configs=n_configs, axes=names, objective=objective, mode=mode)
    return df


def _choose(sel: pd.DataFrame, cols: list[str], metric: str, mode: str,
            prefix: str = "sel") -> tuple[tuple[Any, ...], pd.DataFrame] | None:
    """The configuration (key over `cols`) with the best mean `prefix.metric`, and its rows."""
    best, best_v = None, math.nan
    for key, g in groups(sel, cols):
        v = mean_ci(value(g, prefix, metric))[0]
        if math.isfinite(v) and (best is None or better(v, best_v, mode)):
            best, best_v = (key, g), v
    return best


def nested_estimate(sel: pd.DataFrame, cols: list[str], objective: str,
                    mode: str) -> tuple[float, float, int]:
    """Cross-seed estimate of "pick the best configuration on validation": for each seed,
    choose the configuration on the *other* seeds' mean validation objective and score its test
    metric on the held-out seed. Mean, CI and n over held-out seeds."""
    test = report_metric(objective)
    seeds = ordered(col(sel, "config.seed"))
    scores = []
    for s in seeds:
        rest = sel[~mask_eq(col(sel, "config.seed"), s)]
        pick = _choose(rest, cols, objective, mode)
        if pick is None:
            continue
        key, _ = pick
        held = sel[mask_eq(col(sel, "config.seed"), s)]
        for c, v in zip(cols, key, strict=True):
            held = held[mask_eq(held[c], v)]
        scores.extend(value(held, "sel", test).dropna().tolist())
    return mean_ci(scores)


def _model_row(sub: pd.DataFrame, other: list[str], objective: str, mode: str,
               metrics: Sequence[str]) -> dict[str, Any] | None:
    pick = _choose(sub, other, objective, mode)
    if pick is None:
        return None
    key, g = pick
    test = report_metric(objective)
    row: dict[str, Any] = {bare(c): v for c, v in zip(other, key, strict=True)}
    row["kind"] = str(g["kind"].iat[0])
    mean, ci, n = mean_ci(value(g, "sel", objective))
    row.update(objective=objective, mean=mean, ci95=ci, n_seeds=n,
               sel_term=mean_ci(numeric(col(g, "sel_term")))[0],
               trials=",".join(str(t) for t in g["trial_id"]), tuning_budget=tuning_budget(g))
    for m in metrics:
        row[m], row[f"{m}_ci95"], _ = mean_ci(value(g, "sel", m))
    row[f"final_{test}"], row[f"final_{test}_ci95"], _ = mean_ci(value(g, "final", test))
    nested, nested_ci, nested_n = nested_estimate(sub, other, objective, mode)
    row.update(nested=nested, nested_ci95=nested_ci, nested_n=nested_n,
               overstates=row.get(test, math.nan) - nested)
    opt = _choose(sub, other, test, mode, prefix="opt") if f"opt.{test}" in sub else None
    row["optimistic"] = math.nan if opt is None else mean_ci(value(opt[1], "opt", test))[0]
    return row


def best_per_model(
    trials: pd.DataFrame, terms: pd.DataFrame | None, objective: str, mode: str, protocol: str,
    axes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each model's configuration with the best mean validation objective over seeds, and that
    configuration's test metrics at each seed's selected term (mean and `<metric>_ci95`): the
    paper's classification report (`paper`) or the ranking metrics (`holdout`). Also: test at
    the final term, the cross-seed (nested) estimate and how much the plain pick overstates it,
    and the "optimistic (selected on test)" number. Baselines are rows of kind "baseline"."""
    check_mode(mode)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    metrics = PAPER_REPORT_METRICS if protocol == "paper" else HOLDOUT_RANKING_METRICS
    if "sel_term" in trials.columns:
        sel = trials
    else:
        sel = select(dedupe(canonicalize(usable(trials)))[0], terms, objective, mode)
    other = group_cols(sel, axes, drop=("seed", "model"))
    rows = []
    for model in ordered(col(sel, "config.model")) if len(sel) else []:
        row = _model_row(sel[mask_eq(col(sel, "config.model"), model)], other, objective,
                         mode, metrics)
        if row is not None:
            rows.append({"model": model, **row})
    df = pd.DataFrame(rows)
    if len(df):
        df = pd.concat([df[df["kind"] == "trained"], df[df["kind"] == "baseline"]],
                       ignore_index=True)
    df.attrs.update(protocol=protocol, objective=objective, axes=[bare(c) for c in other])
    return df


def _cells(df: pd.DataFrame, a: str, b: str, val: str) -> pd.DataFrame:
    """Long table of mean / CI / n of `val` per (a, b) cell, cells in natural order. Each seed
    is averaged first (over the other axes' configurations), so n counts seeds, never trials
    (issue 20, item 5: n = 192 from 3 seeds once read as 192 replicates)."""
    rows = []
    for ka in ordered(df[a]) if len(df) else []:
        da = df[mask_eq(df[a], ka)]
        for kb in ordered(da[b]):
            sub = da[mask_eq(da[b], kb)]
            seed = col(sub, "seed").astype("object").fillna("-")
            mean, ci, n = mean_ci(numeric(sub[val]).groupby(seed).mean())
            if n:
                rows.append({a: ka, b: kb, "mean": mean, "ci95": ci,
                             "ci_low": mean - ci, "ci_high": mean + ci, "n": n})
    return pd.DataFrame(rows, columns=[a, b, "mean", "ci95", "ci_low", "ci_high", "n"])


def _mark_best(out: pd.DataFrame, a: str, b: str, mode: str) -> pd.DataFrame:
    """Set attrs["best"] = (a value, b value) of the best mean (ties: the first cell)."""
    best, best_value = None, math.nan
    for i in range(len(out)):
        v = out["mean"].iat[i]
        if math.isfinite(v) and (best is None or better(v, best_value, mode)):
            best, best_value = (py(out[a].iat[i]), py(out[b].iat[i])), float(v)
    out.attrs["best"] = best
    out.attrs["best_value"] = best_value
    return out


def axis_by_term(terms: pd.DataFrame, axis: str, metric: str, mode: str) -> pd.DataFrame:
    """`metric` per (axis value, term), averaged over seeds and the other axes (one row per
    trial and term counts once): long table axis, term, mean, ci95, ci_low, ci_high, n.
    attrs["best"] = (axis value, term) of the best cell, attrs["best_value"] its mean."""
    check_mode(mode)
    c = config_col(axis)
    name = bare(c)
    if len(terms) and c not in terms.columns:
        raise KeyError(f"terms has no column {c!r}; it varies axes {varying_axes(terms)}")
    if metric not in terms.columns or terms.empty:
        out = pd.DataFrame(columns=[name, "term", "mean", "ci95", "ci_low", "ci_high", "n"])
        return _mark_best(out, name, "term", mode)
    df = terms[[c, "term", metric]].rename(columns={c: name})
    df["seed"] = col(terms, "config.seed")
    df = df[np.isfinite(numeric(df[metric]))]
    out = _cells(df, name, "term", metric)
    out["term"] = out["term"].astype("int64")
    return _mark_best(out, name, "term", mode)


def pivot(trials: pd.DataFrame, a: str, b: str, objective: str, mode: str) -> pd.DataFrame:
    """The objective (each trial at its validation-selected term) per (a, b) cell: each seed
    averaged over the other axes first, then mean, ci95, ci_low, ci_high and n over seeds;
    attrs["best"]. Reference baselines are never pooled into a cell (issue 23: popularity, EASE
    and ALS once shared a "-" cell): unless `model` is an axis of the pivot they are left out,
    and attrs["left_out"] names them."""
    check_mode(mode)
    ca, cb = config_col(a), config_col(b)
    if ca == cb:
        raise ValueError(f"pivot needs two different axes, got {a!r} twice")
    missing = [c for c in (ca, cb) if c not in trials.columns]
    if missing:
        raise KeyError(f"trials has no column(s) {missing}")
    sel = ensure_selected(trials, objective, mode)
    left_out: list[str] = []
    if "config.model" not in (ca, cb):
        base = is_baseline_row(sel).to_numpy()
        left_out = [str(m) for m in ordered(col(sel, "config.model")[base]) if not is_missing(m)]
        sel = sel[~base]
    df = pd.DataFrame({bare(ca): sel[ca], bare(cb): sel[cb], "seed": col(sel, "config.seed"),
                       "v": value(sel, "sel", objective)})
    out = _mark_best(_cells(df, bare(ca), bare(cb), "v"), bare(ca), bare(cb), mode)
    out.attrs["left_out"] = left_out
    return out


def to_grid(cells: pd.DataFrame, a: str, b: str, val: str = "mean") -> pd.DataFrame:
    """Wide a x b view of a long cell table (rows a, columns b), values in natural order."""
    rows, cols = ordered(cells[a]), ordered(cells[b])
    grid = pd.DataFrame(np.nan, index=range(len(rows)), columns=range(len(cols)), dtype=object)
    for i in range(len(cells)):
        r = next(k for k, v in enumerate(rows) if same(v, cells[a].iat[i]))
        c = next(k for k, v in enumerate(cols) if same(v, cells[b].iat[i]))
        grid.iat[r, c] = cells[val].iat[i]
    grid.index = pd.Index([label(v) for v in rows], name=a)
    grid.columns = pd.Index([label(v) for v in cols], name=b)
    return grid


def _term_gains(trials: pd.DataFrame, terms: pd.DataFrame, metric: str) -> pd.Series:
    """Per trial: metric at its last term minus metric at term 0 (NaN where either is missing)."""
    if metric not in terms.columns:
        return pd.Series(np.nan, index=trials["trial_id"].to_numpy(), dtype="float64")
    t = terms[terms["trial_id"].isin(trials["trial_id"])][["trial_id", "term", metric]]
    t = t.sort_values(["trial_id", "term"])
    first = t[t["term"] == 0].groupby("trial_id")[metric].first()
    # The row of the highest term, even where its value is NaN (groupby.last would skip it).
    last = t.groupby("trial_id").tail(1).set_index("trial_id")[metric]
    return numeric((last - first).reindex(trials["trial_id"].to_numpy()))


def protocol_gap(trials: pd.DataFrame, terms: pd.DataFrame | None) -> pd.DataFrame | None:
    """How much of OCF-B's gain (last term minus term 0: a fixed budget, nothing selected;
    completed `ocfb` trials) under `paper` survives under `holdout`, per comparable metric and
    model type (and 'all'). None when the sweep did not run both protocols."""
    if trials.empty or "config.protocol" not in trials.columns or terms is None or terms.empty:
        return None
    done = trials[col(trials, "status") == "completed"]
    if "config.strategy" in done.columns:
        done = done[done["config.strategy"] == "ocfb"]
    by_protocol = {p: done[done["config.protocol"] == p] for p in ("paper", "holdout")}
    if any(g.empty for g in by_protocol.values()):
        return None
    models = [m for m in ordered(col(done, "config.model")) if not is_missing(m)]
    groups_: list[tuple[str, Any]] = [(label(m), m) for m in models] if len(models) > 1 else []
    groups_.append(("all", None))
    rows = []
    for name, paper_metric, holdout_metric in GAP_METRICS:
        gains = {"paper": _term_gains(by_protocol["paper"], terms, paper_metric),
                 "holdout": _term_gains(by_protocol["holdout"], terms, holdout_metric)}
        for glabel, model in groups_:
            row: dict[str, Any] = {"metric": name, "model": glabel,
                                   "paper_metric": paper_metric, "holdout_metric": holdout_metric}
            for p, g in by_protocol.items():
                s = gains[p]
                if model is not None:
                    s = s[(col(g, "config.model") == model).to_numpy()]
                mean, ci, n = mean_ci(s)
                row.update({f"{p}_gain": mean, f"{p}_ci95": ci, f"n_{p}": n})
            pg, hg = row["paper_gain"], row["holdout_gain"]
            ok = math.isfinite(pg) and pg > 0 and math.isfinite(hg)
            row["survives"] = hg / pg if ok else math.nan
            if row["n_paper"] or row["n_holdout"]:
                rows.append(row)
    return pd.DataFrame(rows) if rows else None
