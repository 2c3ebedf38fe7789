"""Summaries of a sweep: `ocfb-suite summarize DIR`, `ocfb-suite compare DIR DIR ...`.

Modules, in the order data flows through them: `frames` (column vocabulary, cleaning,
selection on validation), `stats` (intervals, paired tests, TOST, minimal detectable effect,
Holm, Friedman, Nemenyi), `tables` (leaderboard, best per model, grids, protocol gap),
`verdicts` (model, strategy and threshold verdicts at equal budget; the seeds x arms blocks of
`compare`), `rendering` (the markdown text and the PNG plots), `sections` (the sections of
summary.md) and `report` (`summarize_dir` for summary.md, `compare_dirs` and the `compare`
command for compare.md).
"""

from __future__ import annotations

from suite.summary.frames import (
    HOLDOUT_RANKING_METRICS,
    PAPER_REPORT_METRICS,
    USABLE_STATUSES,
    canonicalize,
    dedupe,
    select,
    varying_axes,
)
from suite.summary.report import (
    SECTION_TITLES,
    SECTIONS,
    Summary,
    compare_dirs,
    missing_and_failed,
    summarize_dir,
)
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
from suite.summary.verdicts import lead, strategy_verdicts, threshold_verdicts, verdict_plan

__all__ = [
    "HOLDOUT_RANKING_METRICS", "PAPER_REPORT_METRICS", "SECTIONS", "SECTION_TITLES",
    "USABLE_STATUSES", "Summary", "axis_by_term", "best_per_model", "canonicalize",
    "compare_dirs", "dedupe", "friedman", "holm", "lead", "leaderboard", "mean_ci",
    "missing_and_failed", "nested_estimate", "paired", "pivot", "protocol_gap", "select",
    "strategy_verdicts", "summarize_dir", "threshold_verdicts", "to_grid", "varying_axes",
    "verdict_plan",
]
