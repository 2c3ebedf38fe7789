"""The words of a sweep file and its one error format.

Words: its blocks, its search dimensions, and the run parameters it may fix or search (derived
from `RunConfig`, so a new RunConfig field is a sweep key at once). Search dimensions, each a
one-key mapping in YAML::

    model:     {grid: [gmf, neumf]}         # every value, crossed with the other grid dims
    mf_dim:    {choice: [4, 8, 16]}         # one value drawn per trial (random / optuna)
    threshold: {uniform: [0.3, 0.9]}        # float drawn uniformly from [lo, hi]
    lr:        {loguniform: [1.0e-4, 1.0e-2]}
    user_dim:  {int: [2, 8]}                # integer in [lo, hi], both ends included

Also the metric names a protocol's records carry (from `ocfb.names`), how `layers` travels
through Ray, and the tune-then-confirm block with the baselines' default search spaces.

Errors: `FILE: key.path: what is wrong (allowed, did you mean)`. Validators (`schema`, via
`rules`) report problems as lines that already carry their key path, bundled into one pydantic
error (`problems_error`); `pydantic_lines` turns a `ValidationError` of the spec into those
lines, and pydantic's own errors (types, ranges, unknown keys) into the same shape, so every
problem of a file is reported at once, one per line, in one format (`format_problems`).
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from ocfb.config import RunConfig
from ocfb.names import K_VALUES, LOOP_METRICS, REPORT_KEYS, WandbMode

# Storage URI schemes Ray (pyarrow filesystems) can write checkpoints to.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az")
# Optuna's TPESampler seeds numpy's RandomState, which takes seeds below 2**32.
MAX_SEARCH_SEED = 2**32 - 1
# Ray's key for an enumerated grid point (see `search_space`); `SweepSpec.run_config` flattens it.
GRID_POINT = "grid_point"


# -- blocks ---------------------------------------------------------------------------------------


class FileBlock(BaseModel):
    """Base of every block of a sweep file: unknown keys refused, nothing coerced."""

    # strict: YAML gives real types, so "2" for an integer is a mistake, not something to coerce;
    # allow_inf_nan=False: `.inf` / `.nan` are refused where they are read, not found later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Dim(FileBlock):
    """One searched key: a finite list of values, or a range."""

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


class GridDim(Dim):
    """Every listed value, crossed with the other grid dims (`tune.grid_search`)."""

    kind: ClassVar[str] = "grid"
    grid: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.grid)


class ChoiceDim(Dim):
    """One of the listed values, drawn per trial (`tune.choice`); random or optuna search."""

    kind: ClassVar[str] = "choice"
    choice: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.choice)


class UniformDim(Dim):
    """A float drawn uniformly from [lo, hi] (`tune.uniform`)."""

    kind: ClassVar[str] = "uniform"
    uniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.uniform)


class LogUniformDim(Dim):
    """A float drawn log-uniformly from [lo, hi], lo > 0 (`tune.loguniform`)."""

    kind: ClassVar[str] = "loguniform"
    loguniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.loguniform)


class IntDim(Dim):
    """An integer drawn from [lo, hi], both ends included (`tune.randint(lo, hi + 1)`)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    kind: ClassVar[str] = "int"
    int_: list[int] = Field(alias="int", min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.int_)


SearchDim = GridDim | ChoiceDim | UniformDim | LogUniformDim | IntDim
DIM_CLASSES: dict[str, type[Dim]] = {
    "grid": GridDim, "choice": ChoiceDim, "uniform": UniformDim, "loguniform": LogUniformDim,
    "int": IntDim,
}
DIM_KINDS = tuple(DIM_CLASSES)


# -- keys ---------------------------------------------------------------------------------------

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


# -- sections -----------------------------------------------------------------------------------


class SearchConfig(FileBlock):
    """How trials are generated: grid enumeration, random draws or Optuna TPE (seeded)."""

    algorithm: Literal["grid", "random", "optuna"] = "grid"
    # grid / random: Ray's num_samples (repeats of the grid, or random draws per grid point);
    # optuna: trials per seed.
    num_samples: int = Field(1, ge=1)
    # seeds the random / optuna searcher, so the same file draws the same trials.
    seed: int = Field(0, ge=0, le=MAX_SEARCH_SEED)


class SchedulerConfig(FileBlock):
    """Trial scheduler: FIFO (run everything) or ASHA early stopping on the term axis."""

    type: Literal["fifo", "asha"] = "fifo"
    # ASHA: terms a trial always runs before it can be stopped (Ray's default 1).
    grace_period: int = Field(1, ge=1)
    # ASHA: keep the best 1/reduction_factor of trials at each rung (Ray's default 4).
    reduction_factor: int = Field(4, ge=2)


class ObjectiveConfig(FileBlock):
    """The validation (or loop) metric that ranks trials and that ASHA / Optuna optimise."""

    metric: str
    mode: Literal["max", "min"] = "max"


# The region of practical equivalence for HR / NDCG-type metrics (fractions of users): a
# difference under one user in a hundred is read as "the same" (`verdicts: {rope: ...}`).
DEFAULT_ROPE = 0.01


class VerdictsConfig(FileBlock):
    """What the summary's verdict sections decide on (`suite.summary.verdicts`)."""

    # the test metric each verdict line reads (e.g. test_full_hr@10); None: under holdout the
    # full-ranking counterpart of the objective where the records hold it, else the objective's
    metric: str | None = None
    # region of practical equivalence: |difference| under this (TOST) reads "equivalent"
    rope: float = Field(DEFAULT_ROPE, gt=0, allow_inf_nan=False)


