"""Rules across blocks of a sweep file: every combination of search values is a valid run, no
searched key is wasted, no two grid points are the same run, ASHA's grace period fits the
terms, a cuda device has a GPU share. Each returns problem lines naming their key path."""

from __future__ import annotations

from typing import Any

from ocfb.config import RunConfig
from suite.spec import combos as cb
from suite.spec.dims import Dim


def combination_lines(
    base: dict[str, Any], fixed: dict[str, Any], spaces: list[cb.Space], smoke: dict | None,
) -> list[str]:
    """RunConfig's cross-field rules over every combination (each sub-space), the same with the
    smoke overrides, and searched keys that apply to no run at all (issue 15: threshold with
    dns only)."""
    lines: list[str] = []
    applied: set[str] = set()
    total = 0
    for sub in spaces:
        found, app = cb.combination_problems(base, fixed, sub)
        lines += [line for line in found if line not in lines]
        applied |= app
        total += len(list(_bounded(sub)))
    if not lines and total <= cb.MAX_COMBOS:
        lines += _wasted_keys(base, fixed, spaces, applied)
    if smoke is not None and not lines:
        for sub in spaces:
            kept = {k: d for k, d in sub.items() if k not in smoke}
            found, _ = cb.combination_problems(base, {**fixed, **smoke}, kept, limit=1)
            lines += [f"smoke: with the smoke overrides, {p}" for p in found]
    return lines


def _bounded(space: cb.Space) -> Any:
    import itertools

    return itertools.islice(cb.combos(space, discrete_only=False), cb.MAX_COMBOS + 1)


def _wasted_keys(
    base: dict[str, Any], fixed: dict[str, Any], spaces: list[cb.Space], applied: set[str]
) -> list[str]:
    """Searched keys that no run of the sweep reads: every value repeats the same runs."""
    out = []
    for key in dict.fromkeys(k for s in spaces for k in s):
        if key in applied or key == "model":
            continue
        sub = next(s for s in spaces if key in s)
        first = next(cb.combos(sub, discrete_only=False))
        reason = RunConfig.model_validate({**base, **fixed, **first}).inapplicable_keys()
        why = reason.get(key, f"{key} does not apply")
        out.append(f"space.{key}: {why}, and no run of this sweep uses it; searching it only "
                   "repeats the same runs (drop it, or add a model / strategy that uses it)")
    return out


def duplicate_lines(base: dict[str, Any], spaces: list[cb.Space], drop: bool) -> list[str]:
    """Grid points that are the same run: refused (naming them) unless `drop` is set."""
    if drop or cb.n_grid_points(spaces) > cb.MAX_POINTS:
        return []
    points = cb.grid_points(spaces)
    groups = cb.duplicate_groups(base, points)
    return cb.describe_duplicates(base, points, groups) if groups else []


def terms_values(fixed: dict[str, Any], spaces: list[cb.Space]) -> list[int]:
    """Every term count the sweep can run (RunConfig's default when terms is not set)."""
    out = [int(v) for s in spaces if "terms" in s for v in s["terms"].candidates()]
    if not out or any("terms" not in s for s in spaces):
        out.append(int(fixed.get("terms", RunConfig.model_fields["terms"].default)))
    return out


def scheduler_lines(scheduler: Any, fixed: dict[str, Any], spaces: list[cb.Space]) -> list[str]:
    """ASHA counts terms, so its grace period must fit the largest term count."""
    if scheduler is None or scheduler.type != "asha":
        return []
    try:
        max_t = max(terms_values(fixed, spaces))
    except (TypeError, ValueError):
        return []
    if scheduler.grace_period > max_t:
        return [f"scheduler.grace_period: {scheduler.grace_period} exceeds terms={max_t}; ASHA "
                "counts terms, so grace_period must be <= the largest terms value"]
    return []


def device_lines(resources: Any, fixed: dict[str, Any]) -> list[str]:
    """Ray hides every GPU from a trial that reserved none, so cuda would fail inside it."""
    device = fixed.get("device", "cpu")
    if (resources is not None and resources.gpus == 0 and isinstance(device, str)
            and device.startswith("cuda")):
        return [f"fixed.device: {device!r} needs resources.gpus > 0 (a trial without a GPU "
                "share sees no GPU); use cpu or auto, or reserve e.g. gpus: 0.5"]
    return []


def dims_of(key: str, space: dict[str, Dim], per_model: dict[str, dict[str, Dim]]) -> list[
        tuple[str, Dim]]:
    """(path, dim) of every place a key is searched: the shared space and each sub-space."""
    out = [(f"space.{key}", space[key])] if key in space else []
    out += [(f"per_model.{m}.{key}", sub[key]) for m, sub in per_model.items() if key in sub]
    return out
