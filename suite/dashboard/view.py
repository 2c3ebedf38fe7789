"""What a sweep's dashboard shows, read from its folder: sweep.json, trials.parquet, summary.md.

Everything the panels need is derived here from the spec the sweep recorded (its axes,
objective, protocol and pivots) and from what the summary run holds, so nothing is written per
config file. No W&B import: this part is plain data, cheap to build and test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocfb.names import BASELINE_MODELS, PROTOCOLS, default_objective, test_counterpart

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
