"""Sweep files: one YAML file describes a Ray Tune sweep of OCF-B runs, checked before it runs.

`load_sweep` reads the file, applies the command line's overrides and checks everything at once:
unknown keys at any level, types, ranges, and every value the search can produce (each grid or
choice value and both ends of every range are built into a `RunConfig`, so a sweep fails with the
same rules as `ocfb-suite train`, but before Ray starts). All problems are reported together, one
per line, as `FILE: key.path: what is wrong`.

Importing this module does not import Ray; only `SweepSpec.param_space` does.

Search dimensions, each a one-key mapping in YAML::

    model:     {grid: [gmf, neumf]}         # every value, crossed with the other grid dims
    mf_dim:    {choice: [4, 8, 16]}         # one value drawn per trial (random / optuna)
    threshold: {uniform: [0.3, 0.9]}        # float drawn uniformly from [lo, hi]
    lr:        {loguniform: [1.0e-4, 1.0e-2]}
    user_dim:  {int: [2, 8]}                # integer in [lo, hi], both ends included

`layers` values are lists (`[32, 16, 8]`). In the Ray param space they travel as strings
("32,16,8": Optuna's categorical values must be scalars, and the results tables store layers as
such strings); `SweepSpec.run_config` parses them back.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ocfb.config import DataConfig, RunConfig, make_run_config

ALGORITHMS = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
WANDB_MODES = ("auto", "online", "offline", "disabled")
MODES = ("max", "min")
PROTOCOLS = ("paper", "holdout")
DIM_KINDS = ("grid", "choice", "uniform", "loguniform", "int")

# Loop parameters a sweep may search over (`seed` is the separate `seeds` axis).
SEARCHABLE = (
    "protocol", "model", "mf_dim", "user_dim", "item_dim", "layers", "negatives", "threshold",
    "terms", "strategy", "error", "refit", "lr", "epochs", "epochs_per_term", "batch_size",
    "weight_decay", "exclude_removed", "replace_fraction",
)
# Continuous ranges only make sense for float parameters, integer ranges for int parameters:
# a uniform draw of 3.7 for mf_dim would only fail once the trial starts.
FLOAT_KEYS = ("threshold", "lr", "weight_decay", "replace_fraction")
INT_KEYS = ("mf_dim", "user_dim", "item_dim", "negatives", "terms", "epochs", "epochs_per_term",
            "batch_size")
# RunConfig keys that a sweep sets elsewhere: data and protocol at the top level, seed in `seeds`.
_NOT_FIXED = ("data", "protocol", "seed")
FIXED_KEYS = tuple(k for k in RunConfig.model_fields if k not in _NOT_FIXED)
PIVOT_KEYS = tuple(k for k in RunConfig.model_fields if k != "data")

# Keys `to_json` adds for DIR/sweep.json; not accepted in a sweep file.
DERIVED_KEYS = ("axes", "expected_trials")
# Same shrinkage as `ocfb-suite train --smoke`: a few seconds of work per trial.
DEFAULT_SMOKE: dict[str, Any] = {"terms": 2, "epochs": 2, "epochs_per_term": 1, "batch_size": 1024}

# Metric names of the per-term records (see ocfb.algorithm / ocfb.protocols); a test runs the
# loop and checks these lists against what it really reports.
LOOP_METRICS = ("train_loss", "err_mean", "err_max")
LOWER_IS_BETTER = LOOP_METRICS
PAPER_METRICS = (
    "test_auc", "test_accuracy",
    "test_precision_neg", "test_recall_neg", "test_f1_neg", "test_support_neg",
    "test_precision_pos", "test_recall_pos", "test_f1_pos", "test_support_pos",
    "test_precision_weighted", "test_recall_weighted", "test_f1_weighted",
)
_KS = (5, 10, 20)
# Storage URI schemes Ray (pyarrow filesystems) can write checkpoints to.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Checking every combination of the search values against RunConfig's cross-field rules is
# cheap (tens of microseconds each); beyond this many combinations only a prefix is checked.
_MAX_COMBOS = 5000


class SpecError(ValueError):
    """Bad sweep file; message names the key path(s) and the allowed values."""


def default_metric(protocol: str) -> str:
    """The default objective: validation HR@10 under holdout, the paper's AUC under paper.

    Same rule as `ocfb.algorithm.default_objective` (not imported: it would pull in torch).
    """
    return "val_hr@10" if protocol == "holdout" else "test_auc"


def produced_metrics(protocol: str, *, full_ranking: bool = True) -> tuple[str, ...]:
    """Names of the metrics every per-term record of `protocol` carries (objective candidates)."""
    if protocol == "paper":
        return LOOP_METRICS + PAPER_METRICS
    names: list[str] = []
    for p in ("val_", "test_"):
        kinds = ("hr", "ndcg") + (("full_hr", "full_ndcg") if full_ranking else ())
        names += [f"{p}{kind}@{k}" for kind in kinds for k in _KS]
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


# -- typed sections ---------------------------------------------------------------------------


class _Section(BaseModel):
    # strict: YAML gives real types, so "2" for an integer is a mistake, not something to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Dim(_Section):
    kind: ClassVar[str]

    def candidates(self) -> list[Any]:
        """The values validated against RunConfig: every listed value, or both range ends."""
        raise NotImplementedError

    @property
    def discrete(self) -> bool:
        """True for a finite list of values (grid, choice)."""
        return self.kind in ("grid", "choice")

    def n_values(self) -> int | None:
        """How many distinct values the dim can take (None: a continuum)."""
        if self.discrete:
            return len(self.candidates())
        if self.kind == "int":
            lo, hi = self.candidates()
            return hi - lo + 1
        return None


class GridDim(_Dim):
    """Every listed value, crossed with the other grid dims (`tune.grid_search`)."""

    kind: ClassVar[str] = "grid"
    grid: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.grid)


class ChoiceDim(_Dim):
    """One of the listed values, drawn per trial (`tune.choice`); random or optuna search."""

    kind: ClassVar[str] = "choice"
    choice: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.choice)


class UniformDim(_Dim):
    """A float drawn uniformly from [lo, hi] (`tune.uniform`)."""

    kind: ClassVar[str] = "uniform"
    uniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.uniform)


class LogUniformDim(_Dim):
    """A float drawn log-uniformly from [lo, hi], lo > 0 (`tune.loguniform`)."""

    kind: ClassVar[str] = "loguniform"
    loguniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.loguniform)


class IntDim(_Dim):
    """An integer drawn from [lo, hi], both ends included (`tune.randint(lo, hi + 1)`)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    kind: ClassVar[str] = "int"
    int_: list[int] = Field(alias="int", min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.int_)


