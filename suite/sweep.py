"""Run, resume and record Ray Tune sweeps of OCF-B: where each part lives.

- `suite.results`: the results schema, the results writer and the one atomic file writer;
- `suite.preflight`: the checks that run before Ray starts (exit 2);
- `suite.lock`: one driver per output folder;
- `suite.tuner`: Ray start-up, the Tuner (new or restored) and the results callback;
- `suite.commands`: `sweep`, `resume` and `summarize`.

This module only re-exports the names other modules and tests import from here, and stays
free of Ray at import time.
"""

from __future__ import annotations

from suite.commands import (
    archive_previous,
    cmd_resume,
    cmd_summarize,
    cmd_sweep,
    register_cli,
    run_sweep,
    spec_from_json,
)
from suite.preflight import absolute_data_path
from suite.results import ResultsWriter, config_columns, flat_config, record_of

__all__ = [
    "ResultsWriter", "absolute_data_path", "archive_previous", "cmd_resume", "cmd_summarize",
    "cmd_sweep", "config_columns", "flat_config", "init_ray", "record_of", "register_cli",
    "run_sweep", "spec_from_json",
]


def init_ray(address: str | None = None) -> bool:
    """Start (or join) Ray; see `suite.tuner.init_ray` (imported lazily: it imports Ray)."""
    from suite.tuner import init_ray as _init_ray

    return _init_ray(address)
