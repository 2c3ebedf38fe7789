"""The sweep's data frames: column vocabulary, value order, cleaning and selection on validation.

Every summary is a pure function of the sweep's frames (trials.parquet, terms.parquet); this
module keeps their conventions (`config.<key>`, `best.<metric>`, `final.<metric>`) in one place,
and turns them into what every table reads:

- Cleaning (issue 9, item 4): keys that do not apply to a model or strategy (mf_dim for mlp, the
  loop's keys for a baseline, threshold for resample-all ...) are blanked, so trials that ran
  the same thing group together and a (configuration, seed) pair counts once.
- Selection (item 2): a trial is reported at the term where its validation objective peaks
  (earliest term on ties) and at its final term ("fixed budget"). Full-ranking metrics under
  the `selected` schedule are only computed at the final term, so the loop adds the selected
  weights' numbers to the final record as `sel_<key>`; they fill the selected term's gaps here.
  A test metric never selects: the term picked by test is kept only as `opt.<metric>`,
  labelled "optimistic (selected on test)" wherever it is shown.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ocfb.names import (
    BASELINE_MODELS,
    K_VALUES,
    NEURAL_MODELS,
    RATIO,
    REPORT_KEYS,
    THRESHOLD_FREE_STRATEGIES,
    test_counterpart,
)
from suite.spec.vocabulary import STAGE_COLUMN

# Trials whose metrics count: completed ones and those the scheduler stopped early (ASHA stops
# the bad ones, so leaving them out would flatter every mean). "running" means the sweep was
# interrupted mid-trial: its partial history is not comparable, so it is left out and named.
USABLE_STATUSES: tuple[str, ...] = ("completed", "stopped")
LEADERBOARD_TOP = 10

# The paper protocol's classification report, and the holdout protocol's ranking metrics.
PAPER_REPORT_METRICS: tuple[str, ...] = tuple(f"test_{k}" for k in REPORT_KEYS)
HOLDOUT_RANKING_METRICS: tuple[str, ...] = tuple(
    f"test_{kind}@{k}" for kind in ("hr", "ndcg", "full_hr", "full_ndcg") for k in K_VALUES
) + ("test_auc",)
# Figures 5-6 of the paper: AUC and per-class precision / recall against the term.
PAPER_PLOT_METRICS: tuple[str, ...] = (
    "test_auc", "test_accuracy", "test_precision_pos", "test_precision_neg",
    "test_recall_pos", "test_recall_neg",
)
HOLDOUT_PLOT_METRICS: tuple[str, ...] = ("test_hr@10", "test_ndcg@10", "test_auc")
MODEL_ORDER: tuple[str, ...] = NEURAL_MODELS + BASELINE_MODELS


def config_col(key: str) -> str:
    """Column name of config key `key` ("threshold" or "config.threshold" -> "config.threshold")."""
    return key if key.startswith("config.") else f"config.{key}"


def bare(col: str) -> str:
    """`config.threshold` -> `threshold`."""
    return col.removeprefix("config.")


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column `name`, or an all-NaN column where a partial sweep's frame lacks it."""
    if name in df.columns:
        return df[name]
    return pd.Series(np.nan, index=df.index, dtype="float64")


def numeric(s: pd.Series) -> pd.Series:
    """A column as float64, anything unparsable as NaN."""
    return pd.to_numeric(s, errors="coerce").astype("float64")


def is_missing(v: Any) -> bool:
    """None, NaN or NA (and not a list-like value)."""
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def sort_key(v: Any) -> tuple[int, float, str]:
    """Natural order of axis values: numbers (also numeric strings) by value, then ratios like
    '4x' by ratio, then other strings, then missing values."""
    if is_missing(v):
        return (3, 0.0, "")
    if isinstance(v, bool | np.bool_ | int | float | np.integer | np.floating):
        return (0, float(v), "")
    s = str(v)
    try:
        return (0, float(s), "")
    except ValueError:
        pass
    m = RATIO.match(s)
    if m:
        return (1, float(m.group(1)), "")
    return (2, 0.0, s)


