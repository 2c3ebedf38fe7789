"""The sweep's W&B workspace and report, as `wandb_workspaces` objects built from a SweepView.

Trial runs are found by their run group (the sweep name) and job type ("trial"); the summary
run by job type "summary". A trial's summary holds every metric's min, max and last value
(suite.tracking.SUMMARY_STATS), so "the objective" in scatter and parallel-coordinates panels
is `<objective>.<mode>`: the trial at its best term, as the summary tables rank it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

if TYPE_CHECKING:  # annotations only: the package imports this module when it builds
    from suite.dashboard import SweepView

# Reference runs (baselines) are drawn in grey, so they read as references, not contenders.
BASELINE_COLOR = "#888888"
# The W&B app keeps at most this many pinned runs.
MAX_PINNED = 20
FULL_WIDTH = 24  # report panel grid units


def run_filters(view: SweepView, job_type: str) -> expr.And:
    """The runs of this sweep with this job type ("trial" or "summary")."""
    return expr.And(expr.Metric("Group") == view.name, expr.Metric("JobType") == job_type)


def _entity(view: SweepView) -> str:
    # Offline, without an entity in the spec, the specification leaves it empty: publishing
    # rebuilds it with the account's default entity (asking for that needs the network).
    return view.entity or ""


def parallel_coordinates(view: SweepView) -> wr.ParallelCoordinatesPlot:
    """One axis per searched key, then the objective at each trial's best term."""
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(a)) for a in view.axes]
    columns.append(wr.ParallelCoordinatesPlotColumn(
        metric=wr.SummaryMetric(view.objective_key), display_name=view.objective))
    return wr.ParallelCoordinatesPlot(
        title=f"{', '.join(view.axes) or 'trials'} -> {view.objective} ({view.mode}, best term)",
        columns=columns)


def term_plots(view: SweepView) -> list[wr.LinePlot]:
    """The objective and its test counterpart against `term`, one plot per grouping axis
    (threshold, strategy, model: those the sweep searches), mean and standard error over the
    group's trials; one ungrouped plot when the sweep searches none of them."""
    metrics = [view.objective] + ([view.test_metric] if view.test_metric else [])
    plots = []
    for axis in view.grouping or [None]:
        by = f" by {axis}" if axis else ""
        plots.append(wr.LinePlot(
            title=f"{' and '.join(metrics)} vs term{by}", x="term", y=list(metrics),
            groupby=wr.Config(axis) if axis else None,
            groupby_aggfunc="mean" if axis else None,
            groupby_rangefunc="stderr" if axis else None, title_x="term"))
    return plots


def scatter_plots(view: SweepView) -> list[wr.ScatterPlot]:
    """The objective (best term) against each numeric axis; log x for log-uniform ones."""
    return [wr.ScatterPlot(title=f"{view.objective} ({view.mode}) vs {axis}",
                           x=wr.Config(axis), y=wr.SummaryMetric(view.objective_key),
                           log_x=True if axis in view.log_axes else None)
            for axis in view.numeric_axes]


def pivot_plots(view: SweepView) -> list[Any]:
    """The spec's pivots: `terms x K` is the objective vs term grouped by K; `A x B` a
    parallel-coordinates plot of A, B and the objective. Pivots over keys the sweep does not
    search, or already drawn by term_plots, are left out."""
    panels: list[Any] = []
    for a, b in view.pivots:
        if "terms" in (a, b):
            other = b if a == "terms" else a
            if other in view.axes and other not in view.grouping:
                panels.append(wr.LinePlot(
                    title=f"{view.objective} vs term by {other}", x="term", y=[view.objective],
                    groupby=wr.Config(other), groupby_aggfunc="mean",
                    groupby_rangefunc="stderr"))
        elif a in view.axes and b in view.axes:
            panels.append(wr.ParallelCoordinatesPlot(
                title=f"{a} x {b} -> {view.objective}",
                columns=[wr.ParallelCoordinatesPlotColumn(metric=wr.Config(a)),
                         wr.ParallelCoordinatesPlotColumn(metric=wr.Config(b)),
                         wr.ParallelCoordinatesPlotColumn(
                             metric=wr.SummaryMetric(view.objective_key))]))
    return panels


