"""W&B dashboards as code: a saved workspace and a report for one sweep folder.

`build_dashboard(DIR, mode)` reads DIR/sweep.json (name, project, entity, axes, objective,
protocol, pivots), trials.parquet (baseline trials) and the summary (summary.md, the summary
run's tables) and builds, with W&B's `wandb_workspaces` library:

- a workspace filtered to the sweep's trial runs: parallel coordinates over the searched axes
  and the objective, the objective and its test counterpart against `term` grouped by
  threshold / strategy / model (those searched), the objective against each numeric axis, the
  spec's pivots, and the baselines pinned as grey reference runs;
- a report mirroring summary.md: its header and verdict lines, the headline plots, every table
  the summary run holds, and a link to the workspace.

Both are always written to DIR/dashboard/{workspace,report}.json: the library's objects, each
with its class and public fields, which `load_spec` turns back into the same objects. Online
they are also saved to W&B; offline, or online without working credentials, one line says how
to publish them later. Nothing here prompts, and no W&B or network failure escapes: it becomes
one warning line.

What the panels show (`SweepView`) is derived here, as plain data, from the spec the sweep
recorded and from what the summary run holds, so nothing is written per config file; the
`wandb_workspaces` objects are built in `suite.dashboard.panels`, imported only when a dashboard
is built (3.1 s of imports, wandb's included).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocfb.names import BASELINE_MODELS, PROTOCOLS, WANDB_MODES, default_objective, test_counterpart
from suite.spec.vocabulary import usage_error

if TYPE_CHECKING:
    from suite.cli import Subcommands

__all__ = ["DashboardError", "DashboardResult", "SweepView", "build_dashboard", "load_spec",
           "load_view", "parse_summary_md", "publish_command", "register_cli", "spec_json"]

_LOG = logging.getLogger(__name__)
DASHBOARD_DIR = "dashboard"

# Axes the objective-vs-term plots are grouped by, in this order, when the sweep searches them:
# OCF-B's own knob first, then the comparison axes.
GROUPING_AXES = ("threshold", "strategy", "model")
# Dimension kinds of sweep.json's `space` that draw numbers from a range.
_RANGE_KINDS = ("uniform", "loguniform", "int")
# summary.md lines that are neither verdicts nor prose: tables, headings, images, fences, "n/a".
_NOT_VERDICT = re.compile(r"^(\||#|!\[|```|_Not applicable|_Skipped|- )")


class DashboardError(ValueError):
    """The folder is not a sweep output folder (no readable sweep.json), named in the message."""


@dataclass(frozen=True)
class SweepView:
    """The facts the workspace and the report are built from."""

    name: str
    project: str
    entity: str | None
    protocol: str
    objective: str
    mode: str  # "max" or "min": also the summary statistic that marks a trial's best term
    axes: list[str]  # searched config keys (the seed replicate left out)
    numeric_axes: list[str]  # of those, the ones with numeric values (scatter plots)
    log_axes: list[str]  # of those, the ones drawn log-uniformly (log x scale)
    pivots: list[tuple[str, str]] = field(default_factory=list)
    baseline_runs: list[str] = field(default_factory=list)  # W&B run ids of baseline trials
    tables: list[str] = field(default_factory=list)  # the summary run's table keys
    images: list[str] = field(default_factory=list)  # the summary run's plot keys
    header: list[str] = field(default_factory=list)  # summary.md's opening bullet lines
    verdicts: list[tuple[str, str]] = field(default_factory=list)  # (section, line)

    @property
    def test_metric(self) -> str | None:
        """The objective's test counterpart (None when the objective is not a val_ metric)."""
        return test_counterpart(self.objective)

    @property
    def objective_key(self) -> str:
        """The trial runs' summary key of the objective at its best term, e.g. val_hr@10.max."""
        return f"{self.objective}.{self.mode}"

    @property
    def grouping(self) -> list[str]:
        """The grouping axes this sweep searches (threshold, strategy, model order)."""
        return [a for a in GROUPING_AXES if a in self.axes]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _axis_kinds(space: dict[str, Any], axes: list[str]) -> tuple[list[str], list[str]]:
    """The numeric axes and the log-scale ones, from the dims recorded in sweep.json."""
    numeric, log = [], []
    for axis in axes:
        dim = space.get(axis) if isinstance(space.get(axis), dict) else {}
        kind, values = next(iter(dim.items()), (None, None))
        if kind in _RANGE_KINDS or (kind in ("grid", "choice") and values
                                    and all(_is_number(v) for v in values)):
            numeric.append(axis)
        if kind == "loguniform":
            log.append(axis)
    return numeric, log


