"""The rules of one block of a sweep file, each returning problem lines that name their key path.

`model.SweepSpec`'s field validators call these; a value is judged by `RunConfig` itself
wherever it becomes a run parameter, so a sweep fails with the same rules as `ocfb-suite train`,
but before Ray starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ocfb.config import MAX_SEED, RunConfig
from ocfb.names import MODELS, PROTOCOLS, default_objective, is_test_metric
from suite.spec.dims import DIM_CLASSES, DIM_KINDS, Dim
from suite.spec.errors import got, hint, join, pydantic_lines, short
from suite.spec.keys import (
    FIXED_KEYS,
    FLOAT_KEYS,
    INT_KEYS,
    LOWER_IS_BETTER,
    SEARCHABLE,
    produced_metrics,
)

Lines = list[str]


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


def check_seeds(seeds: Any, path: str = "seeds") -> Lines:
    """A non-empty list of distinct integers in [0, 2**63 - 1] (what numpy and torch accept)."""
    if (not isinstance(seeds, list) or not seeds
            or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds)):
        return [f"{path}: expected a non-empty list of distinct integers in [0, {MAX_SEED}], "
                f"e.g. [0, 1, 2] (got {short(seeds)})"]
    out: Lines = []
    for i, s in enumerate(seeds):
        for _loc, msg, inp in run_errors({"seed": s}):
            out.append(f"{path}[{i}]: {got(msg, inp)}")
        if s in seeds[:i]:
            out.append(f"{path}[{i}]: duplicate seed {s} (seeds must be distinct)")
    return out


def check_run_params(value: Any, path: str, base: dict[str, Any]) -> Lines:
    """A mapping of RunConfig overrides (`fixed`, `smoke`), key by key, over `base`."""
    if not isinstance(value, dict):
        return [f"{path}: expected a mapping of run parameters (got {short(value)})"]
    out: Lines = []
    for k in value:
        if k == "seed":
            out.append(f"{path}.seed: seeds are their own axis: list them in the top-level "
                       "`seeds` key")
        elif k in ("data", "protocol"):
            out.append(f"{path}.{k}: set {k} with the top-level `{k}` key")
        elif k not in FIXED_KEYS:
            out.append(f"{path}.{k}: unknown run parameter{hint(k, FIXED_KEYS)}; "
                       f"allowed keys: {', '.join(FIXED_KEYS)}")
    if out:
        return out
    for loc, msg, inp in run_errors({**base, **value}):
        if loc and loc[0] in value:
            out.append(f"{join(path, loc)}: {got(msg, inp)}")
    return out


def _dim_kind_problem(path: str, key: str, kind: str) -> str | None:
    """Continuous ranges for float keys only, integer ranges for integer keys only."""
    if kind in ("uniform", "loguniform") and key not in FLOAT_KEYS:
        return (f"{path}.{kind}: {key} is not a float parameter; use grid, choice"
                + (" or int" if key in INT_KEYS else "")
                + f" (continuous ranges fit: {', '.join(FLOAT_KEYS)})")
    if kind == "int" and key not in INT_KEYS:
        return (f"{path}.int: {key} is not an integer parameter; use grid or choice"
                + (", uniform or loguniform" if key in FLOAT_KEYS else "")
                + f" (integer ranges fit: {', '.join(INT_KEYS)})")
    return None


def parse_dim(key: str, spec: Any, path: str, algorithm: str | None) -> tuple[Dim | None, Lines]:
    """One `key: {kind: values}` entry: its kind, its values' shape, and the search it needs."""
    kinds = ", ".join(DIM_KINDS)
    if not isinstance(spec, dict) or len(spec) != 1:
        shown = f"keys {', '.join(map(str, spec))}" if isinstance(spec, dict) else short(spec)
        return None, [f"{path}: expected a one-key mapping like {{grid: [v1, v2]}} with one of "
                      f"{kinds} (got {shown})"]
    kind = next(iter(spec))
    if kind not in DIM_CLASSES:
        return None, [f"{path}.{kind}: unknown dimension kind{hint(kind, DIM_KINDS)}; "
                      f"allowed: {kinds}"]
    problem = _dim_kind_problem(path, key, kind)
    if problem:
        return None, [problem]
    cls = DIM_CLASSES[kind]
    try:
        dim = cls.model_validate(spec)
    except ValidationError as err:
        return None, pydantic_lines(err, path, cls)
    out: Lines = []
    if algorithm == "grid" and kind != "grid":
        out.append(f"{path}.{kind}: {kind} dims need search.algorithm random or optuna "
                   "(algorithm grid enumerates grid dims only)")
    if not dim.discrete:
        lo, hi = dim.candidates()
        if lo >= hi:
            out.append(f"{path}.{kind}: lo must be < hi (got [{lo}, {hi}])")
        if kind == "loguniform" and lo <= 0:
            out.append(f"{path}.loguniform[0]: must be > 0 for a log-uniform range (got {lo})")
    return dim, out