SearchDim = GridDim | ChoiceDim | UniformDim | LogUniformDim | IntDim
_DIM_CLASSES: dict[str, type[_Dim]] = {
    "grid": GridDim, "choice": ChoiceDim, "uniform": UniformDim, "loguniform": LogUniformDim,
    "int": IntDim,
}


class SearchConfig(_Section):
    """How trials are generated: grid enumeration, random draws or Optuna TPE (seeded)."""

    algorithm: Literal["grid", "random", "optuna"] = "grid"
    # grid / random: Ray's num_samples (repeats of the grid, or random draws per grid point);
    # optuna: trials per seed.
    num_samples: int = Field(1, ge=1)
    # seeds the random / optuna searcher, so the same file draws the same trials.
    seed: int = Field(0, ge=0)


class SchedulerConfig(_Section):
    """Trial scheduler: FIFO (run everything) or ASHA early stopping on the term axis."""

    type: Literal["fifo", "asha"] = "fifo"
    # ASHA: terms a trial always runs before it can be stopped (Ray's default 1).
    grace_period: int = Field(1, ge=1)
    # ASHA: keep the best 1/reduction_factor of trials at each rung (Ray's default 4).
    reduction_factor: int = Field(4, ge=2)


class ObjectiveConfig(_Section):
    """The metric that ranks trials (and that ASHA / Optuna optimise), and its direction."""

    metric: str
    mode: Literal["max", "min"] = "max"


class ResourcesConfig(_Section):
    """Resources one trial reserves: CPUs (torch threads) and a fraction of one GPU."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0, le=1)


class WandbConfig(_Section):
    """Weights & Biases logging: auto = online with an API key, else offline files."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = Field("ocfb-suite", min_length=1)
    entity: str | None = None
    tags: list[str] = []


