"""The searched space: its axes and sub-spaces, every combination of its values, and Ray Tune's
param_space.

Axes and sub-spaces: the models, protocols and term counts a sweep runs, where a key is
searched, the search space of each model (the baselines' defaults added under tune-then-confirm).

Combinations: RunConfig's verdict on values and on every combination of them (invalid ones
blamed on their smallest culprit, searched keys no run reads), grid points, canonical
configurations and duplicates. A sweep crossing `mf_dim` with `model: [gmf, mlp]` runs
MLP once per mf_dim, though MLP never reads it: bit-identical pseudo-replicates that narrow every
confidence interval. Here each grid point becomes a `RunConfig`, its `canonical()` dict (only the
keys that apply) identifies the run, and points with equal canonical configs are duplicates:
refused, naming them, or dropped with `drop_duplicates` (first of each group kept, in grid order).

Ray's param_space: the only module of the package that imports Ray (lazily, so validating a
sweep never does), and the only one that knows Tune's samplers. Plain spaces map dim by dim:
grid -> tune.grid_search (tune.choice under optuna, which cannot take grid_search), choice ->
tune.choice, uniform / loguniform -> tune.uniform / tune.loguniform, int [lo, hi] ->
tune.randint(lo, hi + 1), seeds -> grid_search. Conditional spaces (`per_model`) and dropped
duplicates cannot be a product of independent grids, so the grid is enumerated instead: one
`tune.grid_search` over explicit grid points under the key `GRID_POINT` (each point a dict of
the grid values, plus samplers for the point's own range dims; Ray resolves samplers nested in a
chosen dict). `SweepSpec.run_config` flattens the point back into ordinary keys, so results,
W&B and summaries never see it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ocfb.config import RunConfig
from ocfb.names import PROTOCOLS
from suite.spec.vocabulary import BASELINE_SPACES, GRID_POINT, Dim, GridDim, layers_to_str

if TYPE_CHECKING:  # the spec is built from this module's functions; only its type is named here
    from suite.spec.schema import SweepSpec

Space = dict[str, Dim]
# Checking every combination of the search values against RunConfig's cross-field rules is
# cheap (tens of microseconds each); beyond this many combinations only a prefix is checked.
MAX_COMBOS = 5000
# Grid points enumerated for the duplicate check (paper.yaml's old cross had 384); beyond this,
# duplicates are not looked for (the check would cost seconds before every sweep).
MAX_POINTS = 50_000


def run_errors(values: dict[str, Any]) -> list[tuple[tuple[Any, ...], str, Any]]:
    """RunConfig's verdict on `values` as (loc, msg, input) triples; loc () is a cross-field
    rule. A union's per-member errors (e.g. negatives as int or str) become one line."""
    try:
        RunConfig.model_validate(values)
    except ValidationError as err:
        merged: dict[tuple[Any, ...], tuple[list[str], Any]] = {}
        for e in err.errors(include_url=False):
            # keep the field and list indices; drop union member tags like ('negatives', 'int')
            loc = tuple(p for i, p in enumerate(e["loc"]) if i == 0 or isinstance(p, int))
            msgs, _ = merged.setdefault(loc, ([], e["input"]))
            msg = e["msg"].removeprefix("Value error, ")
            if msg not in msgs:
                msgs.append(msg)
        return [(loc, " or ".join(m), inp) for loc, (m, inp) in merged.items()]
    return []


# -- axes and sub-spaces --------------------------------------------------------------------------


def model_axis(space: dict[str, Dim], fixed: dict[str, Any]) -> list[str]:
    """The models a sweep runs: the model dim's values, else the fixed (or default) model."""
    if "model" in space:
        return [str(v) for v in space["model"].candidates()]
    return [str(fixed.get("model", RunConfig.model_fields["model"].default))]


def protocol_axis(protocol: Any, space: dict[str, Dim]) -> list[str]:
    """The protocols a sweep runs: the searched ones, else the top-level one."""
    dim = space.get("protocol")
    if dim is not None:
        return [p for p in dim.candidates() if p in PROTOCOLS] or [str(protocol)]
    return [protocol] if protocol in PROTOCOLS else []


def terms_values(fixed: dict[str, Any], spaces: list[Space]) -> list[int]:
    """Every term count the sweep can run (RunConfig's default when terms is not set)."""
    out = [int(v) for s in spaces if "terms" in s for v in s["terms"].candidates()]
    if not out or any("terms" not in s for s in spaces):
        out.append(int(fixed.get("terms", RunConfig.model_fields["terms"].default)))
    return out