def _dims(meta: dict[str, Any]) -> dict[str, Any]:
    """Every searched dimension in sweep.json: the shared `space` and each model's `per_model`
    sub-space (a key a model lacks is searched only for the models that have it)."""
    space = meta.get("space") if isinstance(meta.get("space"), dict) else {}
    dims = dict(space)
    per_model = meta.get("per_model") if isinstance(meta.get("per_model"), dict) else {}
    for sub in per_model.values():
        if isinstance(sub, dict):
            for key, dim in sub.items():
                dims.setdefault(key, dim)
    return dims


def _summary_keys(out_dir: Path) -> tuple[list[str], list[str]]:
    """The summary run's table and plot keys: its manifest when it was logged, else what
    `log_summary` would log from this folder (tables/*.csv, plots/*.png)."""
    from suite.tracking import summary_manifest

    manifest = summary_manifest(out_dir)
    if manifest is not None:
        return list(manifest.get("tables", [])), list(manifest.get("images", []))
    tables = sorted(p.stem for p in (out_dir / "tables").glob("*.csv"))
    images = sorted(f"plots/{p.stem}" for p in (out_dir / "plots").glob("*.png"))
    return tables, images


def _baseline_runs(out_dir: Path, name: str) -> list[str]:
    """W&B run ids of the sweep's baseline trials (reference runs), from trials.parquet."""
    from suite.tracking import trial_run_id

    path = out_dir / "trials.parquet"
    if not path.is_file():
        return []
    import pandas as pd

    try:
        trials = pd.read_parquet(path, columns=["trial_id", "config.model"])
    except (OSError, ValueError, KeyError):
        return []  # an older or partial file: no reference runs rather than no dashboard
    is_baseline = trials["config.model"].isin(BASELINE_MODELS)
    return [trial_run_id(name, str(t)) for t in trials.loc[is_baseline, "trial_id"]]