class SweepSpec(_Section):
    """A validated sweep file: what to run, what to search, and how Ray should schedule it.

    Build it with `load_sweep` or `SweepSpec.from_dict`, which run every check; constructing it
    directly only checks types.
    """

    name: str
    data: DataConfig = DataConfig()
    protocol: Literal["paper", "holdout"] = "holdout"
    fixed: dict[str, Any] = {}
    space: dict[str, SearchDim] = {}
    seeds: list[int] = [0]
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    objective: ObjectiveConfig
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent_trials: int | None = None
    wandb: WandbConfig = WandbConfig()
    output: str
    storage_path: str | None = None
    pivots: list[list[str]] = []
    smoke: dict[str, Any] = dict(DEFAULT_SMOKE)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "<sweep>") -> SweepSpec:
        """Validate a parsed sweep mapping fully; raise SpecError listing every problem.

        Accepts `to_json` output: its derived keys (axes, expected_trials) are dropped.
        """
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k not in DERIVED_KEYS}
        return _parse(raw, where)

    def base_config(self) -> dict[str, Any]:
        """The RunConfig values every trial shares: data, protocol and the fixed keys."""
        return {"data": self.data.model_dump(), "protocol": self.protocol, **self.fixed}

    def run_config(self, params: dict[str, Any]) -> RunConfig:
        """The trial's RunConfig: base values overlaid with Tune's sampled params (incl. seed).

        Accepts layers as "32,16,8" strings (as `param_space` emits them) and numpy scalars.
        Raises ocfb.config.ConfigError for a value the sweep file could not have produced.
        """
        values: dict[str, Any] = {"seed": self.seeds[0], **self.base_config()}
        params = dict(params)
        index = params.pop("__trial_index__", None)
        if index is not None:  # Optuna + Repeater: the i-th repeat of a configuration
            values["seed"] = self.seeds[int(index) % len(self.seeds)]
        for k, v in params.items():
            if hasattr(v, "item") and not isinstance(v, list | tuple | str):
                v = v.item()  # numpy scalar from a Ray sampler
            values[k] = v
        if "layers" in values:
            values["layers"] = parse_layers(values["layers"])
        return make_run_config(values)

    def axes(self) -> list[str]:
        """Config keys that vary between trials: searched keys (file order), then seed."""
        out = [k for k, d in self.space.items() if d.n_values() != 1]
        if len(self.seeds) > 1:
            out.append("seed")
        return out

    def grid_size(self) -> int:
        """Product of the grid dims' sizes (1 without grid dims)."""
        return math.prod(len(d.candidates()) for d in self.space.values() if d.kind == "grid")

    def expected_trials(self) -> int | None:
        """How many trials the sweep runs (before early stopping).

        grid / random: num_samples x (product of grid sizes) x seeds; optuna: num_samples x seeds
        (Optuna draws every dim, grid ones included, so the grid does not multiply).
        """
        n = self.search.num_samples * len(self.seeds)
        if self.search.algorithm == "optuna":
            return n
        return n * self.grid_size()

    def tune_num_samples(self) -> int:
        """The `num_samples` to hand to `tune.TuneConfig` so that Ray runs `expected_trials()`.

        Ray multiplies grid_search axes (seeds included) itself; Optuna's trials are all drawn,
        so it needs num_samples per seed times the number of seeds.
        """
        if self.search.algorithm == "optuna":
            return self.search.num_samples * len(self.seeds)
        return self.search.num_samples

    def max_terms(self) -> int:
        """The largest term count any trial runs (ASHA's max_t on the term axis)."""
        return max(_terms_values(self.fixed, self.space))

    def with_smoke(self) -> SweepSpec:
        """The `--smoke` version: smoke overrides become fixed (dropping searches over the same
        keys), one seed, num_samples capped at 2 and an ASHA grace period at the smoke terms."""
        raw = self.to_json()
        raw["fixed"] = {**self.fixed, **self.smoke}
        raw["space"] = {k: v for k, v in raw["space"].items() if k not in self.smoke}
        raw["search"]["num_samples"] = min(self.search.num_samples, 2)
        raw["seeds"] = list(self.seeds[:1])  # one seed: smoke checks plumbing, not statistics
        if self.scheduler.type == "asha":
            kept = {k: d for k, d in self.space.items() if k not in self.smoke}
            t = max(_terms_values(raw["fixed"], kept))
            if t < 1:
                raw["scheduler"] = {"type": "fifo"}
            elif t < self.scheduler.grace_period:
                raw["scheduler"]["grace_period"] = t
        return SweepSpec.from_dict(raw, f"{self.name} (smoke)")

    def param_space(self) -> dict[str, Any]:
        """Ray Tune's param_space: the search dims and the seed axis (fixed keys stay out).

        grid -> tune.grid_search (tune.choice under optuna, which cannot take grid_search),
        choice -> tune.choice, uniform / loguniform -> tune.uniform / tune.loguniform,
        int [lo, hi] -> tune.randint(lo, hi + 1). Seeds: grid_search (under optuna, a Repeater
        replicates each proposal over the seeds instead).
        """
        from ray import tune  # lazy: validating a sweep must not start or import Ray

        optuna = self.search.algorithm == "optuna"
        out: dict[str, Any] = {}
        for key, dim in self.space.items():
            vals = [layers_to_str(v) if key == "layers" else v for v in dim.candidates()]
            if dim.kind == "grid":
                out[key] = tune.choice(vals) if optuna else tune.grid_search(vals)
            elif dim.kind == "choice":
                out[key] = tune.choice(vals)
            elif dim.kind == "uniform":
                out[key] = tune.uniform(*vals)
            elif dim.kind == "loguniform":
                out[key] = tune.loguniform(*vals)
            else:
                out[key] = tune.randint(vals[0], vals[1] + 1)
        if not optuna:
            out["seed"] = tune.grid_search(list(self.seeds))
        # under optuna the seeds are not searched: a Repeater runs every proposed configuration
        # once per seed and run_config maps the repeat index to the seed
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of the spec plus the derived `axes` and `expected_trials`: everything
        DIR/sweep.json needs; `from_dict` of it gives the spec back."""
        out = self.model_dump(mode="json", by_alias=True)
        if "protocol" in self.space:
            del out["protocol"]  # searched: the top-level default would contradict the axis
        out["axes"] = self.axes()
        out["expected_trials"] = self.expected_trials()
        return out


# -- YAML -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """safe_load, plus: duplicate keys are an error (safe_load silently keeps the last one), and
    1e-3 is a float (YAML 1.1 reads it as a string; YAML 1.2 and every user read it as 0.001)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                continue  # unhashable key: the base class reports it
            if dup:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?\.?\d+[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_sweep(
    path: str | Path, *, output: str | None = None, data_source: str | None = None
) -> SweepSpec:
    """Read a sweep YAML file, apply CLI overrides (output folder, data source file) and
    validate it fully; raise SpecError (every problem, one per line) before anything runs."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: sweep file not found")
    if not p.is_file():
        raise SpecError(f"{p}: not a file (expected a YAML sweep file)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a text file (expected a YAML sweep file)") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: as safe as safe_load
    except yaml.YAMLError as err:
        raise SpecError(f"{p}: not valid YAML{_yaml_problem(err)}") from None
    if raw is None:
        raise SpecError(f"{p}: the file is empty (expected a mapping of sweep keys)")
    if isinstance(raw, dict):
        if output is not None:
            raw["output"] = output
        if data_source is not None:
            data = raw.get("data")
            if data is None:
                raw["data"] = {"source": data_source}
            elif isinstance(data, dict):
                raw["data"] = {**data, "source": data_source}
    return _parse(raw, str(p))


# -- validation -------------------------------------------------------------------------------

_TOP_KEYS = tuple(SweepSpec.model_fields)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """ " at line L, column C: what the parser found" (PyYAML's own text names no file)."""
    mark = getattr(err, "problem_mark", None)
    what = ", ".join(str(x) for x in (getattr(err, "context", None),
                                      getattr(err, "problem", None)) if x)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {what or ' '.join(str(err).split())}"


def _hint(word: Any, options: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else nothing."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _got(msg: str, value: Any) -> str:
    """Append the offending input unless the message already quotes it."""
    return msg if "(got " in msg else f"{msg} (got {_short(value)})"


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _join(prefix: str, loc: Iterable[Any]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<root>"


def _fields(cls: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in cls.model_fields.items()]


def _pydantic_problems(err: ValidationError, prefix: str, cls: type[BaseModel]) -> list[str]:
    """One line per pydantic error, naming the path, the allowed keys or values, and the input."""
    out = []
    for e in err.errors(include_url=False):
        path = _join(prefix, e["loc"])
        if e["type"] == "extra_forbidden":
            msg = (f"unknown key{_hint(e['loc'][-1], _fields(cls))}; "
                   f"allowed keys: {', '.join(_fields(cls))}")
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = _got(e["msg"].removeprefix("Value error, "), e["input"])
        out.append(f"{path}: {msg}")
    return out


def _section(cls: type[BaseModel], value: Any, path: str, problems: list[str]) -> Any:
    """Validate one block with its model; on failure record the problems and return None."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping with keys {', '.join(_fields(cls))} "
                        f"(got {_short(value)})")
        return None
    try:
        return cls.model_validate(value)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err, path, cls))
        return None


def _run_errors(values: dict[str, Any]) -> list[tuple[tuple[Any, ...], str, Any]]:
    """RunConfig's verdict on `values` (the validation make_run_config runs) as (loc, msg,
    input) triples; loc () is a cross-field rule. A union's per-member errors become one."""
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


def _terms_values(fixed: dict[str, Any], space: dict[str, Any]) -> list[int]:
    """Every term count the sweep can run (RunConfig's default when terms is not set)."""
    dim = space.get("terms")
    if dim is not None:
        return [int(v) for v in dim.candidates()]
    return [int(fixed.get("terms", RunConfig.model_fields["terms"].default))]


def _parse(raw: Any, where: str) -> SweepSpec:
    """Check a parsed sweep mapping and build the spec, or raise SpecError with every problem."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping of sweep keys at the top level "
                        f"(got {type(raw).__name__}); allowed keys: {', '.join(_TOP_KEYS)}")
    problems: list[str] = []
    for k in raw:
        if k not in _TOP_KEYS:
            problems.append(f"{k}: unknown key{_hint(k, _TOP_KEYS)}; "
                            f"allowed keys: {', '.join(_TOP_KEYS)}")

    # name, protocol, output, storage_path, max_concurrent_trials
    name = raw.get("name")
    if name is None:
        problems.append("name: required key is missing (a slug like 'quickstart')")
    elif not isinstance(name, str) or not _NAME.fullmatch(name) or set(name) == {"."}:
        problems.append(f"name: must be a slug of letters, digits, '_', '.', '-' "
                        f"(got {_short(name)})")
        name = None
    protocol = raw.get("protocol", "holdout")
    if protocol not in PROTOCOLS:
        problems.append(f"protocol: must be one of {', '.join(PROTOCOLS)} (got {_short(protocol)})")
        protocol = None
    output = raw.get("output")
    if output is None and name is not None:
        output = f"results/{name}"
    elif output is not None and (not isinstance(output, str) or not output.strip()):
        problems.append(f"output: must be a non-empty folder path (got {_short(output)})")
    storage = raw.get("storage_path")
    if storage is not None:
        m = _URI.match(storage) if isinstance(storage, str) else None
        if not isinstance(storage, str) or not storage.strip():
            problems.append(f"storage_path: must be a local folder or a URI like s3://bucket/dir "
                            f"(got {_short(storage)})")
        elif m and m.group(1).lower() not in STORAGE_SCHEMES:
            problems.append(f"storage_path: unsupported URI scheme {m.group(1)!r}; allowed: "
                            f"{', '.join(STORAGE_SCHEMES)} or a local folder")
    mct = raw.get("max_concurrent_trials")
    if mct is not None and (not isinstance(mct, int) or isinstance(mct, bool) or mct < 1):
        problems.append(f"max_concurrent_trials: must be an integer >= 1 or null (no limit) "
                        f"(got {_short(mct)})")

    # typed blocks
    data = None
    raw_data = raw.get("data")
    if raw_data is None:
        data = DataConfig()
    elif not isinstance(raw_data, dict):
        problems.append(f"data: expected a mapping with keys {', '.join(_fields(DataConfig))} "
                        f"(got {_short(raw_data)})")
    else:
        try:
            data = DataConfig.model_validate(raw_data)
        except ValidationError as err:
            problems.extend(_pydantic_problems(err, "data", DataConfig))
    search = _section(SearchConfig, raw.get("search"), "search", problems)
    scheduler = _section(SchedulerConfig, raw.get("scheduler"), "scheduler", problems)
    resources = _section(ResourcesConfig, raw.get("resources"), "resources", problems)
    wandb = _section(WandbConfig, raw.get("wandb"), "wandb", problems)

    # seeds
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds)):
        problems.append(f"seeds: expected a non-empty list of distinct integers >= 0, e.g. "
                        f"[0, 1, 2] (got {_short(seeds)})")
        seeds = None
    else:
        for i, s in enumerate(seeds):
            for _loc, msg, inp in _run_errors({"seed": s}):
                problems.append(f"seeds[{i}]: {_got(msg, inp)}")
            if s in seeds[:i]:
                problems.append(f"seeds[{i}]: duplicate seed {s} (seeds must be distinct)")
    seed0 = seeds[0] if seeds and seeds[0] >= 0 else 0

    # fixed and smoke: RunConfig keys, each value judged by RunConfig's own rules
    base: dict[str, Any] = {"data": data if data is not None else DataConfig(),
                            "protocol": protocol or "holdout", "seed": seed0}
    fixed = _run_params(raw.get("fixed"), "fixed", base, problems)
    smoke_raw = raw.get("smoke")
    smoke = _run_params(smoke_raw, "smoke", base, problems)
    if smoke is not None:
        smoke = {**DEFAULT_SMOKE, **smoke}

    # space
    algorithm = search.algorithm if search is not None else None
    space = _space(raw.get("space"), fixed or {}, {**base, **(fixed or {})}, algorithm, problems)

    # cross-field rules of RunConfig over every combination the search can produce
    # (run even when other blocks have problems, so one pass reports everything it can)
    if fixed is not None and space is not None:
        combo_problems = _combination_problems(base, fixed, space)
        problems.extend(combo_problems)
        if smoke is not None and not combo_problems:
            smoke_space = {k: d for k, d in space.items() if k not in smoke}
            for p in _combination_problems(base, {**fixed, **smoke}, smoke_space, limit=1):
                problems.append(f"smoke: with the smoke overrides, {p}")

    # objective (default metric follows the protocol)
    obj_raw = raw.get("objective")
    objective = None
    if obj_raw is not None and not isinstance(obj_raw, dict):
        problems.append(f"objective: expected a mapping with keys metric, mode "
                        f"(got {_short(obj_raw)})")
    elif protocol is not None:
        # a sweep may search over the protocol (to measure the gap between them); then the
        # objective must be a metric every searched protocol produces
        searched = (space or {}).get("protocol")
        protocols = [protocol]
        if searched is not None:
            protocols = [p for p in searched.candidates() if p in PROTOCOLS] or [protocol]
            if "protocol" in raw:
                problems.append("protocol: also searched in space.protocol; set one or the other")
        obj = dict(obj_raw or {})
        obj.setdefault("metric", default_metric(protocol) if len(protocols) == 1 else "test_auc")
        if isinstance(obj["metric"], str) and obj["metric"] in LOWER_IS_BETTER:
            obj.setdefault("mode", "min")
        objective = _section(ObjectiveConfig, obj, "objective", problems)
        full = (fixed or {}).get("full_ranking", True)
        allowed = [m for m in produced_metrics(protocols[0], full_ranking=bool(full))
                   if all(m in produced_metrics(p, full_ranking=bool(full)) for p in protocols)]
        if protocols == ["holdout"]:
            # holdout selects on validation; test is reported alongside, never used to choose
            allowed = [m for m in allowed if not m.startswith("test_")]
        if (objective is not None and protocols == ["holdout"]
                and objective.metric.startswith("test_")):
            problems.append(
                f"objective.metric: {objective.metric!r} is a test metric; under protocol "
                f"'holdout' model selection uses validation (e.g. "
                f"{objective.metric.replace('test_', 'val_', 1)!r}); allowed: "
                f"{', '.join(allowed)}")
        elif objective is not None and objective.metric not in allowed:
            everywhere = all(objective.metric in produced_metrics(p) for p in protocols)
            why = " with fixed.full_ranking false" if everywhere and not full else ""
            names = " and ".join(repr(p) for p in protocols)
            problems.append(
                f"objective.metric: {objective.metric!r} is not produced by protocol "
                f"{names}{why}{_hint(objective.metric, allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )

    # scheduler vs terms
    if scheduler is not None and scheduler.type == "asha" and fixed is not None \
            and space is not None:
        try:
            max_t = max(_terms_values(fixed, space))
        except (TypeError, ValueError):
            max_t = None
        if max_t is not None and scheduler.grace_period > max_t:
            problems.append(
                f"scheduler.grace_period: {scheduler.grace_period} exceeds terms={max_t}; ASHA "
                f"counts terms, so grace_period must be <= the largest terms value")

    # Ray hides every GPU from a trial that reserved none, so cuda would fail inside the trial
    device = (fixed or {}).get("device", "cpu")
    if (resources is not None and resources.gpus == 0 and isinstance(device, str)
            and device.startswith("cuda")):
        problems.append(f"fixed.device: {device!r} needs resources.gpus > 0 (a trial without a "
                        "GPU share sees no GPU); use cpu or auto, or reserve e.g. gpus: 0.5")

    # pivots
    pivots = raw.get("pivots", [])
    if not isinstance(pivots, list):
        problems.append(f"pivots: expected a list of [axis_a, axis_b] pairs (got {_short(pivots)})")
        pivots = None
    else:
        for i, pair in enumerate(pivots):
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(a, str) for a in pair)):
                problems.append(f"pivots[{i}]: expected a pair of run parameters like "
                                f"[threshold, terms] (got {_short(pair)})")
                continue
            for j, a in enumerate(pair):
                if a not in PIVOT_KEYS:
                    problems.append(f"pivots[{i}][{j}]: {a!r} is not a run parameter; allowed: "
                                    f"{', '.join(PIVOT_KEYS)}")
            if pair[0] == pair[1]:
                problems.append(f"pivots[{i}]: the two axes must differ (got {pair})")

    if problems:
        raise SpecError("\n".join(f"{where}: {p}" for p in problems))
    fields = dict(
        name=name, data=data, protocol=protocol, fixed=fixed, space=space, seeds=seeds,
        search=search, scheduler=scheduler, objective=objective, resources=resources,
        max_concurrent_trials=mct, wandb=wandb, output=output, storage_path=storage,
        pivots=pivots, smoke=smoke,
    )
    try:
        return SweepSpec(**fields)
    except ValidationError as err:  # a rule above missed something: still name the key
        raise SpecError("\n".join(f"{where}: {p}"
                                  for p in _pydantic_problems(err, "", SweepSpec))) from None


def _run_params(
    value: Any, path: str, base: dict[str, Any], problems: list[str]
) -> dict[str, Any] | None:
    """Check a mapping of RunConfig overrides (`fixed`, `smoke`) key by key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping of run parameters (got {_short(value)})")
        return None
    ok = True
    for k in value:
        if k == "seed":
            problems.append(f"{path}.seed: seeds are their own axis: list them in the top-level "
                            "`seeds` key")
        elif k in ("data", "protocol"):
            problems.append(f"{path}.{k}: set {k} with the top-level `{k}` key")
        elif k not in FIXED_KEYS:
            problems.append(f"{path}.{k}: unknown run parameter{_hint(k, FIXED_KEYS)}; "
                            f"allowed keys: {', '.join(FIXED_KEYS)}")
        else:
            continue
        ok = False
    if not ok:
        return None
    errs = [e for e in _run_errors({**base, **value}) if e[0] and e[0][0] in value]
    for loc, msg, inp in errs:
        problems.append(f"{_join(path, loc)}: {_got(msg, inp)}")
    return None if errs else dict(value)


def _space(
    value: Any, fixed: dict[str, Any], base: dict[str, Any], algorithm: str | None,
    problems: list[str],
) -> dict[str, _Dim] | None:
    """Check the search space: searchable keys, one dim kind each, and every value it yields."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"space: expected a mapping of searchable keys to dims like "
                        f"{{grid: [...]}} (got {_short(value)})")
        return None
    n_before = len(problems)
    out: dict[str, _Dim] = {}
    kinds = ", ".join(DIM_KINDS)
    for key, spec in value.items():
        path = f"space.{key}"
        if key == "seed":
            problems.append(f"{path}: seeds are their own axis: list them in the top-level "
                            "`seeds` key, not in space")
            continue
        if key not in SEARCHABLE:
            hint = " (put constant values under `fixed`)" if key in RunConfig.model_fields else ""
            problems.append(f"{path}: not a searchable key{hint or _hint(key, SEARCHABLE)}; "
                            f"searchable keys: {', '.join(SEARCHABLE)}")
            continue
        if key in fixed:
            problems.append(f"{path}: also set in fixed.{key}; a key is either fixed or searched")
            continue
        if not isinstance(spec, dict) or len(spec) != 1:
            got = f"keys {', '.join(map(str, spec))}" if isinstance(spec, dict) else _short(spec)
            problems.append(f"{path}: expected a one-key mapping like {{grid: [v1, v2]}} with "
                            f"one of {kinds} (got {got})")
            continue
        kind = next(iter(spec))
        if kind not in _DIM_CLASSES:
            problems.append(f"{path}.{kind}: unknown dimension kind{_hint(kind, DIM_KINDS)}; "
                            f"allowed: {kinds}")
            continue
        if kind in ("uniform", "loguniform") and key not in FLOAT_KEYS:
            problems.append(f"{path}.{kind}: {key} is not a float parameter; use grid, choice"
                            + (" or int" if key in INT_KEYS else "")
                            + f" (continuous ranges fit: {', '.join(FLOAT_KEYS)})")
            continue
        if kind == "int" and key not in INT_KEYS:
            problems.append(f"{path}.int: {key} is not an integer parameter; use grid or choice"
                            + (", uniform or loguniform" if key in FLOAT_KEYS else "")
                            + f" (integer ranges fit: {', '.join(INT_KEYS)})")
            continue
        cls = _DIM_CLASSES[kind]
        try:
            dim = cls.model_validate(spec)
        except ValidationError as err:
            problems.extend(_pydantic_problems(err, path, cls))
            continue
        if algorithm == "grid" and kind != "grid":
            problems.append(f"{path}.{kind}: {kind} dims need search.algorithm random or optuna "
                            "(algorithm grid enumerates grid dims only)")
        vals = dim.candidates()
        if not dim.discrete:
            lo, hi = vals
            if lo >= hi:
                problems.append(f"{path}.{kind}: lo must be < hi (got [{lo}, {hi}])")
            if kind == "loguniform" and lo <= 0:
                problems.append(f"{path}.loguniform[0]: must be > 0 for a log-uniform range "
                                f"(got {lo})")
        seen: list[Any] = []
        for i, v in enumerate(vals):
            errs = [e for e in _run_errors({**base, key: v}) if e[0] and e[0][0] == key]
            for loc, msg, inp in errs:
                problems.append(f"{_join(f'{path}.{kind}[{i}]', loc[1:])}: {_got(msg, inp)}")
            if not errs and dim.discrete:
                try:  # compare values as RunConfig stores them (4 == 4.0, [8] == (8,))
                    norm = getattr(RunConfig.model_validate({**base, key: v}), key)
                except ValidationError:  # a cross-field rule: judged over combinations below
                    norm = v
                if norm in seen:
                    problems.append(f"{path}.{kind}[{i}]: duplicate of {kind}[{seen.index(norm)}] "
                                    f"({_short(v)})")
                seen.append(norm)
        out[key] = dim
    return out if len(problems) == n_before else None


def _combination_problems(
    base: dict[str, Any], fixed: dict[str, Any], space: dict[str, _Dim], limit: int = 5
) -> list[str]:
    """RunConfig's cross-field rules (e.g. threshold <= 1 for a probability error) over every
    combination of search values, each failure blamed on the smallest culprit found."""
    base = {**base, **fixed}
    keys = list(space)
    cands = [list(enumerate(space[k].candidates())) for k in keys]
    found: list[str] = []

    def root_error(values: dict[str, Any]) -> str | None:
        errs = [m for loc, m, _ in _run_errors(values) if not loc]
        return errs[0] if errs else None

    for combo in itertools.islice(itertools.product(*cands), _MAX_COMBOS):
        values = {**base, **{k: v for k, (_, v) in zip(keys, combo, strict=True)}}
        msg = root_error(values)
        if msg is None:
            continue
        # blame single search values that fail on their own over the fixed settings ...
        blame = [f"space.{k}.{space[k].kind}[{i}]" for k, (i, v) in zip(keys, combo, strict=True)
                 if root_error({**base, k: v}) is not None]
        if not blame:
            # ... else fixed keys whose removal (back to RunConfig's default) fixes it ...
            blame = [f"fixed.{k}" for k in fixed
                     if root_error({kk: vv for kk, vv in values.items() if kk != k}) is None]
            if blame and root_error(base) is None:
                blame = []  # the fixed value is fine alone: it is the combination
        if blame:
            line = f"{' and '.join(blame)}: {msg}"
        else:
            together = ", ".join(f"{k}={v!r}" for k, (_, v) in zip(keys, combo, strict=True))
            line = f"space: the combination {together} is invalid: {msg}"
        if line not in found:
            found.append(line)
        if len(found) >= limit:
            break
    return found
