"""PNG plots of a sweep, all 1200 x 800 pixels, written atomically via suite.results.

matplotlib's object-oriented API without pyplot: no global backend or figure registry is
touched, so summarizing inside a notebook or a Ray driver has no side effects. Reference
baselines (fitted once) are horizontal dashed lines, never curves over terms.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite.results import write_bytes
from suite.summary.frames import MODEL_ORDER, label, numeric
from suite.summary.stats import mean_ci
from suite.summary.tables import to_grid
from suite.summary.verdicts import SELECTED

# Every plot has this size, so its pixel size is known: 1200 x 800 pixels.
PLOT_SIZE_IN: tuple[float, float] = (12.0, 8.0)
PLOT_DPI = 100
TERM_LABEL = "term (0 = plain negative sampling)"


def _new_figure(nrows: int = 1, ncols: int = 1):  # noqa: ANN202 - matplotlib types, lazily
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _save_png(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    """Render at the fixed size (never bbox 'tight', which would change the pixel size) and
    write through the one atomic writer."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)
    write_bytes(buf.getvalue(), path)
    return path


def curve(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and CI half-width of `metric` per term over the given trial-term rows."""
    out = []
    for term, g in rows.groupby("term", sort=True):
        mean, ci, n = mean_ci(numeric(g[metric]))
        if n:
            out.append({"term": int(term), "mean": mean, "ci95": ci, "n": n})
    return pd.DataFrame(out, columns=["term", "mean", "ci95", "n"])


def _draw_curve(ax, c: pd.DataFrame, name: str, color: Any) -> None:  # noqa: ANN001
    ax.plot(c["term"], c["mean"], marker="o", ms=3, color=color, label=name)
    band = c["ci95"].fillna(0.0)
    ax.fill_between(c["term"], c["mean"] - band, c["mean"] + band, color=color, alpha=0.2,
                    linewidth=0)


def _color(model: Any, i: int) -> str:
    try:
        return f"C{MODEL_ORDER.index(model)}"
    except ValueError:
        return f"C{i % 10}"


def _metric_panel(ax, terms: pd.DataFrame, best: pd.DataFrame, metric: str,  # noqa: ANN001
                  baselines: pd.DataFrame) -> None:
    from matplotlib.ticker import MaxNLocator

    for i, (_, b) in enumerate(best.iterrows()):
        ids = str(b["trials"]).split(",")
        c = curve(terms[terms["trial_id"].astype(str).isin(ids)], metric)
        if not c.empty:
            _draw_curve(ax, c, f"{b['model']} ({int(c['n'].max())} seeds)",
                        _color(b["model"], i))
    for i, (_, b) in enumerate(baselines.iterrows()):
        v = b["mean"] if metric == b.get("objective") else b.get(metric, math.nan)
        if v is not None and math.isfinite(float(v)):
            ax.axhline(float(v), ls="--", lw=1.5, color=_color(b["model"], i),
                       label=f"{b['model']} (baseline, fitted once)")
    ax.set_title(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # terms are whole numbers
    ax.set_xlabel(TERM_LABEL)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")


def plot_metrics_vs_term(terms: pd.DataFrame, best: pd.DataFrame, metrics: Sequence[str],
                         title: str, path: Path) -> Path | None:
    """Each metric against the term for every trained model's best configuration (mean line,
    95 % CI band over seeds; the paper's Figures 5-6), baselines as dashed lines (their
    selected-term test value). None when there is nothing to draw."""
    metrics = [m for m in dict.fromkeys(metrics) if m in terms.columns]
    trained = best[best["kind"] == "trained"] if "kind" in best.columns else best
    if trained.empty or not metrics or terms.empty:
        return None
    baselines = best[best["kind"] == "baseline"] if "kind" in best.columns else best.iloc[0:0]
    ncols = 1 if len(metrics) == 1 else (2 if len(metrics) <= 4 else 3)
    nrows = math.ceil(len(metrics) / ncols)
    fig, axs = _new_figure(nrows, ncols)
    for k, metric in enumerate(metrics):
        _metric_panel(axs[k // ncols][k % ncols], terms, trained, metric, baselines)
    for k in range(len(metrics), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(title)
    return _save_png(fig, path)


def plot_heatmap(cells: pd.DataFrame, axis: str, objective: str, mode: str, title: str,
                 path: Path) -> Path | None:
    """Heat map of a metric over (axis value, term) from `axis_by_term`, best cell framed."""
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
    ax.set_xlabel(TERM_LABEL)
    ax.set_ylabel(axis)
    fig.colorbar(im, ax=ax, label=f"{objective} (mean; {'higher' if mode == 'max' else 'lower'}"
                 " is better)")
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
        r, c = list(grid.index).index(label(best[0])), list(grid.columns).index(label(best[1]))
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red",
                               linewidth=2.5,
                               label=f"best: {axis}={label(best[0])}, term {best[1]}"))
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.08), fontsize="small")
    ax.set_title(title)
    return _save_png(fig, path)


def plot_strategy_differences(comparisons: pd.DataFrame, metric: str, reference: str,
                              title: str, path: Path) -> Path | None:
    """The headline figure of a strategy sweep: each arm minus `reference` on `metric` against
    the term, mean paired difference over seeds with its 95 % CI band, a zero line; the
    validation-selected term as a point with an error bar at the right."""
    if comparisons.empty:
        return None
    rows = comparisons[comparisons["a"] == reference]
    if rows.empty:
        return None
    fig, axs = _new_figure()
    ax = axs[0][0]
    per_term = rows[rows["budget"] != SELECTED]
    last = int(max(per_term["budget"])) if len(per_term) else 0
    for i, (arm, g) in enumerate(rows.groupby("b", sort=False)):
        t = g[g["budget"] != SELECTED]
        # The table holds reference - arm; the figure shows arm - reference (below 0: worse).
        d = -numeric(t["diff"]).to_numpy()
        lo, hi = -numeric(t["ci_high"]).to_numpy(), -numeric(t["ci_low"]).to_numpy()
        x = t["budget"].astype(int).to_numpy()
        ax.plot(x, d, marker="o", ms=3, color=f"C{i + 1}", label=f"{arm} - {reference}")
        ax.fill_between(x, np.nan_to_num(lo, nan=d), np.nan_to_num(hi, nan=d),
                        color=f"C{i + 1}", alpha=0.2, linewidth=0)
        s = g[g["budget"] == SELECTED]
        if len(s):
            r = s.iloc[0]
            err = [[-r["ci_high"] + r["diff"]], [r["diff"] - r["ci_low"]]]
            ax.errorbar([last + 1 + 0.15 * i], [-r["diff"]], fmt="s", color=f"C{i + 1}",
                        yerr=None if not math.isfinite(r["ci_low"]) else np.abs(err), capsize=5)
    ax.axhline(0.0, color="black", lw=1)
    ax.set_xlabel(f"{TERM_LABEL}; squares right of the curves: each trial at its "
                  "validation-selected term")
    ax.set_ylabel(f"{metric}: arm minus {reference} (mean over seeds, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title)
    return _save_png(fig, path)
