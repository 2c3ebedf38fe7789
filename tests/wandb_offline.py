"""Test helpers: read W&B offline runs back with W&B's own reader (`wandb leet inspect --json`).

`wandb leet inspect` is a debug command, so only the tests use it: the suite itself never reads
W&B's files (a resumed trial's rows come from terms.parquet).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode(value: Any) -> Any:
    """JSON values as wandb wrote them, with its non-finite float strings turned back to floats."""
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass
class OfflineRun:
    """What an offline run's transaction log holds, as read by `wandb leet inspect --json`."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # logged keys, "_..." dropped
    raw_history: list[dict[str, Any]] = field(default_factory=list)  # every key, as written
    exit_code: int | None = None  # None: the run never finished
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # name, type, files
    files: list[str] = field(default_factory=list)  # paths under the run's files/ folder


def inspect_records(run_path: Path) -> list[dict[str, Any]]:
    """Every record of a run's .wandb log: `wandb leet inspect --json` (one JSON per line)."""
    proc = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {run_path} failed: {proc.stderr.strip()}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Parse one offline run folder (or its .wandb file) with W&B's own reader."""
    run = OfflineRun(path=Path(run_dir))
    for rec in inspect_records(Path(run_dir)):
        kind = rec.get("type")
        body = rec.get(kind) or {}
        if kind == "run":
            run.run_id = body.get("run_id", "")
            run.name = body.get("display_name", "")
            run.group = body.get("run_group", "")
            run.job_type = body.get("job_type", "")
            run.project = body.get("project", "")
            run.tags = list(body.get("tags", []))
            run.config.update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            run.config.update(body.get("update", {}))
            for key in body.get("remove", []) or []:
                run.config.pop(key, None)
        elif kind == "history":
            item = _decode(body.get("item", {}))
            run.raw_history.append(item)
            run.history.append({k: v for k, v in item.items() if not k.startswith("_")})
        elif kind == "exit":
            run.exit_code = int(body.get("exit_code", 0))
        elif kind == "files":
            run.files += [f["path"] for f in body.get("files", []) if "path" in f]
        elif kind == "artifact":
            contents = body.get("manifest", {}).get("contents", [])
            run.artifacts.append({"name": body.get("name"), "type": body.get("type"),
                                  "files": [c.get("path") for c in contents]})
    run.config.pop("_wandb", None)
    run.config = _decode(run.config)
    return run


def offline_run_dirs(out_dir: Path) -> list[Path]:
    """The sweep's offline run folders that `wandb sync DIR/wandb/offline-run-*` would upload."""
    return sorted(p for p in (Path(out_dir) / "wandb").glob("offline-run-*") if p.is_dir())


def read_table(run: OfflineRun, key: str) -> pd.DataFrame:
    """A wandb.Table logged under key in an offline run, read back from its files/ folder."""

    path = next(r[f"{key}.path"] for r in reversed(run.raw_history) if f"{key}.path" in r)
    with open(run.path / "files" / path) as f:
        payload = json.loads(f.read())  # the table JSON spells missing floats NaN
    return pd.DataFrame(payload["data"], columns=payload["columns"])
