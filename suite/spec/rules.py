"""Every rule of a sweep file, each returning problem lines that name their key path: the
rules of one block, the rules across blocks (every combination of search values is a valid run,
no searched key is wasted, no two grid points are the same run: `search_space` finds those;
ASHA's grace period fits the terms, a cuda device has a GPU share) and those of
tune-then-confirm.

`schema.SweepSpec`'s validators call these (those of the last section take the fields validated
so far); a value is judged by `RunConfig` itself wherever it becomes a run parameter, so a sweep
fails with the same rules as `ocfb-suite train`, but before Ray starts.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ocfb.config import MAX_SEED, DataConfig, RunConfig
from ocfb.names import MODELS, default_objective, is_test_metric
from suite.spec.search_space import (
    Space,
    combination_lines,
    duplicate_lines,
    model_axis,
    protocol_axis,
    run_errors,
    sub_spaces,
    terms_values,
    with_baseline_spaces,
)
from suite.spec.vocabulary import (
    DIM_CLASSES,
    DIM_KINDS,
    FIXED_KEYS,
    FLOAT_KEYS,
    INT_KEYS,
    LOWER_IS_BETTER,
    PIVOT_KEYS,
    SEARCHABLE,
    STORAGE_SCHEMES,
    Dim,
    ObjectiveConfig,
    TunePerModelConfig,
    field_names,
    got,
    hint,
    join,
    produced_metrics,
    pydantic_lines,
    short,
)

Lines = list[str]


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


def parse_dim(key: str, raw: Any, path: str, algorithm: str | None) -> tuple[Dim | None, Lines]:
    """One `key: {kind: values}` entry: its kind, its values' shape, and the search it needs."""
    kinds = ", ".join(DIM_KINDS)
    if not isinstance(raw, dict) or len(raw) != 1:
        shown = f"keys {', '.join(map(str, raw))}" if isinstance(raw, dict) else short(raw)
        return None, [f"{path}: expected a one-key mapping like {{grid: [v1, v2]}} with one of "
                      f"{kinds} (got {shown})"]
    kind = next(iter(raw))
    if kind not in DIM_CLASSES:
        return None, [f"{path}.{kind}: unknown dimension kind{hint(kind, DIM_KINDS)}; "
                      f"allowed: {kinds}"]
    problem = _dim_kind_problem(path, key, kind)
    if problem:
        return None, [problem]
    cls = DIM_CLASSES[kind]
    try:
        dim = cls.model_validate(raw)
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


def common_metrics(protocols: list[str]) -> list[str]:
    """The metrics every protocol of the sweep records, in the first protocol's order."""
    if not protocols:
        return []
    return [m for m in produced_metrics(protocols[0])
            if all(m in produced_metrics(p) for p in protocols)]


def verdict_lines(metric: str | None, protocol: Any, space: dict[str, Any]) -> Lines:
    """Verdicts decide on a test metric (validation selects, test decides) that every protocol
    of the sweep records; None leaves the summary's default."""
    if metric is None:
        return []
    allowed = [m for m in common_metrics(protocol_axis(protocol, space)) if is_test_metric(m)]
    if metric in allowed:
        return []
    return [f"verdicts.metric: {metric!r} is not a test metric this sweep records; allowed: "
            f"{', '.join(allowed)}"]


def check_objective(metric: Any, protocols: list[str], full_ranking: str) -> Lines:
    """Selection happens on validation (or a loop metric), never on test; the metric must be
    produced by every protocol of the sweep, at every term (full ranking: schedule `every`)."""
    if not isinstance(metric, str) or not protocols:
        return []
    names = " and ".join(repr(p) for p in protocols)
    produced = common_metrics(protocols)
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


