"""Shared vocabulary of the summary package: column access, value ordering and formatting.

Every summary is a pure function of the sweep's data frames (trials.parquet, terms.parquet);
these helpers keep the column conventions (`config.<key>`, `best.<metric>`, `final.<metric>`)
and the number formats of summary.md in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ocfb.names import BASELINE_MODELS, K_VALUES, NEURAL_MODELS, RATIO, REPORT_KEYS

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


def cfg(key: str) -> str:
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


def fmt(v: Any, digits: int = 4) -> str:
    """A number for summary.md: 4 decimals below 100, fewer above, 'n/a' when missing."""
    if is_missing(v) or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    v = float(v)
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def pm(mean: float, ci: float, n: int | None = None) -> str:
    """'0.8123 +- 0.0100 (n=3)': the way every number appears in summary.md."""
    if is_missing(mean):
        return "n/a"
    body = fmt(mean) if is_missing(ci) else f"{fmt(mean)} +- {fmt(ci)}"
    return body if n is None else f"{body} (n={int(n)})"


def fmt_p(p: float) -> str:
    """'0.004', '<0.001' or 'n/a'."""
    if is_missing(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; pipes and newlines inside cells are escaped."""

    def cell(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


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
    an MLP) do not count as a value: otherwise one baseline row makes all 26 keys "axes".
    """
    return [bare(c) for c in frame.columns
            if c.startswith("config.") and frame[c].nunique(dropna=True) > 1]


def group_cols(frame: pd.DataFrame, axes: Iterable[str] | None, drop: Iterable[str]) -> list[str]:
    """`config.` columns of `axes` (default: the varying ones) present in `frame`, minus `drop`."""
    axes = varying_axes(frame) if axes is None else list(axes)
    dropped = {bare(d) for d in drop}
    out: list[str] = []
    for a in axes:
        c = cfg(a)
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


def config_label(row: pd.Series, axes: Sequence[str]) -> str:
    """'model=gmf, threshold=0.5' for the axes a row has (missing ones left out)."""
    parts = [f"{a}={label(row[a])}" for a in axes if a in row.index and not is_missing(row[a])]
    return ", ".join(parts) or "-"
