"""Sweep files: one YAML file describes a Ray Tune sweep of OCF-B runs, checked before it runs.

`load_sweep` reads the file, applies the command line's overrides and checks everything at once:
unknown keys at any level, types, ranges, and every value the search can produce (each grid or
choice value and both ends of every range are built into a `RunConfig`, so a sweep fails with the
same rules as `ocfb-suite train`, but before Ray starts). All problems are reported together, one
per line, as `FILE: key.path: what is wrong`.

The package, one concept per module, each importing only those above it (no cycles):
- `errors`: SpecError and the one problem format.
- `vocabulary`: the file's blocks, search dimensions and keys (derived from RunConfig), metric
  names, the tune-then-confirm block and the baselines' default search spaces.
- `combos`: RunConfig's verdict on values, per-model sub-spaces, grid points, duplicates.
- `rules`: every rule (one block, across blocks, tune-then-confirm) as problem lines.
- `schema`: `SweepSpec` (its validators call `rules`) and what it runs; `validate`.
- `loader`: YAML and `load_sweep`.
- `search_space`: Ray's param_space, the only module that imports Ray (lazily).

Importing this package imports neither Ray nor torch.
"""

from suite.spec.errors import SpecError
from suite.spec.loader import load_sweep
from suite.spec.schema import SweepSpec
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