def parse_summary_md(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """summary.md's opening bullet lines, and its verdict lines with their section titles.

    A verdict is a prose line after a table or a code block that no further table follows
    before the next heading (e.g. "The winner ... leads the runner-up by ...", "Best cell ...",
    "ocfb beats static by ..."); a line that a table follows only describes that table.
    """
    header: list[str] = []
    verdicts: list[tuple[str, str]] = []
    pending: list[str] = []  # prose after a table: a verdict unless another table follows
    section, after_table, in_fence = "", False, False
    for raw in [*text.splitlines(), "## end"]:
        line = raw.strip()
        if line.startswith("```"):
            in_fence, after_table, pending = not in_fence, True, []
            continue
        if in_fence or not line:
            continue
        if line.startswith("#"):  # a heading ends the section's (or sub-section's) prose
            verdicts += [(section, v) for v in pending]
            pending, after_table = [], False
            if line.startswith("## "):
                section = re.sub(r"^\d+\.\s*", "", line[3:])
        elif not section and line.startswith("- "):
            header.append(line[2:])
        elif line.startswith("|"):
            after_table, pending = True, []
        elif section and after_table and not _NOT_VERDICT.match(line):
            pending.append(line)
    return header, verdicts


def _summary_md(out_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """summary.md's header and verdicts (none without it); DashboardError when unreadable."""
    path = out_dir / "summary.md"
    if not path.is_file():
        return [], []
    try:
        return parse_summary_md(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise DashboardError(f"{path}: unreadable ({why}); rebuild it with: ocfb-suite "
                             f"summarize {out_dir}") from None


def load_view(out_dir: Path) -> SweepView:
    """Read a sweep folder into a SweepView; DashboardError (one line naming the file and what
    to do) for a foreign folder, a missing or bad sweep.json, or a torn results file."""
    from suite.folders import FolderError, check_results, read_sweep_json

    out_dir = Path(out_dir)
    try:
        meta = read_sweep_json(out_dir)
        check_results(out_dir, need_trials=False, need_columns=False)
    except FolderError as exc:
        raise DashboardError(str(exc)) from None
    protocol = str(meta.get("protocol") or "holdout")
    if protocol not in PROTOCOLS:
        raise DashboardError(f"{out_dir / 'sweep.json'}: protocol {protocol!r} is not one of "
                             f"{', '.join(PROTOCOLS)}")
    objective = meta.get("objective") or {}
    wandb_cfg = meta.get("wandb") or {}
    axes = [str(a).removeprefix("config.") for a in meta.get("axes") or [] if a != "seed"]
    numeric, log = _axis_kinds(_dims(meta), axes)
    tables, images = _summary_keys(out_dir)
    header, verdicts = _summary_md(out_dir)
    name = str(meta["name"])
    return SweepView(
        name=name, project=str(wandb_cfg.get("project") or "ocfb-suite"),
        entity=wandb_cfg.get("entity") or None, protocol=protocol,
        objective=str(objective.get("metric") or default_objective(protocol)),
        mode=str(objective.get("mode") or "max"), axes=axes, numeric_axes=numeric,
        log_axes=log,
        pivots=[(str(p[0]), str(p[1])) for p in meta.get("pivots") or [] if len(p) == 2],
        baseline_runs=_baseline_runs(out_dir, name), tables=tables, images=images,
        header=header, verdicts=verdicts)



@dataclass
class DashboardResult:
    """What build_dashboard did: the spec files, the W&B URLs when published, one line to print."""

    paths: list[Path] = field(default_factory=list)
    workspace_url: str | None = None
    report_url: str | None = None
    message: str = ""


def _encode(value: Any) -> Any:
    """JSON data of a library object: its public init fields, each object tagged with its class
    (module and name: reports and workspaces each have a `Config`), lists and dicts recursed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        out: dict[str, Any] = {"type": f"{cls.__module__}:{cls.__qualname__}"}
        for f in dataclasses.fields(value):
            if f.init and not f.name.startswith("_"):
                out[f.name] = _encode(getattr(value, f.name))
        return out
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(data: Any) -> Any:
    """The inverse of _encode: library objects rebuilt through their public constructors."""
    if isinstance(data, list):
        return [_decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "type" not in data:
        return {k: _decode(v) for k, v in data.items()}
    module, _, name = str(data["type"]).partition(":")
    if not module.startswith("wandb_workspaces."):
        raise ValueError(f"spec names {data['type']!r}: not a wandb_workspaces class")
    cls = getattr(importlib.import_module(module), name)
    kwargs = {k: _decode(v) for k, v in data.items() if k != "type"}
    for key in ("range_x", "range_y", "range_z"):  # tuples in the library, lists in JSON
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


def spec_json(obj: Any) -> str:
    """A workspace or report as JSON: every object with its class and its public fields, the
    values as the library holds them after its own validation (filters as W&B's filter
    expression); random panel ids left out, so the same sweep gives the same file."""
    return json.dumps(_encode(obj), indent=2) + "\n"


def load_spec(text: str) -> Any:
    """A workspace or report back from spec_json's text (e.g. to publish or edit it)."""
    return _decode(json.loads(text))


def publish_command(out_dir: Path) -> str:
    """The one line that publishes the dashboard, syncing the sweep's offline runs first when
    there are any (a sweep logged online has none; `wandb sync` of a missing folder fails)."""
    dash = f"ocfb-suite dashboard {shlex.quote(str(out_dir))} --wandb online"
    runs = Path(out_dir) / "wandb"
    if not any(runs.glob("offline-run-*")):
        return dash
    return f"wandb sync {shlex.quote(str(runs))}/offline-run-* && {dash}"


def _publish_line(out_dir: Path) -> str:
    """Where the specs are and how to publish them; a sweep that ran with W&B disabled logged
    no runs, so its dashboard would be empty: say that instead of a command that syncs nothing."""
    where = out_dir / DASHBOARD_DIR
    if _recorded_mode(out_dir) == "disabled" and not any((out_dir / "wandb").glob("offline-run-*")):
        return (f"W&B dashboard specs in {where}/; the sweep ran with W&B disabled, so no W&B "
                f"runs exist for them to show: rerun it with --wandb offline (or online) "
                f"to have runs to publish")
    return f"W&B dashboard specs in {where}/; publish with: {publish_command(out_dir)}"


def _write_specs(out_dir: Path, workspace: Any, report: Any) -> list[Path]:
    from suite.results import write_text

    paths = [out_dir / DASHBOARD_DIR / "workspace.json", out_dir / DASHBOARD_DIR / "report.json"]
    for obj, path in zip((workspace, report), paths, strict=True):
        write_text(spec_json(obj), path)
    return paths


def _publish(view: SweepView) -> tuple[str, str]:
    """Save the workspace, then the report linking to it; return both URLs (needs W&B online)."""
    import wandb

    from suite.dashboard.panels import build_report, build_workspace

    if not view.entity:
        view = dataclasses.replace(view, entity=wandb.Api().default_entity)
    workspace = build_workspace(view).save()
    report = build_report(view, workspace.url).save()
    return workspace.url, report.url


def build_dashboard(out_dir: Path, mode: str, *, verbose: bool = True) -> DashboardResult | None:
    """Build the sweep's workspace and report; write their specs; save them when online.

    mode: "online", "offline" or "disabled" (nothing is built). Returns None when disabled.
    Raises DashboardError only for a folder without a readable sweep.json; a W&B or network
    failure is one warning line, and the specs are still written. verbose: print the result's
    one-line message (where the specs are and how to publish them, or the URLs).
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(WANDB_MODES)}")
    if mode == "disabled":
        return None
    out_dir = Path(out_dir)
    view = load_view(out_dir)
    from suite.dashboard.panels import build_report, build_workspace

    result = DashboardResult(paths=_write_specs(out_dir, build_workspace(view),
                                                build_report(view)))
    result.message = _publish_line(out_dir)
    if mode == "online":
        from suite.tracking import online_problem

        # with no key the check answers "no W&B credentials found" without the network
        why = online_problem()
        if why is not None:
            _LOG.warning(f"W&B dashboard not saved online: {why}")
        else:
            try:
                result.workspace_url, result.report_url = _publish(view)
                result.message = (f"W&B workspace: {result.workspace_url} ; report: "
                                  f"{result.report_url}")
            except Exception as exc:  # noqa: BLE001 - W&B must never fail a sweep
                from suite.tracking import short_error

                _LOG.warning(f"W&B dashboard not saved online ({short_error(exc)})")
    if verbose:
        print(result.message)
    return result


def _recorded_mode(out_dir: Path) -> str | None:
    """The W&B mode the sweep ran with (sweep.json), None when unknown."""
    try:
        return json.loads((Path(out_dir) / "sweep.json").read_text()).get("wandb_mode")
    except (OSError, ValueError, AttributeError):
        return None


def _default_mode(out_dir: Path) -> str:
    """online when the sweep logged online, else offline (the specs are still worth writing)."""
    return "online" if _recorded_mode(out_dir) == "online" else "offline"


def cmd_dashboard(args: argparse.Namespace) -> int:
    """`ocfb-suite dashboard DIR`: exit 0 once the specs are written (published or not), 2 for
    a folder that is not a sweep's."""
    out_dir = Path(args.dir)
    mode = args.wandb or _default_mode(out_dir)
    try:
        if mode == "online":
            from suite import tracking

            tracking.prepare_env(out_dir)  # W&B's caches stay inside the sweep folder
        build_dashboard(out_dir, mode)
    except DashboardError as exc:
        return usage_error(str(exc))
    return 0


def register_cli(sub: Subcommands) -> None:
    """Add `ocfb-suite dashboard DIR [--wandb online|offline]`."""
    p = sub.add_parser("dashboard", help="build the W&B workspace and report of a sweep folder")
    p.add_argument("dir", help="the sweep's output folder")
    p.add_argument("--wandb", choices=("online", "offline"), default=None,
                   help="online: save to W&B; offline: only write DIR/dashboard/*.json "
                        "(default: online if the sweep logged online)")
    p.set_defaults(func=cmd_dashboard)
