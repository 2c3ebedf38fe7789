"""Summaries of a sweep: `ocfb-suite summarize DIR` and the tables, statistics and plots.

Modules: `common` (column and format helpers), `stats` (CIs, paired tests, Holm, Friedman),
`selection` (per-trial selection on validation, canonical configurations), `tables`
(leaderboard, best per model, grids, protocol gap), `compare` (equal-budget verdicts), `plots`,
`notes`, `sections` / `verdicts` (the sections of summary.md) and `report` (`summarize_dir`).
"""

from __future__ import annotations

from suite.summary.common import (
    HOLDOUT_RANKING_METRICS,
    PAPER_REPORT_METRICS,
    USABLE_STATUSES,
    varying_axes,
)
from suite.summary.compare import strategy_verdicts, threshold_verdicts
from suite.summary.notes import missing_and_failed
from suite.summary.report import SECTION_TITLES, SECTIONS, Summary, summarize_dir
from suite.summary.selection import canonicalize, dedupe, select
from suite.summary.stats import friedman, holm, mean_ci, paired
from suite.summary.tables import (
    axis_by_term,
    best_per_model,
    leaderboard,
    nested_estimate,
    pivot,
    protocol_gap,
    to_grid,
)

__all__ = [
    "HOLDOUT_RANKING_METRICS", "PAPER_REPORT_METRICS", "SECTIONS", "SECTION_TITLES",
    "USABLE_STATUSES", "Summary", "axis_by_term", "best_per_model", "canonicalize", "dedupe",
    "friedman", "holm", "leaderboard", "mean_ci", "missing_and_failed", "nested_estimate",
    "paired", "pivot", "protocol_gap", "select", "strategy_verdicts", "summarize_dir",
    "threshold_verdicts", "to_grid", "varying_axes",
]
