"""Per-trial selection on validation only, and one row per (canonical configuration, seed).

Selection (issue 9, item 2): a trial is reported at the term where its validation objective
peaks (earliest term on ties) and at its final term ("fixed budget"). Full-ranking metrics under
the `selected` schedule are only computed at the final term, so the loop adds the selected
weights' numbers to the final record as `sel_<key>`; they fill the selected term's gaps here.
A test metric never selects: the term picked by test is kept only as `opt.<metric>`, labelled
"optimistic (selected on test)" wherever it is shown.

Pseudo-replicates (item 4): keys that do not apply to a model or strategy (mf_dim for mlp, the
loop's keys for a baseline, threshold for resample-all ...) are blanked, so trials that ran the
same thing group together, and a (configuration, seed) pair counts once.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ocfb.names import BASELINE_MODELS, THRESHOLD_FREE_STRATEGIES, test_counterpart
from suite.summary.common import check_mode, col, is_baseline_row, is_missing, numeric, usable

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
    """The rules of interface 7, used until `RunConfig.canonical()` exists."""
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

    Uses `RunConfig.canonical()` (the one definition, ocfb/config.py) when it exists: the keys
    it leaves out of a default config of this kind are the dropped ones."""
    from ocfb.config import RunConfig

    dropped: set[str]
    try:
        run = RunConfig(model=model, strategy=strategy, protocol=protocol)
        canonical = run.canonical()  # type: ignore[attr-defined]
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