def check_dim_values(key: str, dim: Dim, path: str, base: dict[str, Any]) -> Lines:
    """Every value (or range end) of a dim as RunConfig judges it alone; duplicate values."""
    out: Lines = []
    seen: list[Any] = []
    for i, v in enumerate(dim.candidates()):
        errs = [e for e in run_errors({**base, key: v}) if e[0] and e[0][0] == key]
        for loc, msg, inp in errs:
            out.append(f"{join(f'{path}.{dim.kind}[{i}]', loc[1:])}: {got(msg, inp)}")
        if not errs and dim.discrete:
            try:  # compare values as RunConfig stores them (4 == 4.0, [8] == (8,))
                norm = getattr(RunConfig.model_validate({**base, key: v}), key)
            except ValidationError:  # a cross-field rule: judged over combinations later
                norm = v
            if norm in seen:
                out.append(f"{path}.{dim.kind}[{i}]: duplicate of {dim.kind}[{seen.index(norm)}] "
                           f"({short(v)})")
            seen.append(norm)
    return out


def check_space(
    value: Any, path: str, fixed: dict[str, Any], base: dict[str, Any], algorithm: str | None,
) -> tuple[dict[str, Dim], Lines]:
    """A search space (`space`, or one model's `per_model.<model>`): searchable keys, one dim
    kind each, and every value it yields."""
    if not isinstance(value, dict):
        return {}, [f"{path}: expected a mapping of searchable keys to dims like "
                    f"{{grid: [...]}} (got {short(value)})"]
    out: dict[str, Dim] = {}
    lines: Lines = []
    for key, spec in value.items():
        where = f"{path}.{key}"
        if key == "seed":
            lines.append(f"{where}: seeds are their own axis: list them in the top-level "
                         "`seeds` key, not in space")
        elif key not in SEARCHABLE:
            fix = " (put constant values under `fixed`)" if key in RunConfig.model_fields else ""
            lines.append(f"{where}: not a searchable key{fix or hint(key, SEARCHABLE)}; "
                         f"searchable keys: {', '.join(SEARCHABLE)}")
        elif key in fixed and path == "space":
            lines.append(f"{where}: also set in fixed.{key}; a key is either fixed or searched")
        else:
            dim, problems = parse_dim(key, spec, where, algorithm)
            if dim is not None:
                problems += check_dim_values(key, dim, where, base)
                out[key] = dim
            lines += problems
    return out, lines


def model_axis(space: dict[str, Dim], fixed: dict[str, Any]) -> list[str]:
    """The models a sweep runs: the model dim's values, else the fixed (or default) model."""
    if "model" in space:
        return [str(v) for v in space["model"].candidates()]
    return [str(fixed.get("model", RunConfig.model_fields["model"].default))]