def ordered(values: Iterable[Any]) -> list[Any]:
    """Distinct values in natural order (one missing value at most, last)."""
    out: list[Any] = []
    seen_missing = False
    for v in pd.unique(pd.Series(list(values), dtype="object")):
        if is_missing(v):
            if not seen_missing:
                out.append(None)
                seen_missing = True
            continue
        out.append(v)
    return sorted(out, key=sort_key)


def same(a: Any, b: Any) -> bool:
    """Equality where two missing values are the same value."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    return bool(a == b)


def mask_eq(s: pd.Series, v: Any) -> pd.Series:
    """Rows of `s` equal to `v` (missing matches missing)."""
    return s.isna() if is_missing(v) else s == v


def label(v: Any) -> str:
    """Human form of an axis value: 0.5 not 0.5000000001, '-' for a missing value."""
    if is_missing(v):
        return "-"
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def py(v: Any) -> Any:
    """numpy scalar -> python scalar (for attrs and messages)."""
    return v.item() if isinstance(v, np.generic) else v


def better(a: float, b: float, mode: str) -> bool:
    """a is strictly better than b under `mode`."""
    return a > b if mode == "max" else a < b


def check_mode(mode: str) -> None:
    """Refuse anything but 'max' and 'min'."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")


def is_baseline_row(df: pd.DataFrame) -> pd.Series:
    """Rows of reference baselines (model in names.BASELINE_MODELS, or `is_baseline` 1.0)."""
    out = col(df, "config.model").isin(BASELINE_MODELS)
    for c in ("is_baseline", "final.is_baseline"):
        if c in df.columns:
            out |= numeric(df[c]).fillna(0.0) > 0
    return out


