"""Which run parameters a sweep may fix or search, derived from `RunConfig` itself.

Adding a field to `ocfb.config.RunConfig` makes it a fixed and searchable key here, with its
type deciding the range kinds it takes (uniform / loguniform for floats, int for integers):
no list in this package needs editing. Also the metric names a protocol's records carry (from
`ocfb.names`) and how `layers` travels through Ray.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from ocfb.config import RunConfig
from ocfb.names import K_VALUES, LOOP_METRICS, REPORT_KEYS

# RunConfig keys a sweep sets elsewhere: data and protocol at the top level, seed in `seeds`.
NOT_FIXED = ("data", "protocol", "seed")
FIXED_KEYS = tuple(k for k in RunConfig.model_fields if k not in NOT_FIXED)
# Not hyperparameters: where a trial runs, what it selects on (the sweep's objective sets it)
# and when full ranking runs (the objective check depends on it).
NOT_SEARCHABLE = ("data", "seed", "device", "select_metric", "full_ranking")
SEARCHABLE = tuple(k for k in RunConfig.model_fields if k not in NOT_SEARCHABLE)
PIVOT_KEYS = tuple(k for k in RunConfig.model_fields if k != "data")


def _members(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation))
    return {annotation}


# Continuous ranges only make sense for float parameters, integer ranges for int parameters:
# a uniform draw of 3.7 for mf_dim would only fail once the trial starts.
FLOAT_KEYS = tuple(k for k in SEARCHABLE if float in _members(RunConfig.model_fields[k].annotation))
INT_KEYS = tuple(k for k in SEARCHABLE if int in _members(RunConfig.model_fields[k].annotation))
# Metrics where lower is better (an objective on one of them defaults to mode min).
LOWER_IS_BETTER = LOOP_METRICS


def produced_metrics(protocol: str, *, full_ranking: bool = True) -> tuple[str, ...]:
    """Names of the metrics every per-term record of `protocol` carries (objective candidates).

    paper: the classification report on the validation and test parts; holdout: HR / NDCG at
    K (sampled, and full ranking when it runs), AUC and precision / recall / F1 at 0.5.
    """
    if protocol == "paper":
        return LOOP_METRICS + tuple(f"{p}{k}" for p in ("val_", "test_") for k in REPORT_KEYS)
    names: list[str] = []
    kinds = ("hr", "ndcg") + (("full_hr", "full_ndcg") if full_ranking else ())
    for p in ("val_", "test_"):
        names += [f"{p}{kind}@{k}" for kind in kinds for k in K_VALUES]
        names += [f"{p}auc", f"{p}precision", f"{p}recall", f"{p}f1"]
    return LOOP_METRICS + tuple(names)


def layers_to_str(v: Any) -> Any:
    """`[32, 16, 8]` -> "32,16,8" (how layers travel through Ray and the results tables)."""
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return v


def parse_layers(v: Any) -> Any:
    """"32,16,8" -> [32, 16, 8]; anything else is returned for RunConfig to judge."""
    if isinstance(v, str):
        try:
            return [int(x) for x in v.split(",") if x.strip()]
        except ValueError:
            return v
    return v