class ResourcesConfig(FileBlock):
    """Resources one trial reserves: CPUs (torch threads) and a fraction of one GPU."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0, le=1)


class WandbConfig(FileBlock):
    """Weights & Biases logging: auto = online with an API key, else offline files."""

    mode: Literal["auto", WandbMode] = "auto"  # the modes themselves: ocfb.names
    project: str = Field("ocfb-suite", min_length=1)
    entity: str | None = None
    tags: list[str] = []


# -- tune-then-confirm (`tune_per_model`) -----------------------------------------------------

STAGES = ("search", "confirm")
STAGE_COLUMN = "config.stage"
BUDGET_COLUMN = "config.budget"
FIXED_BUDGET = "fixed defaults"
# Each baseline's own parameters (RunConfig's ranges): EASE's L2 weight on a log scale (Steck
# 2019 finds hundreds at ML size), implicit's ALS factors / regularisation / confidence /
# sweeps around RunConfig's defaults (16, 1.0, 1.0, 15).
BASELINE_SPACES: dict[str, dict[str, dict[str, list[float | int]]]] = {
    "ease": {"l2": {"loguniform": [1.0, 1.0e4]}},
    "als": {"als_factors": {"int": [8, 128]},
            "als_regularization": {"loguniform": [1.0e-3, 100.0]},
            "als_alpha": {"loguniform": [0.1, 100.0]},
            "als_iterations": {"int": [5, 30]}},
}


class TunePerModelConfig(FileBlock):
    """Equal tuning budget per model family, then a confirmation on fresh seeds."""

    # configurations each searched family is given (Optuna proposals or random draws)
    proposals: int = Field(ge=1)
    # seeds the chosen configurations run on; disjoint from the search's `seeds`
    confirm_seeds: list[int] = Field(min_length=1)


# -- problems: SpecError and the one format -------------------------------------------------------

# pydantic error type of a bundle of ready-made problem lines (see `problems_error`)
PROBLEMS = "sweep_problems"


# `--negatives 4` meant 4 negatives in total to the CLI but "4 per positive" to an NCF user; a
# bare count this small is refused unless --negatives-total says it is meant (issue 12).
SMALL_NEGATIVES = 100
# The exit code of bad input found before any work starts (a SpecError, a bad flag or folder),
# the same as argparse's own for a bad command line
EXIT_USAGE = 2


def usage_error(msg: str) -> int:
    """Print the one error line of bad input (`ocfb-suite: error: ...`); returns EXIT_USAGE."""
    print(f"ocfb-suite: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


class SpecError(ValueError):
    """Bad sweep file; message names the key path(s) and the allowed values."""


def problems_error(lines: list[str]) -> PydanticCustomError:
    """One pydantic error carrying several finished problem lines (raise it in a validator)."""
    return PydanticCustomError(PROBLEMS, "{text}", {"text": "\n".join(lines), "lines": lines})


def hint(word: Any, options: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else nothing."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def short(v: Any, limit: int = 60) -> str:
    """repr(v), cut to `limit` characters."""
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def got(msg: str, value: Any) -> str:
    """Append the offending input unless the message already says what it got (RunConfig's
    "expected a number, got the boolean True" would otherwise read "got" twice)."""
    return msg if re.search(r"\bgot\b", msg) else f"{msg} (got {short(value)})"


def join(prefix: str, loc: Iterable[Any]) -> str:
    """A key path: `space.model.grid[1]` from a prefix and pydantic's loc tuple."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<root>"


def field_names(cls: type[BaseModel]) -> list[str]:
    """The keys a section accepts, as a user writes them (aliases)."""
    return [f.alias or name for name, f in cls.model_fields.items()]


def _owner(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The section model that `loc` (minus its last part) points into, for "allowed keys"."""
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if isinstance(part, str) else None
        sub = getattr(field, "annotation", None) if field is not None else None
        # an optional section (`X | None`) owns the keys of X
        for member in typing.get_args(sub) or (sub,):
            if isinstance(member, type) and issubclass(member, BaseModel):
                cls = member
    return cls


def pydantic_lines(err: ValidationError, prefix: str, cls: type[BaseModel]) -> list[str]:
    """One line per pydantic error: the path, the allowed keys or values, and the input.

    Bundled `problems_error` lines are passed through as they are (they carry their paths).
    """
    out: list[str] = []
    for e in err.errors(include_url=False):
        if e["type"] == PROBLEMS:
            out.extend(e["ctx"]["lines"])
            continue
        loc = tuple(e["loc"])
        path = join(prefix, loc)
        if e["type"] == "extra_forbidden":
            keys = field_names(_owner(cls, loc))
            msg = f"unknown key{hint(loc[-1], keys)}; allowed keys: {', '.join(keys)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] in ("model_type", "model_attributes_type", "dict_type") and len(loc) == 1:
            keys = field_names(_owner(cls, (*loc, "")))
            msg = f"expected a mapping with keys {', '.join(keys)} (got {short(e['input'])})"
        else:
            msg = got(e["msg"].removeprefix("Value error, "), e["input"])
        out.append(f"{path}: {msg}")
    return out


def format_problems(lines: list[str], where: str) -> SpecError:
    """The SpecError of a file: every problem on its own line, prefixed with the file."""
    seen: list[str] = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return SpecError("\n".join(f"{where}: {p}" for p in seen))