def dims_of(key: str, space: dict[str, Dim], per_model: dict[str, dict[str, Dim]]) -> list[
        tuple[str, Dim]]:
    """(path, dim) of every place a key is searched: the shared space and each sub-space."""
    out = [(f"space.{key}", space[key])] if key in space else []
    out += [(f"per_model.{m}.{key}", sub[key]) for m, sub in per_model.items() if key in sub]
    return out


def sub_spaces(space: Space, per_model: dict[str, Space], fixed: dict[str, Any]) -> list[Space]:
    """The search space of each model: the shared dims, the model pinned, its own dims.

    Without per-model sub-spaces this is the one space as written.
    """
    if not per_model:
        return [space]
    shared = {k: d for k, d in space.items() if k != "model"}
    out = []
    for m in model_axis(space, fixed):
        pinned: Space = {"model": GridDim(grid=[m])} if "model" in space else {}
        out.append({**pinned, **shared, **per_model.get(m, {})})
    return out


def with_baseline_spaces(raw: Any) -> Any:
    """The raw sweep mapping with `BASELINE_SPACES` for EASE / ALS on the model axis that have
    no `per_model` entry (only when `tune_per_model` is given)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tune_per_model"), dict):
        return raw
    space, fixed = raw.get("space"), raw.get("fixed")
    models: list[Any] = []
    if isinstance(space, dict) and isinstance(space.get("model"), dict):
        models = list(space["model"].get("grid") or [])
    elif isinstance(fixed, dict):
        models = [fixed.get("model")]
    per_model = raw.get("per_model") or {}
    if not isinstance(per_model, dict):
        return raw
    added = {m: BASELINE_SPACES[m] for m in models
             if isinstance(m, str) and m in BASELINE_SPACES and m not in per_model}
    return {**raw, "per_model": {**per_model, **added}} if added else raw


# -- combinations, grid points, duplicates --------------------------------------------------------


def combos(space: Space, *, discrete_only: bool, grid_only: bool = False) -> Iterator[dict]:
    """Every combination of the space's values (range dims: both ends, unless left out)."""
    keys = [k for k, d in space.items()
            if (not grid_only or d.kind == "grid") and (not discrete_only or d.discrete)]
    for values in itertools.product(*(space[k].candidates() for k in keys)):
        yield dict(zip(keys, values, strict=True))


def grid_points(spaces: list[Space]) -> list[dict[str, Any]]:
    """The grid points of every sub-space, in order (one dict of grid-dim values each)."""
    return [p for s in spaces for p in combos(s, discrete_only=True, grid_only=True)]


def n_combos(space: Space, *, grid_only: bool = False) -> int:
    """How many combinations `combos(space, discrete_only=False, grid_only=...)` yields, without
    enumerating them (a product of the candidate counts)."""
    return math.prod(len(d.candidates()) for d in space.values()
                     if not grid_only or d.kind == "grid")


def n_grid_points(spaces: list[Space]) -> int:
    """How many grid points the sub-spaces hold (without enumerating them)."""
    return sum(n_combos(s, grid_only=True) for s in spaces)


def canonical_key(values: dict[str, Any]) -> str | None:
    """The identity of a run (its canonical config as JSON, seed left out); None if invalid."""
    try:
        cfg = RunConfig.model_validate(values)
    except ValidationError:
        return None
    out = cfg.canonical()
    out.pop("seed", None)
    out.get("data", {}).pop("data_seed", None)  # follows the seed unless fixed
    return json.dumps(out, sort_keys=True, default=str)


