"""`ocfb-suite compare DIR DIR ...`: the same arms on different datasets, side by side.

Each folder is a sweep of the same arms (leaderboard rows: a model and strategy, or a
baseline) on other data. The comparison ranks the arms within each (dataset, seed) block on the
verdict metric (each trial at its validation-selected term), averages the ranks, runs a
Friedman test over the blocks (scipy) and the Nemenyi post-hoc test with its critical-difference
diagram (scikit-posthocs; Demšar 2006), and puts each dataset's strategy verdicts side by side.
Folders whose arms differ are refused, naming the arms each lacks.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as sps

from suite.results import write_bytes, write_csv, write_text
from suite.summary.frames import config_col, is_missing, label
from suite.summary.markdown import fmt, fmt_p, md_table, signed
from suite.summary.plots import PLOT_DPI, PLOT_SIZE_IN
from suite.summary.report import build_context, read_sweep
from suite.summary.sections import Context
from suite.summary.stats import ALPHA, friedman
from suite.summary.verdicts import (
    SELECTED,
    VerdictPlan,
    key_rows,
    on_validation,
    side_by_side,
    strategy_verdicts,
)

if TYPE_CHECKING:
    from suite.cli import Subcommands


@dataclass
class Comparison:
    """What `compare_dirs` produced: blocks (dataset, seed) x arms, average ranks, Friedman,
    Nemenyi p-values, the verdicts side by side, and the markdown of compare.md."""

    metric: str
    blocks: pd.DataFrame
    ranks: pd.Series
    chi2: float
    p: float
    why: str
    nemenyi: pd.DataFrame
    verdicts: pd.DataFrame
    markdown: str = ""
    plots: list[Path] = field(default_factory=list)


def arm_label(row: pd.Series, axes: Sequence[str]) -> str:
    """'neumf/dns' for a trained row, 'ease' for a baseline (its loop keys are blank)."""
    parts = [label(row[config_col(a)]) for a in axes
             if config_col(a) in row.index and not is_missing(row[config_col(a)])]
    return "/".join(parts) or "-"


def seed_arm_matrix(ctx: Context, metric: str) -> pd.DataFrame:
    """seeds x arms of `sel.<metric>` (each seed's mean over an arm's rows)."""
    sel = on_validation(ctx.sel)
    axes = [a for a in ctx.axes if a != "seed"]
    arms = sel.apply(lambda r: arm_label(r, axes), axis=1) if len(sel) else pd.Series()
    df = pd.DataFrame({"arm": arms, "seed": sel.get("config.seed"),
                       "v": pd.to_numeric(sel.get(f"sel.{metric}"), errors="coerce")})
    return df.groupby(["seed", "arm"])["v"].mean().unstack("arm")


def _refuse_different_arms(mats: dict[str, pd.DataFrame]) -> None:
    every = set().union(*(set(m.columns) for m in mats.values()))
    lacking = {name: sorted(every - set(m.columns)) for name, m in mats.items()}
    bad = {n: arms for n, arms in lacking.items() if arms}
    if bad:
        said = "; ".join(f"{n} lacks {', '.join(a)}" for n, a in bad.items())
        raise ValueError(f"the folders' arms differ: {said}. `compare` needs the same arms "
                         "(models and strategies) on every dataset")


def average_ranks(blocks: pd.DataFrame, mode: str) -> pd.Series:
    """Mean rank of each arm over the blocks (1 = best; ties share the average rank)."""
    sign = -1.0 if mode == "max" else 1.0
    ranks = np.vstack([sps.rankdata(sign * row) for row in blocks.to_numpy(float)])
    return pd.Series(ranks.mean(axis=0), index=blocks.columns).sort_values()


def nemenyi(blocks: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi post-hoc p-values after Friedman (scikit-posthocs), arms x arms."""
    import scikit_posthocs as sp

    return sp.posthoc_nemenyi_friedman(blocks.reset_index(drop=True))


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Demšar's (2006) Nemenyi critical difference of average ranks for k arms, n blocks: the
    studentized range quantile (scipy) / sqrt(2) * sqrt(k (k + 1) / (6 n))."""
    q = sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))


def plot_cd(ranks: pd.Series, sig: pd.DataFrame, cd: float, title: str, path: Path) -> Path:
    """The critical-difference diagram (scikit-posthocs) as a PNG, written atomically."""
    import scikit_posthocs as sp
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PLOT_SIZE_IN[0], PLOT_SIZE_IN[1] / 2), dpi=PLOT_DPI,
                 layout="constrained")
    ax = fig.subplots()
    sp.critical_difference_diagram(ranks, sig, ax=ax, cd=cd if math.isfinite(cd) else None)
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)
    write_bytes(buf.getvalue(), path)
    return path


def _verdicts(ctxs: dict[str, Context], plan: VerdictPlan) -> pd.DataFrame:
    """Each dataset's strategy verdict lines (section 5) on the common metric, one column per
    dataset: 'difference [CI]: verdict'."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for name, ctx in ctxs.items():
        trained = ctx.sel[ctx.sel["kind"] == "trained"]
        if config_col("strategy") not in trained or trained[config_col("strategy")].nunique() < 2:
            continue
        comp, _ = strategy_verdicts(trained, ctx.terms_full, plan)
        key = side_by_side(key_rows(comp, plan), plan) if len(comp) else comp
        for _, r in key.iterrows():
            at = "selected term" if r["budget"] == SELECTED else "last term"
            ci = "" if is_missing(r["ci_low"]) else f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
            out.setdefault((f"{r['a']} vs {r['b']}", at), {})[name] = (
                f"{signed(r['diff'])}{ci}: {r['verdict']}")
    rows = [{"comparison": c, "budget": b, **cells} for (c, b), cells in out.items()]
    return pd.DataFrame(rows)


