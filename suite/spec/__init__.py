"""Sweep files: one YAML file describes a Ray Tune sweep of OCF-B runs, checked before it runs.

`load_sweep` reads the file, applies the command line's overrides and checks everything at once:
unknown keys at any level, types, ranges, and every value the search can produce (each grid or
choice value and both ends of every range are built into a `RunConfig`, so a sweep fails with the
same rules as `ocfb-suite train`, but before Ray starts). All problems are reported together, one
per line, as `FILE: key.path: what is wrong`.

The package, one concept per module:
- `model`: `SweepSpec` and its sections; pydantic validators carry every rule.
- `rules` / `checks`: the rules of one block / across blocks, as problem lines.
- `dims`: the search dimensions (grid, choice, uniform, loguniform, int).
- `combos`: per-model sub-spaces, grid points, canonical configs and duplicates.
- `keys`: which RunConfig keys may be fixed or searched (derived from RunConfig), metric names.
- `errors`: SpecError and the one error format; `loader`: YAML and `load_sweep`.
- `search_space`: Ray's param_space, the only module that imports Ray (lazily).

Importing this package imports neither Ray nor torch.
"""

from suite.spec.dims import ChoiceDim, GridDim, IntDim, LogUniformDim, SearchDim, UniformDim
from suite.spec.errors import SpecError
from suite.spec.keys import (
    FIXED_KEYS,
    FLOAT_KEYS,
    INT_KEYS,
    LOWER_IS_BETTER,
    PIVOT_KEYS,
    SEARCHABLE,
    layers_to_str,
    parse_layers,
    produced_metrics,
)
from suite.spec.loader import load_sweep
from suite.spec.model import (
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SweepSpec,
    WandbConfig,
)
from suite.spec.search_space import GRID_POINT

__all__ = [
    "FIXED_KEYS", "FLOAT_KEYS", "GRID_POINT", "INT_KEYS", "LOWER_IS_BETTER", "PIVOT_KEYS",
    "SEARCHABLE", "ChoiceDim", "GridDim", "IntDim", "LogUniformDim", "ObjectiveConfig",
    "ResourcesConfig", "SchedulerConfig", "SearchConfig", "SearchDim", "SpecError", "SweepSpec",
    "UniformDim", "WandbConfig", "layers_to_str", "load_sweep", "parse_layers",
    "produced_metrics",
]