def duplicate_groups(
    base: dict[str, Any], points: list[dict[str, Any]]
) -> list[list[int]]:
    """Indices of grid points that are the same run, one list per group of two or more."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        key = canonical_key({**base, **p})
        if key is not None:
            groups.setdefault(key, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _show(values: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={values[k]}" for k in keys)


def describe_duplicates(
    base: dict[str, Any], points: list[dict[str, Any]], groups: list[list[int]], limit: int = 3
) -> list[str]:
    """Problem lines naming the duplicates: which values are the same run, and why."""
    n_dup = sum(len(g) - 1 for g in groups)
    lines = [f"space: {n_dup} of {len(points)} grid points repeat another run, because a key "
             "that differs does not apply to them; use per-model sub-spaces (per_model:) or "
             "drop_duplicates: true (--drop-duplicates) to run each once"]
    for g in groups[:limit]:
        a, b = points[g[0]], points[g[1]]
        same = [k for k in a if k in b and a[k] == b[k]]
        diff = [k for k in a if k not in same]
        cfg = RunConfig.model_validate({**base, **a})
        reasons = cfg.inapplicable_keys()
        why = "; ".join(dict.fromkeys(reasons.get(k, f"{k} does not apply") for k in diff))
        lines.append(f"space: {_show(a, same)}: {_show(a, diff)} and {_show(b, diff)} are the "
                     f"same run ({len(g)} such points): {why}")
    return lines


def duplicate_lines(base: dict[str, Any], spaces: list[Space], drop: bool) -> list[str]:
    """Grid points that are the same run: refused (naming them) unless `drop` is set."""
    if drop or n_grid_points(spaces) > MAX_POINTS:
        return []
    points = grid_points(spaces)
    groups = duplicate_groups(base, points)
    return describe_duplicates(base, points, groups) if groups else []


def combination_problems(
    base: dict[str, Any], fixed: dict[str, Any], space: Space, limit: int = 5
) -> tuple[list[str], set[str]]:
    """RunConfig's cross-field rules (e.g. threshold <= 1 for a probability error) over every
    combination of search values, each failure blamed on the smallest culprit found.

    Also returns the searched keys that apply to at least one valid combination."""
    base = {**base, **fixed}
    found: list[str] = []
    applied: set[str] = set()

    def root_error(values: dict[str, Any]) -> str | None:
        errs = [m for loc, m, _ in run_errors(values) if not loc]
        return errs[0] if errs else None

    for combo in itertools.islice(combos(space, discrete_only=False), MAX_COMBOS):
        values = {**base, **combo}
        msg = root_error(values)
        if msg is None:
            if len(applied) < len(combo):
                unused = RunConfig.model_validate(values).inapplicable_keys()
                applied |= {k for k in combo if k not in unused}
            continue
        line = _blame(base, fixed, space, combo, msg, root_error)
        if line not in found:
            found.append(line)
        if len(found) >= limit:
            break
    return found, applied


def _blame(base: dict, fixed: dict, space: Space, combo: dict, msg: str, root_error: Any) -> str:
    # blame single search values that fail on their own over the fixed settings ...
    blame = [f"space.{k}.{space[k].kind}[{space[k].candidates().index(v)}]"
             for k, v in combo.items() if root_error({**base, k: v}) is not None]
    if not blame:
        # ... else fixed keys whose removal (back to RunConfig's default) fixes it ...
        values = {**base, **combo}
        blame = [f"fixed.{k}" for k in fixed
                 if root_error({kk: vv for kk, vv in values.items() if kk != k}) is None]
        if blame and root_error(base) is None:
            blame = []  # the fixed value is fine alone: it is the combination
    if blame:
        return f"{' and '.join(blame)}: {msg}"
    together = ", ".join(f"{k}={v!r}" for k, v in combo.items())
    return f"space: the combination {together} is invalid: {msg}"


def combination_lines(
    base: dict[str, Any], fixed: dict[str, Any], spaces: list[Space], smoke: dict | None,
) -> list[str]:
    """RunConfig's cross-field rules over every combination (each sub-space), the same with the
    smoke overrides, and searched keys that apply to no run at all (issue 15: threshold with
    dns only)."""
    lines: list[str] = []
    applied: set[str] = set()
    total = 0
    for sub in spaces:
        found, app = combination_problems(base, fixed, sub)
        lines += [line for line in found if line not in lines]
        applied |= app
        total += n_combos(sub)
    if not lines and total <= MAX_COMBOS:
        lines += _wasted_keys(base, fixed, spaces, applied)
    if smoke is not None and not lines:
        for sub in spaces:
            kept = {k: d for k, d in sub.items() if k not in smoke}
            found, _ = combination_problems(base, {**fixed, **smoke}, kept, limit=1)
            lines += [f"smoke: with the smoke overrides, {p}" for p in found]
    return lines


def _wasted_keys(
    base: dict[str, Any], fixed: dict[str, Any], spaces: list[Space], applied: set[str]
) -> list[str]:
    """Searched keys that no run of the sweep reads: every value repeats the same runs."""
    out = []
    for key in dict.fromkeys(k for s in spaces for k in s):
        if key in applied or key == "model":
            continue
        sub = next(s for s in spaces if key in s)
        first = next(combos(sub, discrete_only=False))
        reason = RunConfig.model_validate({**base, **fixed, **first}).inapplicable_keys()
        why = reason.get(key, f"{key} does not apply")
        out.append(f"space.{key}: {why}, and no run of this sweep uses it; searching it only "
                   "repeats the same runs (drop it, or add a model / strategy that uses it)")
    return out


# -- Ray Tune's param_space -----------------------------------------------------------------------


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