def usable(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed or early-stopped trials."""
    if trials.empty or "status" not in trials.columns:
        return trials.iloc[0:0]
    return trials[trials["status"].isin(USABLE_STATUSES)]


def varying_axes(frame: pd.DataFrame) -> list[str]:
    """Config keys (without the 'config.' prefix) that take more than one value in `frame`.

    Blank values (a key that does not apply to a run: every loop key of a baseline, mf_dim of
    an MLP) do not count as a value: otherwise one baseline row makes all 26 keys "axes". A
    recorded tuning budget or tune-then-confirm stage describes a row; it is no axis.
    """
    return [bare(c) for c in frame.columns if c.startswith("config.")
            and c not in (*TUNING_BUDGET_COLS, STAGE_COL) and frame[c].nunique(dropna=True) > 1]


def group_cols(frame: pd.DataFrame, axes: Iterable[str] | None, drop: Iterable[str]) -> list[str]:
    """`config.` columns of `axes` (default: the varying ones) present in `frame`, minus `drop`."""
    axes = varying_axes(frame) if axes is None else list(axes)
    dropped = {bare(d) for d in drop}
    out: list[str] = []
    for a in axes:
        c = config_col(a)
        if bare(c) not in dropped and c in frame.columns and c not in out:
            out.append(c)
    return out


def groups(df: pd.DataFrame, cols: list[str]) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(key tuple, rows) per distinct combination of `cols`, missing values kept as a group."""
    if not cols:
        return [((), df)] if len(df) else []
    out = []
    for key, g in df.groupby(cols, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((tuple(py(k) for k in key), g))
    return out


# -- cleaning and selection ------------------------------------------------------------------

# Keys that never get blanked: they identify what ran (seed is the replicate axis). A
# baseline's strategy is blanked: it draws no negatives.
_PROTECTED = frozenset({"seed", "model", "protocol"})
# Keys that only the OCF-B loop reads; a baseline is fitted once and ignores them.
LOOP_KEYS: tuple[str, ...] = (
    "negatives", "threshold", "terms", "error", "strategy", "replace_fraction", "max_redraws",
    "dns_candidates", "refit", "exclude_removed", "epochs", "epochs_per_term", "batch_size",
    "lr", "weight_decay", "mf_dim", "user_dim", "item_dim", "layers", "max_loss",
)
_ALS_KEYS = ("als_factors", "als_iterations", "als_regularization", "als_alpha")


def _fallback_dropped(model: str, strategy: str, protocol: str) -> set[str]:
    """The rules of interface 7, for a kind `RunConfig` refuses (an unknown or blank model or
    strategy in older results)."""
    out: set[str] = set()
    if model not in ("gmf", "neumf"):
        out.add("mf_dim")
    if model not in ("mlp", "neumf"):
        out |= {"user_dim", "item_dim", "layers"}
    if model in BASELINE_MODELS:
        out |= set(LOOP_KEYS)
    if model != "ease":
        out.add("l2")
    if model != "als":
        out |= set(_ALS_KEYS)
    if model in BASELINE_MODELS or strategy in THRESHOLD_FREE_STRATEGIES:
        out.add("threshold")
    if strategy != "random-replace":
        out.add("replace_fraction")
    if strategy != "ocfb-resample":
        out.add("max_redraws")
    if strategy != "dns":
        out.add("dns_candidates")
    out |= {"test_fraction", "val_fraction"} if protocol == "holdout" else {
        "split", "holdout_fraction", "n_candidates"}
    return out


@functools.lru_cache(maxsize=256)
def dropped_keys(model: str, strategy: str, protocol: str) -> frozenset[str]:
    """Config keys that do not change what a (model, strategy, protocol) run computes.

    `RunConfig.canonical()` is the one definition (ocfb/config.py): the keys it leaves out of a
    default config of this kind are the dropped ones."""
    from ocfb.config import RunConfig

    dropped: set[str]
    try:
        run = RunConfig(model=model, strategy=strategy, protocol=protocol)
        canonical = run.canonical()
        dropped = set(RunConfig.model_fields) - set(canonical) - {"data"}
    except (AttributeError, ValueError, TypeError):
        dropped = _fallback_dropped(model, strategy, protocol)
    return frozenset(dropped - _PROTECTED)


def canonicalize(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of trials (or terms) with every inapplicable `config.<key>` set to None."""
    if frame.empty or "config.model" not in frame.columns:
        return frame
    out = frame.copy()
    def text(name: str, default: str) -> pd.Series:
        return col(out, name).astype("object").map(lambda v: default if is_missing(v) else str(v))

    # Unset strategy / protocol columns (older results) mean the defaults.
    kinds = pd.DataFrame({"m": text("config.model", ""), "s": text("config.strategy", "ocfb"),
                          "p": text("config.protocol", "holdout")})
    for (m, s, p), idx in kinds.groupby(["m", "s", "p"]).groups.items():
        keys = dropped_keys(m, s, p)
        for k in keys:
            c = f"config.{k}"
            if c in out.columns:
                if out[c].dtype != object:
                    out[c] = out[c].astype("object")
                out.loc[idx, c] = None
    return out


def _identity(frame: pd.DataFrame) -> pd.Series:
    """One string per row naming its canonical configuration and seed."""
    cols = sorted(c for c in frame.columns if c.startswith("config."))
    if not cols:
        return pd.Series(frame.get("trial_id", frame.index).astype(str), index=frame.index)
    parts = frame[cols].astype("object").map(lambda v: "<NA>" if is_missing(v) else repr(v))
    return parts.agg("|".join, axis=1)


def dedupe(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one trial per (canonical configuration, seed): the first by trial_id. Returns the
    kept trials and a note naming the duplicates left out (empty when there were none)."""
    if trials.empty:
        return trials, []
    order = trials.sort_values("trial_id", kind="stable") if "trial_id" in trials else trials
    ident = _identity(order)
    dup = ident.duplicated(keep="first")
    if not dup.any():
        return trials, []
    dropped = order.loc[dup, "trial_id"].astype(str).tolist() if "trial_id" in order else []
    shown = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10
                                       else "")
    note = (f"{len(dropped)} trial(s) repeat a configuration and seed already counted (keys "
            f"that do not apply to their model or strategy differ only): counted once, "
            f"left out: {shown}.")
    return trials.loc[order.index[~dup.to_numpy()]], [note]


def _metric_cols(terms: pd.DataFrame) -> list[str]:
    return [c for c in terms.columns if c not in ("trial_id", "term")
            and not c.startswith("config.") and pd.api.types.is_numeric_dtype(terms[c])]


def _pick(t: pd.DataFrame, metric: str | None, mode: str) -> pd.Series:
    """Per trial_id, the row index of the best `metric` (earliest term on ties); NaN-free."""
    if metric is None or metric not in t.columns:
        return pd.Series(dtype="int64")
    v = numeric(t[metric])
    key = v if mode == "max" else -v
    ok = key.notna()
    if not ok.any():
        return pd.Series(dtype="int64")
    return key[ok].groupby(t.loc[ok, "trial_id"]).idxmax()


def _from_terms(terms: pd.DataFrame, objective: str, mode: str) -> pd.DataFrame:
    """sel.* / final.* / opt.* per trial_id, read off the per-term history."""
    t = terms.sort_values(["trial_id", "term"], kind="stable").reset_index(drop=True)
    metrics = _metric_cols(t)
    last = t.groupby("trial_id").tail(1).set_index("trial_id")
    final_idx = pd.Series(t.groupby("trial_id").tail(1).index,
                          index=last.index)
    sel_idx = _pick(t, objective, mode).reindex(final_idx.index)
    on_val = sel_idx.notna()
    sel_idx = sel_idx.fillna(final_idx).astype("int64")
    sel = t.loc[sel_idx.to_numpy(), metrics].add_prefix("sel.").set_index(final_idx.index)
    fin = t.loc[final_idx.to_numpy(), metrics].add_prefix("final.").set_index(final_idx.index)
    # concat, then .copy(): a few hundred metric columns in one block, so adding the columns
    # below does not fragment the frame (pandas' PerformanceWarning on every summary)
    out = pd.concat([sel, fin], axis=1).copy()
    out["sel_term"] = t.loc[sel_idx.to_numpy(), "term"].to_numpy()
    out["final_term"] = t.loc[final_idx.to_numpy(), "term"].to_numpy()
    out["selected_on"] = np.where(on_val.to_numpy(), "validation", "final term")
    test = objective if objective.startswith("test_") else test_counterpart(objective)
    opt_idx = _pick(t, test, mode).reindex(final_idx.index)
    if test is not None and test in t.columns:
        have = opt_idx.notna()
        opt = pd.Series(np.nan, index=final_idx.index)
        opt[have] = t.loc[opt_idx[have].astype("int64").to_numpy(), test].to_numpy()
        out[f"opt.{test}"] = opt
    return _fill_selected_full(out, last)


def _fill_selected_full(out: pd.DataFrame, last: pd.DataFrame) -> pd.DataFrame:
    """Under schedule `selected`, full ranking at the selected term lives in the final record's
    `sel_<key>` columns (with its `sel_term`): use them where the selected term lacks the key
    and the loop selected the same term."""
    if "sel_term" not in last.columns:
        return out
    same = numeric(last["sel_term"]).reindex(out.index) == numeric(out["sel_term"])
    for c in last.columns:
        if not c.startswith("sel_") or c == "sel_term":
            continue
        key = f"sel.{c.removeprefix('sel_')}"
        vals = numeric(last[c]).reindex(out.index)
        cur = numeric(out[key]) if key in out.columns else pd.Series(np.nan, index=out.index)
        out[key] = cur.where(cur.notna() | ~same, vals)
    return out.copy()


def _from_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Fallback for trials without per-term rows: trials.parquet's best.* (the runner's argmax
    of the objective, earliest on ties) and final.* columns."""
    out = pd.DataFrame(index=trials["trial_id"].to_numpy())
    for c in trials.columns:
        if c.startswith("best."):
            out["sel." + c.removeprefix("best.")] = numeric(trials[c]).to_numpy()
        elif c.startswith("final.") and pd.api.types.is_numeric_dtype(trials[c]):
            out[c] = numeric(trials[c]).to_numpy()
    out["sel_term"] = numeric(col(trials, "best_term")).to_numpy()
    out["final_term"] = (numeric(col(trials, "terms_done")) - 1).to_numpy()
    out["selected_on"] = "validation"
    return out


def select(trials: pd.DataFrame, terms: pd.DataFrame | None, objective: str,
           mode: str) -> pd.DataFrame:
    """One row per trial of `trials` (usable, deduplicated): its config.* columns, `kind`
    (trained or baseline), `sel_term` and `sel.<metric>` at the validation-selected term,
    `final_term` and `final.<metric>` at its last term, and `opt.<test metric>` (the term
    picked on test: optimistic). A test objective is refused."""
    check_mode(mode)
    if objective.startswith("test_"):
        raise ValueError(f"selection metric {objective!r} is a test metric: select on a "
                         "validation metric (val_...), report test")
    base_cols = [c for c in trials.columns if c.startswith("config.")]
    keep = ["trial_id", "status", *base_cols]
    base = trials[[c for c in keep if c in trials.columns]].set_index("trial_id", drop=False)
    have = set(terms["trial_id"]) if terms is not None and not terms.empty else set()
    ids = base.index
    with_terms = [i for i in ids if i in have]
    parts = []
    if with_terms:
        sub = terms[terms["trial_id"].isin(with_terms)]
        parts.append(_from_terms(sub, objective, mode))
    rest = trials[~trials["trial_id"].isin(with_terms)]
    if len(rest):
        parts.append(_from_trials(rest))
    sel = pd.concat(parts, axis=0) if parts else pd.DataFrame(index=ids)
    out = base.join(sel, how="left").reset_index(drop=True).copy()
    out["kind"] = np.where(is_baseline_row(out), "baseline", "trained")
    out.attrs.update(objective=objective, mode=mode)
    return out


def ensure_selected(frame: pd.DataFrame, objective: str, mode: str) -> pd.DataFrame:
    """`frame` if it is already a `select` result, else the selection of its usable trials
    (trials.parquet's best.* columns; no per-term history), canonical and deduplicated."""
    if "sel_term" in frame.columns and "kind" in frame.columns:
        return frame
    return select(dedupe(canonicalize(usable(frame)))[0], None, objective, mode)


def value(frame: pd.DataFrame, prefix: str, metric: str) -> pd.Series:
    """`<prefix>.<metric>` as floats (all NaN when absent)."""
    return numeric(col(frame, f"{prefix}.{metric}"))


def report_metric(objective: str) -> str:
    """The test metric reported for a validation objective (the objective itself otherwise)."""
    return test_counterpart(objective) or objective


def full_counterpart(metric: str) -> str | None:
    """The full-ranking metric of a sampled one ('test_hr@10' -> 'test_full_hr@10'); None for a
    metric with no full-ranking form (AUC, the paper's classification report)."""
    for kind in ("hr@", "ndcg@"):
        for split in ("test_", "val_"):
            if metric.startswith(split + kind):
                return split + "full_" + metric.removeprefix(split)
    return None


def sampled_counterpart(metric: str) -> str | None:
    """'test_full_hr@10' -> 'test_hr@10'; None for a metric that is not full-ranking."""
    for split in ("test_", "val_"):
        if metric.startswith(split + "full_"):
            return split + metric.removeprefix(split + "full_")
    return None


# Where a sweep records how each row was tuned (issue 20, item 1: "searched, 24 proposals" /
# "fixed defaults"); the first column present wins.
TUNING_BUDGET_COLS: tuple[str, ...] = ("config.tune_budget", "tune_budget", "config.budget",
                                       "budget")
NOT_RECORDED = "not recorded"
# Tune-then-confirm sweeps mark each trial `search` or `confirm` (`SweepSpec.trial_columns`;
# the stages run in `suite.driver`); the column is named once, in the spec's vocabulary.
STAGE_COL = STAGE_COLUMN


def tuning_budget(rows: pd.DataFrame) -> str:
    """The tuning budget the trials of one table row had, as recorded; 'not recorded' where the
    sweep has no such column, several values joined where the rows differ."""
    for c in TUNING_BUDGET_COLS:
        if c in rows.columns:
            vals = [str(v) for v in ordered(rows[c]) if not is_missing(v)]
            return "; ".join(vals) if vals else NOT_RECORDED
    return NOT_RECORDED
