"""What summary.md and compare.md show: number formats, markdown tables, the text of each table
and verdict line, and the PNG plots (pure functions: data frames in, strings or PNG files out).

Every plot is drawn with matplotlib's object-oriented API without pyplot: no global backend or
figure registry is touched, so summarizing inside a notebook or a Ray driver has no side
effects. Reference baselines (fitted once) are horizontal dashed lines, never curves over terms.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocfb.metrics import format_classification_report
from suite.results import write_bytes
from suite.summary.frames import (
    HOLDOUT_RANKING_METRICS,
    MODEL_ORDER,
    PAPER_REPORT_METRICS,
    is_missing,
    label,
    numeric,
    report_metric,
)
from suite.summary.stats import kind_of, mean_ci, outcome
from suite.summary.tables import to_grid
from suite.summary.verdicts import SELECTED, Lead, VerdictPlan

# Every plot has this size (1200 x 800 pixels; the critical-difference diagram half as tall).
PLOT_SIZE_IN: tuple[float, float] = (12.0, 8.0)
PLOT_DPI = 100
TERM_LABEL = "term (0 = plain negative sampling)"


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


def signed(v: Any) -> str:
    """A difference with its sign: '+0.0100', '-0.0200', '0.0000'."""
    return f"{'+' if not is_missing(v) and float(v) > 0 else ''}{fmt(v)}"


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


def config_label(row: pd.Series, axes: Sequence[str]) -> str:
    """'model=gmf, threshold=0.5' for the axes a row has (missing ones left out)."""
    parts = [f"{a}={label(row[a])}" for a in axes if a in row.index and not is_missing(row[a])]
    return ", ".join(parts) or "-"


def grid_rows(grid: pd.DataFrame, ci: pd.DataFrame, n: pd.DataFrame,
              best: tuple[Any, Any] | None) -> list[list[Any]]:
    """Markdown rows of a wide grid: "mean +- ci (n)" per cell, the best in bold."""
    rows = []
    for i, r in enumerate(grid.index):
        row = [r]
        for j, c in enumerate(grid.columns):
            v = grid.iat[i, j]
            s = "" if is_missing(v) else pm(v, ci.iat[i, j], n.iat[i, j])
            if best is not None and s and label(best[0]) == r and label(best[1]) == c:
                s = f"**{s}**"
            row.append(s)
        rows.append(row)
    return rows


# -- leaderboard and best per model -------------------------------------------------------------


def _winner_line(lead: Lead | None, axes: Sequence[str], objective: str, mode: str) -> str:
    """The best row against the runner-up (baselines too, issue 23) as a paired verdict."""
    if lead is None:
        return ""
    a, b, p = lead
    who = [config_label(r, axes) + (", baseline" if r["kind"] == "baseline" else "")
           for r in (a, b)]
    verdict = outcome(p.diff, p.t_p, p.tost_p, mode, "the best row", p.why, p.n, p.mde, p.rope)
    ci = "" if is_missing(p.ci_low) else f" [{fmt(p.ci_low)}, {fmt(p.ci_high)}]"
    test = "" if is_missing(p.t_p) else f", paired t p {fmt_p(p.t_p)}"
    return (f"The best row ({who[0]}) against the runner-up ({who[1]}) on `{objective}`, "
            f"paired on {p.n} seed(s): {signed(p.diff)}{ci}{test}: {verdict}. Both rows were "
            "picked on this metric, so the lead is optimistic; the verdicts below are the "
            "findings.")


def render_leaderboard(board: pd.DataFrame, objective: str, mode: str,
                       lead: Lead | None = None) -> str:
    """summary.md's leaderboard: rank (ref for baselines), axes, selection metric, test, the
    tuning budget each row had."""
    axes = board.attrs.get("axes", [])
    test = report_metric(objective)
    has_test = test != objective and test in board.columns
    header = ["rank", *axes, f"{objective} (validation, mean +- 95% CI, n seeds)"]
    header += [f"{test} at the selected term", f"{test} at the final term (fixed budget)"] if (
        has_test) else []
    header += ["selected term (mean)", "tuning budget"]
    rows = []
    for _, r in board.iterrows():
        ref = r["kind"] == "baseline"
        row = ["ref" if ref else str(int(r["rank"])), *[label(r[a]) for a in axes],
               pm(r["mean"], r["ci95"], r["n_seeds"])]
        if has_test:
            row += [pm(r[test], r[f"{test}_ci95"]),
                    pm(r[f"final_{test}"], r[f"final_{test}_ci95"])]
        row += ["fitted once" if ref else fmt(r["sel_term"], 1), r["tuning_budget"]]
        rows.append(row)
    trained = board[board["kind"] == "trained"]
    better = "higher" if mode == "max" else "lower"
    lines = [f"Top {len(trained)} of {board.attrs.get('n_configs', len(trained))} "
             f"configuration(s) by `{objective}` ({better} is better), each trial at the term "
             "where its validation objective peaks (earliest on ties); mean +- 95% CI (t) over "
             "seeds. Rows marked `ref` are reference baselines (fitted once, no terms).", "",
             md_table(header, rows)]
    winner = _winner_line(lead, axes, objective, mode)
    return "\n".join(lines + (["", winner] if winner else []))


def _nested_text(best: pd.DataFrame, test: str) -> str:
    lines = []
    for _, r in best[best["kind"] == "trained"].iterrows():
        if is_missing(r["nested"]):
            continue
        lines.append(f"- {r['model']}: {test} {fmt(r[test])} as picked, "
                     f"{pm(r['nested'], r['nested_ci95'], r['nested_n'])} cross-seed (chosen on "
                     f"the other seeds, scored on the held-out one); the plain pick overstates "
                     f"it by {fmt(r['overstates'])}. Optimistic (configuration and term selected "
                     f"on test): {fmt(r['optimistic'])}.")
    return "\n".join(lines)


def _paper_reports(best: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    parts = []
    for _, r in best.iterrows():
        report = {m.removeprefix("test_"): r[m] for m in PAPER_REPORT_METRICS}
        kind = "baseline, fitted once" if r["kind"] == "baseline" else (
            f"selected term {fmt(r['sel_term'], 1)} on average")
        title = (f"{r['model']} ({config_label(r, axes)}; {int(r['n_seeds'])} seed(s), {kind}; "
                 f"tuning budget: {r['tuning_budget']})")
        try:
            body = format_classification_report(report, title=title)
        except (ValueError, TypeError, KeyError):
            body = f"{title}\n(classification report not recorded)"
        body += f"\nAUC {pm(r['test_auc'], r['test_auc_ci95'])}"
        parts.append("```\n" + body + "\n```")
    return parts


def _ranking_table(best: pd.DataFrame, axes: Sequence[str], objective: str) -> str:
    test = report_metric(objective)
    metrics = [m for m in HOLDOUT_RANKING_METRICS if m in best.columns]
    names = [f"{m} (baseline)" if k == "baseline" else str(m)
             for m, k in zip(best["model"], best["kind"], strict=True)]
    it = [r for _, r in best.iterrows()]
    rows = [["configuration", *[config_label(r, axes) for r in it]],
            ["tuning budget", *[r["tuning_budget"] for r in it]],
            ["seeds", *[str(int(r["n_seeds"])) for r in it]],
            ["selected term (mean)", *["fitted once" if r["kind"] == "baseline" else
                                       fmt(r["sel_term"], 1) for r in it]],
            [f"{objective} (selection)", *[pm(r["mean"], r["ci95"]) for r in it]]]
    rows += [[m, *[pm(r[m], r[f"{m}_ci95"]) for r in it]] for m in metrics]
    rows.append([f"{test} at the final term (fixed budget)",
                 *[pm(r[f"final_{test}"], r[f"final_{test}_ci95"]) for r in it]])
    return md_table(["metric", *names], rows)


def render_best(best: pd.DataFrame, protocol: str, objective: str) -> str:
    """The paper's classification report per model (`paper`) or a metric x model table."""
    axes = best.attrs.get("axes", [])
    parts = [f"Protocol `{protocol}`: each model type's configuration with the best mean "
             f"`{objective}` over seeds (validation); its test metrics at each seed's "
             "validation-selected term. Baselines: reference rows."]
    if protocol == "paper":
        parts += _paper_reports(best, axes)
    else:
        parts.append(_ranking_table(best, axes, objective))
    nested = _nested_text(best, report_metric(objective))
    if nested:
        parts.append("How much picking the best configuration flatters it:\n" + nested)
    return "\n\n".join(parts)