def _plan(ctxs: dict[str, Context], metric: str | None) -> VerdictPlan:
    first = next(iter(ctxs.values()))
    m = metric or first.plan.metric
    for name, ctx in ctxs.items():
        if f"sel.{m}" not in ctx.sel.columns:
            raise ValueError(f"{name}: no trial records `{m}`; pass --metric with a metric "
                             "every folder holds (e.g. test_hr@10)")
    return VerdictPlan(m, None, first.plan.rope, first.mode)


def _markdown(c: Comparison, names: list[str], cd: float) -> str:
    n, k = len(c.blocks), c.blocks.shape[1]
    ranks = md_table(["arm", "average rank (1 = best)", f"mean `{c.metric}`"],
                     [[a, f"{r:.2f}", fmt(c.blocks[a].mean())] for a, r in c.ranks.items()])
    test = (f"not run ({c.why})" if c.why else f"chi2 {fmt(c.chi2, 2)}, p {fmt_p(c.p)}")
    lines = [f"# Across datasets: {', '.join(names)}", "",
             f"- Metric: `{c.metric}` (test), each trial at its validation-selected term.",
             f"- Blocks: {n} (dataset, seed) pairs with every arm; {k} arms.", "",
             "## Average ranks", "", ranks, "",
             f"Friedman over the (dataset, seed) blocks: {test}. Nemenyi critical difference "
             f"at alpha {ALPHA:g}: {fmt(cd, 2)} ranks; figure `plots/critical_difference.png`; "
             "p-values `tables/compare_nemenyi.csv`."]
    if len(c.verdicts):
        cols = ["comparison", "budget", *[x for x in names if x in c.verdicts.columns]]
        rows = c.verdicts.reindex(columns=cols).fillna("n/a").to_numpy().tolist()
        lines += ["", "## Strategy verdicts per dataset", "",
                  f"Section 5 of each folder's summary, on `{c.metric}`.", "",
                  md_table(cols, rows)]
    return "\n".join(lines) + "\n"


def compare_dirs(dirs: Sequence[str | Path], out: str | Path,
                 metric: str | None = None) -> Comparison:
    """Compare the same arms across sweep folders (one dataset each); writes compare.md,
    tables/compare_*.csv and plots/critical_difference.png under `out`."""
    if len(dirs) < 2:
        raise ValueError(f"compare needs two or more sweep folders, got {len(dirs)}")
    ctxs: dict[str, Context] = {}
    for d in map(Path, dirs):
        name = d.name if d.name not in ctxs else str(d)
        ctxs[name] = build_context(d, read_sweep(d), [])
    plan = _plan(ctxs, metric)
    mats = {n: seed_arm_matrix(ctx, plan.metric) for n, ctx in ctxs.items()}
    _refuse_different_arms(mats)
    arms = sorted(next(iter(mats.values())).columns)
    blocks = pd.concat({n: m[arms] for n, m in mats.items()}, names=["dataset", "seed"]).dropna()
    chi2, p, why = friedman(blocks.to_numpy(float))
    c = Comparison(plan.metric, blocks, average_ranks(blocks, plan.mode), chi2, p, why,
                   nemenyi(blocks) if not why else pd.DataFrame(), _verdicts(ctxs, plan))
    o = Path(out)
    cd = critical_difference(len(arms), len(blocks)) if len(blocks) else math.nan
    if not c.nemenyi.empty:
        c.plots.append(plot_cd(c.ranks, c.nemenyi, cd, f"{plan.metric}: average rank over "
                               f"{len(blocks)} (dataset, seed) blocks",
                               o / "plots" / "critical_difference.png"))
    c.markdown = _markdown(c, list(ctxs), cd)
    write_csv(blocks.reset_index(), o / "tables" / "compare_blocks.csv")
    write_csv(c.ranks.rename("average_rank").rename_axis("arm").reset_index(),
              o / "tables" / "compare_ranks.csv")
    write_csv(c.nemenyi.rename_axis("arm").reset_index(), o / "tables" / "compare_nemenyi.csv")
    write_csv(c.verdicts, o / "tables" / "compare_verdicts.csv")
    write_text(c.markdown, o / "compare.md")
    return c


def cmd_compare(args: argparse.Namespace) -> int:
    """`ocfb-suite compare DIR DIR ... --out DIR`."""
    from suite.folders import FolderError, check_results, read_sweep_json

    try:
        for d in args.dirs:
            read_sweep_json(Path(d))
            check_results(Path(d), need_trials=True)
        c = compare_dirs(args.dirs, args.out, args.metric)
    except (FolderError, ValueError) as err:
        print(f"ocfb-suite: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'compare.md'} (Friedman p {fmt_p(c.p)} over "
          f"{len(c.blocks)} blocks)")
    return 0


def register_cli(sub: Subcommands) -> None:
    """Add the `compare` subcommand to the CLI."""
    p = sub.add_parser("compare", help="the same arms across datasets: ranks, Friedman, "
                       "critical-difference diagram, verdicts side by side")
    p.add_argument("dirs", nargs="+", help="two or more sweep output folders, one per dataset")
    p.add_argument("--out", required=True, help="folder for compare.md, tables/ and plots/")
    p.add_argument("--metric", default=None,
                   help="test metric to rank on (default: the first folder's verdict metric)")
    p.set_defaults(func=cmd_compare)