def check_per_model(
    value: Any, space: dict[str, Dim], fixed: dict[str, Any], base: dict[str, Any],
    algorithm: str | None,
) -> tuple[dict[str, dict[str, Dim]], Lines]:
    """Per-model sub-spaces: models of the sweep's model axis, keys that apply to that model
    and are not searched at the top level (a per-model value overrides `fixed` for it)."""
    if not value:
        return {}, []
    if not isinstance(value, dict):
        return {}, [f"per_model: expected a mapping of model names to sub-spaces like "
                    f"{{gmf: {{mf_dim: {{grid: [4, 8]}}}}}} (got {short(value)})"]
    lines: Lines = []
    if algorithm == "optuna":
        lines.append("per_model: needs search.algorithm grid or random (Optuna's flat space "
                     "cannot make a key depend on the model)")
    model_dim = space.get("model")
    if model_dim is not None and model_dim.kind != "grid":
        lines.append(f"per_model: needs space.model as a grid (got {model_dim.kind}): each model "
                     "is crossed with its own sub-space")
    models = model_axis(space, fixed)
    out: dict[str, dict[str, Dim]] = {}
    for m, sub in value.items():
        path = f"per_model.{m}"
        if m not in models:
            where = "space.model" if "model" in space else "fixed.model"
            near = "" if m in MODELS else hint(m, MODELS)
            lines.append(f"{path}: {m!r} is not a model of this sweep{near}; "
                         f"{where} has: {', '.join(models)}")
            continue
        mbase = {**base, "model": m}
        dims, problems = check_space(sub, path, fixed, mbase, algorithm)
        lines += problems
        try:
            unused = RunConfig.model_validate(mbase).inapplicable_keys()
        except ValidationError:
            unused = {}
        for key in dims:
            if key in space:
                lines.append(f"{path}.{key}: also searched in space.{key}; search a key in "
                             "one place")
            elif key == "model":
                lines.append(f"{path}.model: the model is the sub-space's name")
            elif key in unused:
                lines.append(f"{path}.{key}: {unused[key]}; searching it repeats runs")
        out[m] = dims
    return out, lines


def objective_defaults(raw: Any, protocols: list[str]) -> Any:
    """The objective block with its defaults: the protocol's validation metric (val_auc, which
    both protocols produce, when protocol is searched), mode min for loss-like metrics."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return raw
    obj = dict(raw)
    if "metric" not in obj and protocols:
        obj["metric"] = default_objective(protocols[0]) if len(protocols) == 1 else "val_auc"
    if isinstance(obj.get("metric"), str) and obj["metric"] in LOWER_IS_BETTER:
        obj.setdefault("mode", "min")
    return obj


def check_objective(metric: Any, protocols: list[str], full_ranking: str) -> Lines:
    """Selection happens on validation (or a loop metric), never on test; the metric must be
    produced by every protocol of the sweep, at every term (full ranking: schedule `every`)."""
    if not isinstance(metric, str) or not protocols:
        return []
    names = " and ".join(repr(p) for p in protocols)
    produced = [m for m in produced_metrics(protocols[0])
                if all(m in produced_metrics(p) for p in protocols)]
    allowed = [m for m in produced if not is_test_metric(m)]
    if full_ranking != "every":
        allowed = [m for m in allowed if "_full_" not in m]
    if is_test_metric(metric):
        return [f"objective.metric: {metric!r} is a test metric; under protocol {names} model "
                f"selection uses validation (e.g. {metric.replace('test_', 'val_', 1)!r}) and "
                f"test is only reported at the selected term; allowed: {', '.join(allowed)}"]
    if "_full_" in metric and metric in produced:
        if full_ranking != "every":
            return [f"objective.metric: {metric!r} needs fixed.full_ranking: every (with "
                    f"full_ranking {full_ranking!r} full ranking runs only at some terms, so "
                    f"there is nothing to compare term by term); select on "
                    f"{metric.replace('_full_', '_')!r} or set full_ranking: every"]
        return []
    if metric not in allowed:
        return [f"objective.metric: {metric!r} is not produced by protocol {names}"
                f"{hint(metric, allowed)}; allowed: {', '.join(allowed)}"]
    return []


def protocol_axis(protocol: Any, space: dict[str, Dim]) -> list[str]:
    """The protocols a sweep runs: the searched ones, else the top-level one."""
    dim = space.get("protocol")
    if dim is not None:
        return [p for p in dim.candidates() if p in PROTOCOLS] or [str(protocol)]
    return [protocol] if protocol in PROTOCOLS else []
