"""Combinations of a sweep's search values: RunConfig's verdict on values, the model axis,
sub-spaces per model, grid points, canonical configurations and duplicates.

A sweep crossing `mf_dim` with `model: [gmf, mlp]` runs MLP once per mf_dim, though MLP never
reads it: bit-identical pseudo-replicates that narrow every confidence interval. Here each grid
point becomes a `RunConfig`, its `canonical()` dict (only the keys that apply) identifies the
run, and points with equal canonical configs are duplicates: refused, naming them, or dropped
with `drop_duplicates` (first of each group kept, in grid order).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from ocfb.config import RunConfig
from suite.spec.vocabulary import Dim, GridDim

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


def model_axis(space: dict[str, Dim], fixed: dict[str, Any]) -> list[str]:
    """The models a sweep runs: the model dim's values, else the fixed (or default) model."""
    if "model" in space:
        return [str(v) for v in space["model"].candidates()]
    return [str(fixed.get("model", RunConfig.model_fields["model"].default))]


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


def combos(space: Space, *, discrete_only: bool, grid_only: bool = False) -> Iterator[dict]:
    """Every combination of the space's values (range dims: both ends, unless left out)."""
    keys = [k for k, d in space.items()
            if (not grid_only or d.kind == "grid") and (not discrete_only or d.discrete)]
    for values in itertools.product(*(space[k].candidates() for k in keys)):
        yield dict(zip(keys, values, strict=True))


def grid_points(spaces: list[Space]) -> list[dict[str, Any]]:
    """The grid points of every sub-space, in order (one dict of grid-dim values each)."""
    return [p for s in spaces for p in combos(s, discrete_only=True, grid_only=True)]


def n_grid_points(spaces: list[Space]) -> int:
    """How many grid points the sub-spaces hold (without enumerating them)."""
    total = 0
    for s in spaces:
        n = 1
        for d in s.values():
            if d.kind == "grid":
                n *= len(d.candidates())
        total += n
    return total


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