# -- verdicts -----------------------------------------------------------------------------------


def _where(r: pd.Series | dict[str, Any], show_model: bool) -> str:
    at = ("at the validation-selected term" if r["budget"] == SELECTED
          else f"at term {r['budget']}")
    return f"{at} ({r['model']})" if show_model and not is_missing(r.get("model")) else at


def _numbers(r: pd.Series | dict[str, Any], metric: str, prefix: str = "") -> str:
    ci = "" if is_missing(r[f"{prefix}ci_low"]) else (
        f" [{fmt(r[f'{prefix}ci_low'])}, {fmt(r[f'{prefix}ci_high'])}]")
    n = int(r[f"{prefix}n_pairs"])
    if is_missing(r[f"{prefix}t_p_holm"]):
        return f"{signed(r[f'{prefix}diff'])}{ci} {metric} over {n} seed(s)"
    return f"{signed(r[f'{prefix}diff'])}{ci} {metric} ({n} seeds), Holm p " + fmt_p(
        r[f"{prefix}t_p_holm"])


def _head(r: pd.Series | dict[str, Any], show_model: bool) -> str:
    where = _where(r, show_model)
    if r.get("control") == "term 0":
        at = "selected term" if r["budget"] == SELECTED else f"term {r['budget']}"
        model = f" ({r['model']})" if show_model and not is_missing(r.get("model")) else ""
        return (f"{r['a']}{model}: {at} vs term 0 (includes the effect of "
                f"{fmt(r['extra_epochs'], 1)} extra epochs)")
    return f"{r['a']} vs {r['b']} {where}"