_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def check_storage(v: Any) -> Lines:
    """A local folder, or a URI of a scheme Ray can write checkpoints to."""
    if v is None:
        return []
    if not isinstance(v, str) or not v.strip():
        return [f"storage_path: must be a local folder or a URI like s3://bucket/dir "
                f"(got {short(v)})"]
    m = _URI.match(v)
    if m and m.group(1).lower() not in STORAGE_SCHEMES:
        return [f"storage_path: unsupported URI scheme {m.group(1)!r}; allowed: "
                f"{', '.join(STORAGE_SCHEMES)} or a local folder"]
    if m and m.group(1).lower() != "file" and not urlsplit(v).netloc:
        return [f"storage_path: {v!r} names no bucket or host; expected e.g. "
                f"{m.group(1)}://bucket/prefix"]
    return []


def check_pivots(v: Any) -> Lines:
    """Extra summary tables: pairs of two different run parameters."""
    if not isinstance(v, list):
        return [f"pivots: expected a list of [axis_a, axis_b] pairs (got {short(v)})"]
    lines = []
    for i, pair in enumerate(v):
        if not isinstance(pair, list) or len(pair) != 2 or not all(
                isinstance(a, str) for a in pair):
            lines.append(f"pivots[{i}]: expected a pair of run parameters like "
                         f"[threshold, terms] (got {short(pair)})")
            continue
        lines += [f"pivots[{i}][{j}]: {a!r} is not a run parameter; allowed: "
                  f"{', '.join(PIVOT_KEYS)}" for j, a in enumerate(pair) if a not in PIVOT_KEYS]
        if pair[0] == pair[1]:
            lines.append(f"pivots[{i}]: the two axes must differ (got {pair})")
    return lines


# -- across blocks ------------------------------------------------------------------------------


def scheduler_lines(scheduler: Any, fixed: dict[str, Any], spaces: list[Space]) -> list[str]:
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


# -- tune-then-confirm ----------------------------------------------------------------------------


def check_tuning(tpm: TunePerModelConfig, seeds: list[int] | None, search: Any) -> list[str]:
    """Confirmation seeds new to the search, a search that draws proposals, no num_samples."""
    out = check_seeds(tpm.confirm_seeds, "tune_per_model.confirm_seeds")
    shared = [s for s in tpm.confirm_seeds if s in (seeds or [])]
    if shared:
        out.append(f"tune_per_model.confirm_seeds: {shared} also in seeds {seeds}; the "
                   "confirmation seeds must play no part in the search (seeds are the search "
                   "seeds): use seeds the search never ran")
    if search is not None and search.algorithm == "grid":
        out.append("search.algorithm: tune_per_model needs random or optuna (each family draws "
                   "`proposals` configurations; a grid would give each family its own size)")
    if search is not None and search.num_samples != 1:
        out.append(f"search.num_samples: {search.num_samples} conflicts with "
                   f"tune_per_model.proposals ({tpm.proposals} configurations per family); "
                   "drop search.num_samples")
    return out


def space_lines(space: dict[str, Dim], per_model: dict[str, dict[str, Dim]]) -> list[str]:
    """Under tune_per_model, `space` holds only the model axis, and no family sub-space has a
    grid (a grid would multiply that family's budget by its size)."""
    out = [f"space.{k}: with tune_per_model each family searches its own keys: put {k} under "
           "per_model.<model> (space holds only model)" for k in space if k != "model"]
    if "model" in space and space["model"].kind != "grid":
        out.append(f"space.model: needs a grid of the families to tune (got "
                   f"{space['model'].kind})")
    out += [f"per_model.{m}.{k}.grid: with tune_per_model each family draws the same number "
            "of proposals; use choice (a grid would multiply this family's budget)"
            for m, sub in per_model.items() for k, d in sub.items() if d.kind == "grid"]
    return out


def objective_lines(metric: Any) -> list[str]:
    """The chosen configuration is the validation argmax: the objective is a val_ metric."""
    if isinstance(metric, str) and not metric.startswith("val_"):
        return [f"objective.metric: tune_per_model confirms each family's validation argmax; "
                f"{metric!r} is not a validation metric (e.g. val_hr@10)"]
    return []


# -- the blocks over the fields validated so far (what SweepSpec's validators call) ---------------


class ProtocolConflict:
    """A top-level protocol given while protocol is also searched (reported by its validator)."""