def baseline_plots(view: SweepView) -> list[wr.BarPlot]:
    """Each model's best objective next to the baselines' (only when the sweep has them)."""
    if not view.baseline_runs:
        return []
    return [wr.BarPlot(title=f"{view.objective} ({view.mode}) by model, baselines included",
                       metrics=[wr.SummaryMetric(view.objective_key)],
                       groupby=wr.Config("model"), groupby_aggfunc="mean",
                       groupby_rangefunc="stderr")]


def build_workspace(view: SweepView) -> ws.Workspace:
    """The saved workspace: the sweep's trial runs only, baselines pinned as references."""
    sections = [
        ws.Section(name="Search", panels=[parallel_coordinates(view), *scatter_plots(view)],
                   is_open=True),
        ws.Section(name="Objective vs term", panels=term_plots(view), is_open=True),
    ]
    if pivots := pivot_plots(view):
        sections.append(ws.Section(name="Pivots", panels=pivots, is_open=True))
    if baselines := baseline_plots(view):
        sections.append(ws.Section(name="Baselines (reference runs)", panels=baselines,
                                   is_open=True))
    pinned = view.baseline_runs[:MAX_PINNED]
    return ws.Workspace(
        entity=_entity(view), project=view.project, name=f"{view.name} (ocfb-suite)",
        sections=sections,
        runset_settings=ws.RunsetSettings(
            filters=run_filters(view, "trial"), pinned_runs=list(pinned),
            run_settings={r: ws.RunSettings(color=BASELINE_COLOR) for r in pinned}))


def _runset(view: SweepView, job_type: str) -> wr.Runset:
    return wr.Runset(entity=_entity(view), project=view.project, name=f"{view.name} {job_type}",
                     filters=run_filters(view, job_type))


def _summary_panels(view: SweepView, keys: list[str], height: int) -> wr.PanelGrid:
    """The summary run's logged values (tables or plots), one full-width panel each."""
    return wr.PanelGrid(
        runsets=[_runset(view, "summary")], hide_run_sets=True,
        panels=[wr.WeavePanelSummaryTable(table_name=k, layout=wr.Layout(w=FULL_WIDTH, h=height))
                for k in keys])


def build_report(view: SweepView, workspace_url: str | None = None) -> wr.Report:
    """The report mirroring summary.md: header, verdicts, headline plots and every table the
    summary run holds (leaderboard and best-per-model first, as summary.md orders them)."""
    intro = "\n".join(f"- {line}" for line in view.header) or (
        f"- Objective: `{view.objective}` ({view.mode}imize), protocol: `{view.protocol}`")
    link = (f"[the sweep's workspace]({workspace_url})" if workspace_url else
            f"the saved workspace \"{view.name} (ocfb-suite)\" in project `{view.project}`")
    blocks: list[Any] = [wr.MarkdownBlock(text=f"{intro}\n\nAll trial runs: {link}.")]
    if view.verdicts:
        blocks += [wr.H2(text="Verdicts"), wr.MarkdownBlock(text="\n".join(
            f"- **{section}**: {line}" for section, line in view.verdicts))]
    blocks += [wr.H2(text="Headline plots"), wr.PanelGrid(
        runsets=[_runset(view, "trial")],
        panels=[parallel_coordinates(view), *term_plots(view), *baseline_plots(view)])]
    if view.images:
        blocks.append(_summary_panels(view, view.images, height=12))
    for key in view.tables:
        blocks += [wr.H3(text=key.replace("_", " ")), _summary_panels(view, [key], height=10)]
    return wr.Report(entity=_entity(view), project=view.project,
                     title=f"{view.name}: sweep summary"[:128],
                     description=f"{view.objective} ({view.mode}), protocol {view.protocol}; "
                                 "built by ocfb-suite from summary.md",
                     blocks=blocks)