def verdict_line(r: pd.Series | dict[str, Any], plan: VerdictPlan,
                 show_model: bool = False) -> str:
    """'ocfb vs static at term 15: +0.1000 [0.0700, 0.1300] test_full_hr@10 (5 seeds), Holm p
    0.004: ocfb better; test_hr@10 beside: +0.0900 [...], Holm p 0.010: ocfb better'. A
    threshold against `static` that is not better says "no better than static"."""
    verdict = str(r["verdict"])
    if r.get("control") == "static" and kind_of(verdict) != "better":
        verdict += " (no better than static)"
    line = f"{_head(r, show_model)}: {_numbers(r, plan.metric)}: {verdict}"
    if plan.beside and isinstance(r.get("beside_verdict"), str):
        agree = "agrees" if r["agree"] == "yes" else "the two metrics DISAGREE"
        line += (f"; beside it, {_numbers(r, plan.beside, 'beside_')}: "
                 f"{r['beside_verdict']} ({agree})")
    return line


def verdict_table(rows: pd.DataFrame, plan: VerdictPlan) -> str:
    """Markdown of verdict lines: budget, (model), who vs whom, difference [CI], seeds,
    p-values (Holm), the minimal detectable effect, the verdict, and the other metric beside."""
    show_model = rows["model"].nunique(dropna=True) > 1
    header = ["budget", *(["model"] if show_model else []), "comparison",
              f"difference in {plan.metric} [95% CI]", "seeds", "t p (Holm)",
              "Wilcoxon p (Holm)", f"TOST p (Holm), rope {plan.rope:g}",
              "smallest detectable effect", "verdict"]
    if plan.beside:
        header += [f"difference in {plan.beside}", f"{plan.beside} verdict", "agree"]
    body = []
    for _, r in rows.iterrows():
        ci = "" if is_missing(r["ci_low"]) else f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
        line = [label(r["budget"]), *([label(r["model"])] if show_model else []),
                f"{r['a']} vs {r['b']}", f"{fmt(r['diff'])}{ci}", str(int(r["n_pairs"])),
                fmt_p(r["t_p_holm"]), fmt_p(r["wilcoxon_p_holm"]), fmt_p(r["tost_p_holm"]),
                fmt(r["mde"]), r["verdict"]]
        if plan.beside:
            line += [fmt(r.get("beside_diff")), r.get("beside_verdict", "n/a"),
                     r.get("agree", "n/a")]
        body.append(line)
    return md_table(header, body)


def finding(r: pd.Series | dict[str, Any], plan: VerdictPlan, section: str,
            show_model: bool = False) -> str | None:
    """One sentence for a verdict line that passes (better / worse) or reads equivalent, with
    its numbers; None for an inconclusive line."""
    kind = kind_of(str(r["verdict"]))
    if kind == "inconclusive":
        return None
    where = _where(r, show_model)
    if r.get("control") == "term 0":
        where += f" (against term 0: includes {fmt(r['extra_epochs'], 1)} extra epochs)"
    ci = "" if is_missing(r["ci_low"]) else f", 95% CI [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
    if kind == "equivalent":
        what = (f"{r['a']} and {r['b']} are practically equivalent (within +-{r['rope']:g}) "
                f"{where} on `{plan.metric}`: difference {signed(r['diff'])}{ci}, TOST Holm p "
                f"{fmt_p(r['tost_p_holm'])}")
    else:
        what = (f"{r['a']} is {kind} than {r['b']} {where} on `{plan.metric}`: difference "
                f"{signed(r['diff'])}{ci}, Holm p {fmt_p(r['t_p_holm'])}")
    return f"{what}, {int(r['n_pairs'])} seeds ({section})."


# -- plots ---------------------------------------------------------------------------------------


def _new_figure(nrows: int = 1, ncols: int = 1, height: float = 1.0):  # noqa: ANN202
    from matplotlib.figure import Figure  # (matplotlib's types, imported lazily)

    size = (PLOT_SIZE_IN[0], PLOT_SIZE_IN[1] * height)
    fig = Figure(figsize=size, dpi=PLOT_DPI, layout="constrained")
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


class _StableName(str):
    """A label hashed alike in every process: scikit-posthocs keeps the arms of a crossbar in
    sets, so under str's per-process hash each run drew them in another order (other bytes)."""

    def __hash__(self) -> int:
        return zlib.crc32(self.encode())


def plot_critical_difference(ranks: pd.Series, sig: pd.DataFrame, cd: float, title: str,
                             path: Path) -> Path:
    """The critical-difference diagram (scikit-posthocs) as a PNG, written atomically; the same
    bytes for the same ranks in every run."""
    import scikit_posthocs as sp

    names = pd.Index([_StableName(a) for a in ranks.index], dtype=object)
    sig = pd.DataFrame(sig.loc[ranks.index, ranks.index].to_numpy(), index=names, columns=names)
    ranks = pd.Series(ranks.to_numpy(), index=names)
    fig, axes = _new_figure(height=0.5)
    ax = axes[0][0]
    sp.critical_difference_diagram(ranks, sig, ax=ax, cd=cd if math.isfinite(cd) else None)
    ax.set_title(title)
    return _save_png(fig, path)
