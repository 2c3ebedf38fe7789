"""Ray Tune's param_space of a sweep: the only module of the package that imports Ray (lazily),
and the only one that knows Tune's samplers.

Plain spaces map dim by dim: grid -> tune.grid_search (tune.choice under optuna, which cannot
take grid_search), choice -> tune.choice, uniform / loguniform -> tune.uniform /
tune.loguniform, int [lo, hi] -> tune.randint(lo, hi + 1), seeds -> grid_search.

Conditional spaces (`per_model`) and dropped duplicates cannot be a product of independent
grids, so the grid is enumerated here instead: one `tune.grid_search` over explicit grid points
under the key `GRID_POINT` (each point a dict of the grid values, plus samplers for the point's
own range dims; Ray resolves samplers nested in a chosen dict). `SweepSpec.run_config` flattens
the point back into ordinary keys, so results, W&B and summaries never see it.
"""

from __future__ import annotations

from typing import Any

from suite.spec.schema import SweepSpec
from suite.spec.vocabulary import GRID_POINT, Dim, layers_to_str


def _sampler(key: str, dim: Dim, optuna: bool) -> Any:
    from ray import tune  # lazy: validating a sweep must not start or import Ray

    vals = [layers_to_str(v) if key == "layers" else v for v in dim.candidates()]
    if dim.kind == "grid":
        return tune.choice(vals) if optuna else tune.grid_search(vals)
    if dim.kind == "choice":
        return tune.choice(vals)
    if dim.kind == "uniform":
        return tune.uniform(*vals)
    if dim.kind == "loguniform":
        return tune.loguniform(*vals)
    return tune.randint(vals[0], vals[1] + 1)


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Ray Tune's param_space: the search dims and the seed axis (fixed keys stay out).

    Under optuna the seeds are not searched: a Repeater runs every proposed configuration once
    per seed and `run_config` maps the repeat index to the seed.
    """
    from ray import tune

    optuna = spec.search.algorithm == "optuna"
    if spec.enumerates_grid():
        out = _enumerated(spec)
    else:
        out = {k: _sampler(k, d, optuna) for k, d in spec.space.items()}
    if not optuna:
        out["seed"] = tune.grid_search(list(spec.seeds))
    return out


def _enumerated(spec: SweepSpec) -> dict[str, Any]:
    """One grid_search over the distinct grid points; range dims of a model's sub-space ride
    inside its points, shared range dims stay at the top level."""
    from ray import tune

    per_model_keys = {k for sub in spec.per_model.values() for k in sub}
    out = {k: _sampler(k, d, False) for k, d in spec.space.items()
           if d.kind != "grid" and k not in per_model_keys}
    points = []
    for point in spec.grid_points():
        sub = spec.per_model.get(str(point.get("model", "")), {})
        own = {k: _sampler(k, d, False) for k, d in sub.items() if d.kind != "grid"}
        values = {k: layers_to_str(v) if k == "layers" else v for k, v in point.items()}
        points.append({**values, **own})
    out[GRID_POINT] = tune.grid_search(points)
    return out
