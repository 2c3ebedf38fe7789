"""The sweep's W&B summary run: its tables, plots and results files, and the record of them.

One summary run per sweep (job_type "summary", the sweep's group, id "<sweep>-summary"),
re-logged in place. DIR/wandb/summary-run.json records what it holds, so the dashboard's report
references exactly those keys, and a resumed finished sweep can leave it alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.tracking.session import (
    LOG,
    RunStarter,
    check_mode,
    offline_dirs,
    plain,
    redact,
    sanitize_id,
    short_error,
    supersede,
)

if TYPE_CHECKING:
    import pandas as pd

# Written next to the runs once the summary run is logged: what it holds (its tables and
# plots), so the dashboard's report references exactly those keys.
SUMMARY_MANIFEST = "summary-run.json"


def _cell(value: Any) -> Any:
    """A table cell: plain, with every kind of missing value (NaN, None, NA, NaT) as None."""
    import pandas as pd

    value = plain(value)
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _table(wandb: Any, df: pd.DataFrame) -> Any:
    """A wandb.Table from a data frame: a meaningful index becomes columns, missing -> None."""
    import pandas as pd

    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    data = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    # a column may mix numbers and words (e.g. a budget of 5 terms or "final"): W&B's type
    # inference would refuse the whole table
    return wandb.Table(columns=columns, data=data, allow_mixed_types=True)


def summary_manifest(out_dir: Path) -> dict[str, Any] | None:
    """What the sweep's logged summary run holds (run id, tables, plot keys), or None when no
    summary run was logged from this folder (W&B disabled, or logging failed)."""
    path = Path(out_dir) / "wandb" / SUMMARY_MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_run_id(sweep_name: str) -> str:
    """The W&B run id of a sweep's summary run: one per sweep, re-logged in place."""
    return sanitize_id(f"{sweep_name}-summary")


def _log_summary_row(wandb: Any, run: Any, tables: dict[str, pd.DataFrame],
                     images: list[Path]) -> tuple[list[str], list[str]]:
    """Log the tables and plots in one row; return the table keys and the image keys."""
    row: dict[str, Any] = {name: _table(wandb, df) for name, df in tables.items()}
    for path in map(Path, images):
        if path.is_file():
            row[f"plots/{path.stem}"] = wandb.Image(str(path))
    if row:
        run.log(row)
    return list(tables), [k for k in row if k.startswith("plots/")]


def log_summary(*, out_dir: Path, sweep_name: str, project: str, entity: str | None, mode: str,
                tables: dict[str, pd.DataFrame], images: list[Path], files: list[Path],
                init_timeout: float = 30.0, finish_timeout: float = 300.0,
                skip_if_logged: bool = False) -> None:
    """Log the sweep's summary run (job_type "summary", same group): tables, plots, results files.

    Tables go in as wandb.Table under their names, PNGs as wandb.Image under "plots/<stem>", the
    files as one artifact of type "results"; then DIR/wandb/summary-run.json records what the
    run holds (for the dashboard). skip_if_logged: do nothing when that record exists (a resume
    of a finished sweep must not log the summary again). A W&B error is logged (one line),
    never raised.
    """
    if mode == "disabled":
        return
    check_mode(mode)
    if skip_if_logged and summary_manifest(out_dir) is not None:
        return
    starter = RunStarter(mode, Path(out_dir), init_timeout, finish_timeout)
    run = None
    try:
        import wandb

        from suite.results import write_json

        run_id = summary_run_id(sweep_name)
        run = starter.start(project=project, entity=entity, group=sweep_name,
                            job_type="summary", name=run_id, id=run_id)
        if starter.notice:
            LOG.warning(redact(starter.notice))
        table_keys, image_keys = _log_summary_row(wandb, run, tables, images)
        present = [Path(f) for f in files if Path(f).is_file()]
        if present:
            artifact = wandb.Artifact(sanitize_id(f"{sweep_name}-results"), type="results")
            for path in present:
                artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact)
        run.finish()
        if starter.mode == "offline":
            supersede(offline_dirs(Path(out_dir), run_id), keep=Path(run.dir).parent)
        write_json({"run_id": run_id, "project": project, "entity": entity, "group": sweep_name,
                    "mode": starter.mode, "tables": table_keys, "images": image_keys},
                   Path(out_dir) / "wandb" / SUMMARY_MANIFEST)
    except Exception as exc:  # noqa: BLE001 - W&B must never fail the sweep
        LOG.warning(f"W&B summary run not logged ({short_error(exc)})")
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - already reported once
                pass
