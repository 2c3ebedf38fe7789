"""W&B dashboards as code: the workspace and report built from a sweep folder's spec.

Assertions are on wandb_workspaces' own objects (panel classes, their metric objects, the
runset filter parsed back by the library), never on rendered strings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from suite import tracking
from suite.dashboard import (
    DashboardError,
    build_dashboard,
    cmd_dashboard,
    load_spec,
    load_view,
    parse_summary_md,
    publish_command,
    register_cli,
    spec_json,
)
from suite.dashboard.panels import build_report, build_workspace

REPO = Path(__file__).resolve().parents[1]

# The recorded specs of three configs/*.yaml sweeps, reduced to what sweep.json holds that
# the dashboard reads (the real files also carry data, fixed, resources...).
SPECS = {
    "quickstart": {
        "axes": ["model", "mf_dim", "negatives", "threshold", "seed"],
        "space": {"model": {"grid": ["gmf", "neumf"]}, "mf_dim": {"grid": [4, 16]},
                  "negatives": {"grid": [1000, 2000]}, "threshold": {"grid": [0.3, 0.6]}},
        "pivots": [["negatives", "model"], ["threshold", "model"], ["mf_dim", "model"]],
    },
    "ablation-terms": {
        "axes": ["model", "threshold", "seed"],
        "space": {"model": {"grid": ["mlp", "neumf"]}, "threshold": {"grid": [0.5, 0.8]}},
        "pivots": [["terms", "threshold"], ["terms", "model"]],
    },
    "strategies": {
        "axes": ["strategy", "seed"],
        "space": {"strategy": {"grid": ["ocfb", "random-replace", "resample-all", "static"]}},
        "pivots": [["strategy", "terms"]],
    },
    "tuned": {  # a random search with a log-uniform lr, baselines, a per-model sub-space
        "axes": ["model", "lr", "mf_dim", "seed"],
        "space": {"model": {"choice": ["neumf", "popularity", "ease"]},
                  "lr": {"loguniform": [1e-4, 1e-2]}},
        "per_model": {"neumf": {"mf_dim": {"grid": [4, 8]}}},
        "pivots": [], "protocol": "paper", "objective": {"metric": "val_auc", "mode": "max"},
    },
}
# What each sweep's workspace must hold: parallel-coordinates axes, objective-vs-term
# groupings, scatter axes (numeric ones), log-scale scatter axes.
EXPECTED = {
    "quickstart": (["model", "mf_dim", "negatives", "threshold"], ["threshold", "model"],
                   ["mf_dim", "negatives", "threshold"], []),
    "ablation-terms": (["model", "threshold"], ["threshold", "model"], ["threshold"], []),
    "strategies": (["strategy"], ["strategy"], [], []),
    "tuned": (["model", "lr", "mf_dim"], ["model"], ["lr", "mf_dim"], ["lr"]),
}


def sweep_dir(root: Path, name: str, *, trials: pd.DataFrame | None = None) -> Path:
    """A sweep output folder holding sweep.json (and trials.parquet when given)."""
    d = root / name
    d.mkdir(parents=True)
    meta = {"name": name, "protocol": "holdout", "wandb_mode": "offline",
            "objective": {"metric": "val_hr@10", "mode": "max"},
            "wandb": {"project": "ocfb-test", "entity": None, "mode": "auto", "tags": []},
            **SPECS[name]}
    (d / "sweep.json").write_text(json.dumps(meta))
    if trials is not None:
        trials.to_parquet(d / "trials.parquet")
    return d


def panels_of(workspace: ws.Workspace, kind: type) -> list:
    return [p for s in workspace.sections for p in s.panels if isinstance(p, kind)]


def config_names(metrics: list) -> list[str]:
    return [m.name for m in metrics if isinstance(m, wr.Config)]


@pytest.mark.parametrize("name", ["quickstart", "ablation-terms", "strategies", "tuned"])
def test_workspace_panels_follow_the_spec(tmp_path: Path, name: str):
    axes, groupings, scatter_axes, log_axes = EXPECTED[name]
    view = load_view(sweep_dir(tmp_path, name))
    workspace = build_workspace(view)
    objective = "val_auc" if name == "tuned" else "val_hr@10"

    # the runset: this sweep's trial runs only (the summary run shares the group)
    filters = expr.string_to_filterexpr_list(workspace.runset_settings.filters)
    assert [(f.key, f.op, f.value) for f in filters] == [
        (expr.Metric("Group"), "=", name), (expr.Metric("JobType"), "=", "trial")]

    # parallel coordinates: the searched axes (no seed), then the objective at its best term
    pc = panels_of(workspace, wr.ParallelCoordinatesPlot)[0]
    metrics = [c.metric for c in pc.columns]
    assert config_names(metrics) == axes
    assert metrics[-1] == wr.SummaryMetric(f"{objective}.max")

    # objective and its test counterpart vs term, one plot per grouping axis searched
    both = [objective, f"test_{objective[4:]}"]
    lines = [p for p in panels_of(workspace, wr.LinePlot) if p.y == both]
    assert [p.groupby for p in lines] == [wr.Config(g) for g in groupings]
    assert all(p.x == "term" and p.groupby_aggfunc == "mean" for p in lines)

    # scatter of the objective against each numeric axis, log x where drawn log-uniformly
    scatters = panels_of(workspace, wr.ScatterPlot)
    assert config_names([p.x for p in scatters]) == scatter_axes
    assert all(p.y == wr.SummaryMetric(f"{objective}.max") for p in scatters)
    assert [p.x.name for p in scatters if p.log_x] == log_axes


def test_pivots_add_panels_only_where_they_add_a_view(tmp_path: Path):
    """terms x K is the objective vs term by K (skipped when K already groups a term plot);
    A x B, both searched, is a parallel-coordinates plot of A, B and the objective."""
    quick = build_workspace(load_view(sweep_dir(tmp_path, "quickstart")))
    pivot_section = next(s for s in quick.sections if s.name == "Pivots")
    assert [config_names([c.metric for c in p.columns]) for p in pivot_section.panels] == [
        ["negatives", "model"], ["threshold", "model"], ["mf_dim", "model"]]
    ablation = build_workspace(load_view(sweep_dir(tmp_path, "ablation-terms")))
    assert "Pivots" not in [s.name for s in ablation.sections]  # threshold, model: term plots


def test_baselines_are_pinned_reference_runs(tmp_path: Path):
    trials = pd.DataFrame({"trial_id": ["t_00000", "t_00001", "t_00002"],
                           "config.model": ["neumf", "popularity", "ease"]})
    view = load_view(sweep_dir(tmp_path, "tuned", trials=trials))
    assert view.baseline_runs == ["tuned-t_00001", "tuned-t_00002"]
    workspace = build_workspace(view)
    assert workspace.runset_settings.pinned_runs == ["tuned-t_00001", "tuned-t_00002"]
    assert {r: s.color for r, s in workspace.runset_settings.run_settings.items()} == {
        "tuned-t_00001": "#888888", "tuned-t_00002": "#888888"}
    (bars,) = panels_of(workspace, wr.BarPlot)
    assert bars.groupby == wr.Config("model") and bars.metrics == [wr.SummaryMetric("val_auc.max")]
    # without baseline trials: no pins and no baseline section
    plain = build_workspace(load_view(sweep_dir(tmp_path, "strategies")))
    assert plain.runset_settings.pinned_runs == [] and panels_of(plain, wr.BarPlot) == []


def test_spec_json_round_trips_and_is_valid_for_wandb(tmp_path: Path):
    """The JSON rebuilds the same objects (same JSON again), and those objects convert to the
    view spec W&B saves (the library's own wire model)."""
    view = load_view(sweep_dir(tmp_path, "quickstart"))
    for obj in (build_workspace(view), build_report(view)):
        text = spec_json(obj)
        again = load_spec(text)
        assert type(again) is type(obj)
        assert spec_json(again) == text
        assert spec_json(type(obj)(**{k: getattr(obj, k) for k in ("entity", "project")})) != text
        again._to_model()  # private, tests only: W&B's validation of the saved spec
    workspace = load_spec(spec_json(build_workspace(view)))
    pc = panels_of(workspace, wr.ParallelCoordinatesPlot)[0]
    assert config_names([c.metric for c in pc.columns]) == ["model", "mf_dim", "negatives",
                                                            "threshold"]


SUMMARY_MD = """# Sweep summary: demo

- Objective: `val_hr@10` (maximize), protocol: `holdout`
- Axes: threshold, seed

## Notes

- Every trial completed, none is missing.

## 1. Leaderboard

Top 2 of 2 configuration(s) by `val_hr@10`.

| rank | threshold |
|---|---|
| 1 | 0.3 |

The winner (threshold=0.3) leads the runner-up by 0.0096; their 95% CIs overlap.

## 2. Best per model type

Protocol `holdout`: each model type's best configuration.

| metric | neumf |
|---|---|

Protocol `paper`: each model type's best configuration.

| metric | neumf |
|---|---|

## 4. Negatives x model and other pivots

### negatives x model

`val_hr@10` (each trial at its best term).

| a | b |
|---|---|

### strategy x terms

`val_hr@10` (each trial at its best term).

## 6. Protocol gap

_Not applicable: no paper trials._
"""


def test_parse_summary_md_keeps_verdicts_not_descriptions():
    header, verdicts = parse_summary_md(SUMMARY_MD)
    assert header == ["Objective: `val_hr@10` (maximize), protocol: `holdout`",
                      "Axes: threshold, seed"]
    assert verdicts == [("Leaderboard", "The winner (threshold=0.3) leads the runner-up by "
                                        "0.0096; their 95% CIs overlap.")]


def summary_tables(view_name: str) -> dict[str, pd.DataFrame]:
    return {"leaderboard": pd.DataFrame({"threshold": [0.3], "val_hr@10": [0.4]}),
            "best_per_model": pd.DataFrame({"metric": ["seeds"], "neumf": ["3"]})}


@pytest.fixture
def wenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No W&B credentials or settings from the machine; a closed port as the server."""
    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_references_exactly_the_summary_runs_tables(wenv: Path):
    """Tables and plots in the report = what the logged summary run holds (its manifest), not
    stale CSVs lying in tables/; before any summary run, what log_summary would log."""
    d = sweep_dir(wenv, "strategies")
    (d / "tables").mkdir()
    for stale in ("leaderboard", "best_per_model", "protocol_gap"):
        (d / "tables" / f"{stale}.csv").write_text("a\n1\n")
    before = build_report(load_view(d))
    names = [p.table_name for b in before.blocks if isinstance(b, wr.PanelGrid)
             for p in b.panels if isinstance(p, wr.WeavePanelSummaryTable)]
    assert names == ["best_per_model", "leaderboard", "protocol_gap"]

    tracking.prepare_env(d)
    tracking.log_summary(out_dir=d, sweep_name="strategies", project="ocfb-test", entity=None,
                         mode="offline", tables=summary_tables("strategies"), images=[],
                         files=[])
    report = build_report(load_view(d))
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    names = [p.table_name for g in grids for p in g.panels
             if isinstance(p, wr.WeavePanelSummaryTable)]
    assert names == ["leaderboard", "best_per_model"]
    # the tables come from the summary run; the headline plots from the trial runs
    for grid in grids:
        (runset,) = grid.runsets
        job = "summary" if isinstance(grid.panels[0], wr.WeavePanelSummaryTable) else "trial"
        filters = expr.string_to_filterexpr_list(runset.filters)
        assert [(f.key, f.value) for f in filters] == [(expr.Metric("Group"), "strategies"),
                                                       (expr.Metric("JobType"), job)]


def test_no_key_writes_specs_and_attempts_no_network(wenv: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture):
    """`ocfb-suite dashboard DIR --wandb online` with no key: exit 0, both specs written, one
    warning line, the publish command printed, and not one connection attempted."""
    attempts: list = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no network ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    d = sweep_dir(wenv, "ablation-terms")
    (d / "wandb" / "offline-run-20250101_000000-t1").mkdir(parents=True)  # an offline trial run
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["dashboard", str(d), "--wandb", "online"])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert cmd_dashboard(args) == 0
    assert time.monotonic() - started < 20
    assert attempts == []
    assert sorted(p.name for p in (d / "dashboard").iterdir()) == ["report.json",
                                                                    "workspace.json"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning == ("W&B dashboard not saved online: no W&B credentials found "
                       "(WANDB_API_KEY or `wandb login`)")
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"W&B dashboard specs in {d}/dashboard/; publish with: wandb sync "
                   f"{d}/wandb/offline-run-* && ocfb-suite dashboard {d} --wandb online"]
    workspace = load_spec((d / "dashboard" / "workspace.json").read_text())
    assert isinstance(workspace, ws.Workspace) and workspace.project == "ocfb-test"


def test_disabled_builds_nothing_and_a_non_sweep_folder_is_named(wenv: Path, capsys):
    d = sweep_dir(wenv, "strategies")
    assert build_dashboard(d, "disabled") is None
    assert not (d / "dashboard").exists()
    with pytest.raises(ValueError, match="mode: 'upload' is not one of online, offline"):
        build_dashboard(d, "upload")
    with pytest.raises(DashboardError, match="no sweep.json here"):
        build_dashboard(wenv, "offline")
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    assert cmd_dashboard(parser.parse_args(["dashboard", str(wenv / "nowhere")])) == 2
    assert "nowhere: no such folder; pass the output folder of a sweep" in capsys.readouterr().err


def test_a_disabled_sweep_is_not_told_to_sync_runs_it_never_logged(wenv: Path, capsys):
    """`--wandb disabled` leaves no DIR/wandb/offline-run-*: no `wandb sync` of it (issue 23);
    a sweep logged online has nothing to sync either, only the dashboard command."""
    d = sweep_dir(wenv, "strategies")
    meta = json.loads((d / "sweep.json").read_text())
    (d / "sweep.json").write_text(json.dumps({**meta, "wandb_mode": "disabled"}))
    assert build_dashboard(d, "offline") is not None
    (line,) = capsys.readouterr().out.splitlines()
    assert "wandb sync" not in line and "offline-run" not in line
    assert line == (f"W&B dashboard specs in {d}/dashboard/; the sweep ran with W&B disabled, "
                    "so no W&B runs exist for them to show: rerun it with --wandb offline (or "
                    "online) to have runs to publish")
    (d / "sweep.json").write_text(json.dumps({**meta, "wandb_mode": "online"}))
    assert publish_command(d) == f"ocfb-suite dashboard {d} --wandb online"
    (d / "wandb" / "offline-run-1").mkdir(parents=True)
    assert publish_command(d).startswith(f"wandb sync {d}/wandb/offline-run-* && ")


ONLINE_SCRIPT = """
import argparse, logging, sys
from suite.dashboard import cmd_dashboard, register_cli
logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
parser = argparse.ArgumentParser()
register_cli(parser.add_subparsers())
sys.exit(cmd_dashboard(parser.parse_args(["dashboard", sys.argv[1], "--wandb", "online"])))
"""


@pytest.mark.slow  # a subprocess waiting out W&B's HTTP timeout: about 10 s
def test_online_with_a_key_but_no_server_falls_back_in_bounded_time(wenv: Path):
    """A key, but the server unreachable (a closed local port): one warning line, exit 0, the
    specs written, the key in no file."""
    d = sweep_dir(wenv, "strategies")
    key = "canary-" + "k" * 40
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", WANDB_API_KEY=key,
               WANDB_HTTP_TIMEOUT="1", PYTHONPATH=str(REPO), HOME=str(wenv),
               NETRC=str(wenv / "no-netrc"))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ONLINE_SCRIPT), str(d)],
                          env=env, cwd=wenv, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    ours = [line for line in proc.stderr.splitlines() if line.startswith("suite.dashboard")]
    assert len(ours) == 1 and "W&B dashboard not saved online: cannot use W&B online" in ours[0]
    assert (d / "dashboard" / "report.json").is_file()
    assert key not in proc.stdout + proc.stderr
    assert not [p for p in wenv.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