def prepared(raw: Any) -> Any:
    """The raw sweep mapping as the validators judge it: baseline spaces added, and a top-level
    protocol that is also searched replaced by a `ProtocolConflict`."""
    raw = with_baseline_spaces(raw)
    if isinstance(raw, dict) and "protocol" in raw and isinstance(raw.get("space"), dict) \
            and "protocol" in raw["space"]:
        raw = {**raw, "protocol": ProtocolConflict()}
    return raw


def base_values(d: dict[str, Any]) -> dict[str, Any]:
    """RunConfig values shared by every trial, from the fields validated so far."""
    seeds = d.get("seeds") or [0]
    return {"data": d.get("data", DataConfig()), "protocol": d.get("protocol", "holdout"),
            "seed": seeds[0]}


def space_block(v: Any, d: dict[str, Any]) -> tuple[dict[str, Dim], Lines]:
    """The `space` block over the fields validated so far: its dims and problems."""
    search = d.get("search")
    base = {**base_values(d), **d.get("fixed", {})}
    return check_space(v, "space", d.get("fixed", {}), base, search.algorithm if search else None)


def per_model_block(v: Any, d: dict[str, Any]) -> tuple[dict[str, dict[str, Dim]], Lines]:
    """The `per_model` block over the fields validated so far: its sub-spaces and problems
    (none until the space is valid), with tune-then-confirm's rules on the family spaces."""
    if "space" not in d or "fixed" not in d:
        return {}, []  # judged once the space is valid
    search = d.get("search")
    base = {**base_values(d), **d["fixed"]}
    algorithm = search.algorithm if search else None
    # absent from d = given but invalid (reported already): judge as if tuned
    tuned = d.get("tune_per_model", True) is not None
    if tuned and algorithm == "optuna":
        algorithm = "random"  # one flat Optuna search per family: sub-spaces are fine
    subs, lines = check_per_model(v, d["space"], d["fixed"], base, algorithm)
    if tuned:
        lines += space_lines(d["space"], subs)
    return subs, lines


def objective_block(v: Any, d: dict[str, Any]) -> tuple[Any, Lines]:
    """The `objective` block with its defaults, and its problems over the fields validated so
    far; ValueError for something other than a mapping."""
    if v is not None and not isinstance(v, dict):
        raise ValueError(f"expected a mapping with keys "
                         f"{', '.join(field_names(ObjectiveConfig))} (got {short(v)})")
    protocols = protocol_axis(d.get("protocol"), d.get("space", {}))
    obj = objective_defaults(v, protocols)
    fixed = d.get("fixed", {})
    schedule = RunConfig.model_validate({"full_ranking": fixed.get(
        "full_ranking", RunConfig.model_fields["full_ranking"].default)}).full_ranking
    lines = check_objective(obj.get("metric"), protocols, schedule)
    if d.get("tune_per_model") is not None:
        lines += objective_lines(obj.get("metric"))
    chosen = fixed.get("select_metric")
    if chosen is not None and chosen != obj.get("metric"):
        lines.append(f"fixed.select_metric: {chosen!r} differs from objective.metric "
                     f"{obj.get('metric')!r}; the sweep's objective is what trials select on")
    return obj, lines


def cross_block_lines(drop: bool, d: dict[str, Any]) -> Lines:
    """The rules across blocks, over every block validated so far; `drop`: drop_duplicates."""
    fixed = d.get("fixed")
    lines = device_lines(d.get("resources"), fixed or {})
    if fixed is not None and "space" in d and "per_model" in d:
        base = base_values(d)
        spaces = sub_spaces(d["space"], d["per_model"], fixed)
        lines += combination_lines(base, fixed, spaces, d.get("smoke"))
        lines += scheduler_lines(d.get("scheduler"), fixed, spaces)
        search = d.get("search")
        if (not lines and search is not None and search.algorithm != "optuna"
                and d.get("tune_per_model") is None):
            lines += duplicate_lines({**base, **fixed}, spaces, drop)
    return lines
