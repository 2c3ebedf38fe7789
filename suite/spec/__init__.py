"""Sweep files: one YAML file describes a Ray Tune sweep of OCF-B runs, checked before it runs.

`load_sweep` reads the file, applies the command line's overrides and checks everything at once:
unknown keys at any level, types, ranges, and every value the search can produce (each grid or
choice value and both ends of every range are built into a `RunConfig`, so a sweep fails with the
same rules as `ocfb-suite train`, but before Ray starts). All problems are reported together, one
per line, as `FILE: key.path: what is wrong`.

The package, one concept per module, each importing only those above it (no cycles):
- `vocabulary`: the file's words (blocks, search dimensions, keys derived from RunConfig, metric
  names, the tune-then-confirm block, the baselines' default search spaces) and its one error
  format (SpecError, problem lines).
- `search_space`: the searched space: its axes, per-model sub-spaces, every combination of its
  values and RunConfig's verdict on them (invalid combinations, wasted keys, duplicate runs),
  grid points, and Ray's param_space (the only module that imports Ray, lazily; it names
  `SweepSpec` for type checking only).
- `rules`: every other rule (one block, across blocks, tune-then-confirm) as problem lines.
- `schema`: `SweepSpec` (its validators call `rules`) and what it runs; reading it from YAML
  (`load_sweep`, `SweepSpec.from_yaml`).

Importing this package imports neither Ray nor torch.
"""

from suite.spec.schema import SweepSpec, load_sweep
from suite.spec.search_space import param_space
from suite.spec.vocabulary import (
    BUDGET_COLUMN,
    FIXED_KEYS,
    FLOAT_KEYS,
    GRID_POINT,
    INT_KEYS,
    LOWER_IS_BETTER,
    PIVOT_KEYS,
    SEARCHABLE,
    STAGE_COLUMN,
    ChoiceDim,
    GridDim,
    IntDim,
    LogUniformDim,
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SearchDim,
    SpecError,
    TunePerModelConfig,
    UniformDim,
    WandbConfig,
    layers_to_str,
    parse_layers,
    produced_metrics,
)

__all__ = [
    "BUDGET_COLUMN", "FIXED_KEYS", "FLOAT_KEYS", "GRID_POINT", "INT_KEYS", "LOWER_IS_BETTER",
    "PIVOT_KEYS", "SEARCHABLE", "STAGE_COLUMN", "ChoiceDim", "GridDim", "IntDim",
    "LogUniformDim", "ObjectiveConfig", "ResourcesConfig", "SchedulerConfig", "SearchConfig",
    "SearchDim", "SpecError", "SweepSpec", "TunePerModelConfig", "UniformDim", "WandbConfig",
    "layers_to_str", "load_sweep", "param_space", "parse_layers", "produced_metrics",
]
