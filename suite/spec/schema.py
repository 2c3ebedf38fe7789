"""The sweep file as a pydantic model, and reading it from YAML.

`SweepSpec`'s validators carry every rule (via `rules`), so building it is validating it
(`SweepSpec.from_dict`; `load_sweep` / `SweepSpec.from_yaml` for a file: YAML with duplicate
keys refused, the command line's overrides, every problem in one SpecError). It also knows what
it runs: each trial's RunConfig, grid points, axes, trial counts, the smoke version, the stage
and budget of a tune-then-confirm trial.

pydantic validates fields in the order they are declared and hands each validator the fields
validated so far (`info.data`): a block's rules that need another block (e.g. `fixed` needs
`data` and `protocol`) sit after it, and the rules across blocks sit on the last field, so they
still run when an unrelated block is broken and one pass reports every problem.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ocfb.config import DataConfig, RunConfig, make_run_config
from ocfb.names import PROTOCOLS, SMOKE_SETTINGS, ProtocolName
from suite.spec import rules, search_space
from suite.spec.vocabulary import (
    BUDGET_COLUMN,
    FIXED_BUDGET,
    GRID_POINT,
    STAGE_COLUMN,
    Dim,
    FileBlock,
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SearchDim,
    SpecError,
    TunePerModelConfig,
    VerdictsConfig,
    WandbConfig,
    format_problems,
    hint,
    parse_layers,
    problems_error,
    pydantic_lines,
    short,
)

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Keys `to_json` adds for DIR/sweep.json; not accepted in a sweep file.
DERIVED_KEYS = ("axes", "expected_trials")


def _passed(value: Any, lines: list[str]) -> Any:
    """A validator's verdict: `value` if the rules found nothing, else one pydantic error."""
    if lines:
        raise problems_error(lines)
    return value


class SweepSpec(FileBlock):
    """A validated sweep file: what to run, what to search, and how Ray should schedule it.

    Build it with `load_sweep` or `SweepSpec.from_dict`, which turn validation errors into one
    SpecError listing every problem; `SweepSpec.model_validate` raises pydantic's error.
    """

    name: str
    data: DataConfig = DataConfig()
    protocol: ProtocolName = "holdout"
    seeds: list[int] = [0]
    search: SearchConfig = SearchConfig()
    # tune-then-confirm (`suite.driver`): each family searched with `proposals`, then its
    # validation argmax confirmed on `confirm_seeds`
    tune_per_model: TunePerModelConfig | None = None
    scheduler: SchedulerConfig = SchedulerConfig()
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent_trials: int | None = None
    wandb: WandbConfig = WandbConfig()
    output: str = Field("", validate_default=True)
    storage_path: str | None = None
    # checkpoint every k terms (and always the last): cheaper sweeps, resume re-runs <= k-1 terms
    checkpoint_every: int = Field(1, ge=1)
    # ... and only once this many seconds passed since the trial's last checkpoint (the last term
    # always; 0: every `checkpoint_every`-th term): a kill re-runs at most this much work plus one
    # term per trial. A checkpoint per term made Ray save its whole experiment state every 2:
    # 10.8 of the driver's 24.5 CPU-s at 114 quickstart trials (py-spy).
    checkpoint_interval_s: float = Field(30.0, ge=0, allow_inf_nan=False)
    fixed: dict[str, Any] = {}
    smoke: dict[str, Any] = Field(dict(SMOKE_SETTINGS), validate_default=True)
    space: dict[str, SearchDim] = {}
    # per-model sub-spaces: {gmf: {mf_dim: {grid: [...]}}, mlp: {...}}; crossed with `space`
    per_model: dict[str, dict[str, SearchDim]] = {}
    objective: ObjectiveConfig = Field(None, validate_default=True)  # type: ignore[assignment]
    pivots: list[list[str]] = []
    verdicts: VerdictsConfig | None = None
    # run each distinct configuration once instead of refusing grid points that repeat a run
    drop_duplicates: bool = Field(False, validate_default=True)
    # derived values (grid points) computed once; not part of the spec's identity
    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Same fields, same spec (the private cache of derived values does not count)."""
        if not isinstance(other, SweepSpec):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # dict fields: a spec is not hashable

    @classmethod
    def from_dict(cls, raw: Any, where: str = "<sweep>", *, derived_ok: bool = True) -> SweepSpec:
        """Validate a parsed sweep mapping fully; raise one SpecError with every problem, one per
        line, each naming its key path. `derived_ok`: drop the keys `to_json` derives (axes,
        expected_trials), so its output (sweep.json) gives the spec back."""
        if not isinstance(raw, dict):
            raise SpecError(f"{where}: expected a mapping of sweep keys at the top level "
                            f"(got {type(raw).__name__}); allowed keys: "
                            f"{', '.join(cls.model_fields)}")
        if derived_ok:
            raw = {k: v for k, v in raw.items() if k not in DERIVED_KEYS}
        for k in raw:  # pydantic's own text for an unknown key names no near miss
            if not isinstance(k, str):
                raise SpecError(f"{where}: {k!r}: keys must be text{hint(k, cls.model_fields)}")
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise format_problems(pydantic_lines(err, "", cls), where) from None

    @classmethod
    def from_yaml(
        cls, path: str | Path, *, output: str | None = None, data_source: str | None = None,
        drop_duplicates: bool | None = None, data: dict[str, Any] | None = None,
    ) -> SweepSpec:
        """Read a sweep YAML file, apply CLI overrides (output folder, data source file, the data
        flags as `data` keys, `--drop-duplicates`) and validate it fully; raise SpecError (every
        problem, one per line) before anything runs."""
        p = Path(path)
        raw = read_yaml(p)
        if isinstance(raw, dict):
            if output is not None:
                raw["output"] = output
            data = {**(data or {}), **({"source": data_source} if data_source is not None else {})}
            if data:
                block = raw.get("data")
                if block is None:
                    raw["data"] = data
                elif isinstance(block, dict):
                    raw["data"] = {**block, **data}
            if drop_duplicates is not None:
                raw["drop_duplicates"] = drop_duplicates
        return cls.from_dict(raw, str(p), derived_ok=False)

    # -- validators (in field order) ----------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, raw: Any) -> Any:
        return rules.prepared(raw)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _NAME.fullmatch(v) or set(v) == {"."}:
            raise ValueError(f"must be a slug of letters, digits, '_', '.', '-' (got {short(v)})")
        return v

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, v: Any) -> Any:
        if isinstance(v, rules.ProtocolConflict):
            raise ValueError("also searched in space.protocol; set one or the other")
        if v not in PROTOCOLS:
            raise ValueError(f"must be one of {', '.join(PROTOCOLS)} (got {short(v)})")
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        return _passed(v, rules.check_seeds(v))

    @field_validator("tune_per_model", mode="after")
    @classmethod
    def _tune_per_model(cls, v: TunePerModelConfig | None, info: ValidationInfo) -> Any:
        return _passed(v, rules.check_tuning(v, info.data.get("seeds"), info.data.get("search"))
                       if v is not None else [])

    @field_validator("max_concurrent_trials", mode="before")
    @classmethod
    def _max_concurrent_trials(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"must be an integer >= 1 or null (no limit) (got {short(v)})")
        return v

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, v: Any, info: ValidationInfo) -> Any:
        # runs/ is git-ignored: a sweep never dirties a checkout; results/ holds only what the
        # team publishes, written by an explicit --out results/<name>
        if v == "" and "name" in info.data:
            return f"runs/{info.data['name']}"
        if v == "":  # no name: the missing name is the problem to report
            return "runs/unnamed"
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"must be a non-empty folder path (got {short(v)})")
        return v

    @field_validator("storage_path", mode="before")
    @classmethod
    def _storage(cls, v: Any) -> Any:
        return _passed(v, rules.check_storage(v))

    @field_validator("fixed", mode="before")
    @classmethod
    def _fixed(cls, v: Any, info: ValidationInfo) -> Any:
        return dict(_passed(v, rules.check_run_params(v, "fixed", rules.base_values(info.data))))

    @field_validator("smoke", mode="before")
    @classmethod
    def _smoke(cls, v: Any, info: ValidationInfo) -> Any:
        base = rules.base_values(info.data)
        return {**SMOKE_SETTINGS, **_passed(v, rules.check_run_params(v, "smoke", base))}

    @field_validator("space", mode="before")
    @classmethod
    def _space(cls, v: Any, info: ValidationInfo) -> Any:
        return _passed(*rules.space_block(v, info.data))

    @field_validator("per_model", mode="before")
    @classmethod
    def _per_model(cls, v: Any, info: ValidationInfo) -> Any:
        return _passed(*rules.per_model_block(v, info.data))

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, v: Any, info: ValidationInfo) -> Any:
        return _passed(*rules.objective_block(v, info.data))

    @field_validator("pivots", mode="before")
    @classmethod
    def _pivots(cls, v: Any) -> Any:
        return _passed(v, rules.check_pivots(v))

    @field_validator("verdicts", mode="after")
    @classmethod
    def _verdicts(cls, v: VerdictsConfig | None, info: ValidationInfo) -> Any:
        return _passed(v, rules.verdict_lines(v and v.metric, info.data.get("protocol"),
                                              info.data.get("space", {})))

    @field_validator("drop_duplicates", mode="after")
    @classmethod
    def _cross_block_rules(cls, v: bool, info: ValidationInfo) -> bool:
        # the last field: every block validated so far is in info.data
        return _passed(v, rules.cross_block_lines(v, info.data))

    # -- what the sweep runs --------------------------------------------------------------------

    def base_config(self) -> dict[str, Any]:
        """The RunConfig values every trial shares: data, protocol, the fixed keys, and the
        objective as `select_metric` when it is a validation metric (interface 7)."""
        out = {"data": self.data.model_dump(), "protocol": self.protocol, **self.fixed}
        if self.objective.metric.startswith("val_"):
            out.setdefault("select_metric", self.objective.metric)
        return out

    def run_config(self, params: dict[str, Any]) -> RunConfig:
        """The trial's RunConfig: base values overlaid with Tune's sampled params (incl. seed).

        Accepts layers as "32,16,8" strings (as `param_space` emits them), numpy scalars and an
        enumerated grid point. Raises ocfb.config.ConfigError for a value the sweep file could
        not have produced."""
        values: dict[str, Any] = {"seed": self.seeds[0], **self.base_config()}
        params = dict(params)
        params.update(params.pop(GRID_POINT, None) or {})
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

    def sub_spaces(self) -> list[dict[str, Dim]]:
        """The search space of each model (one space without `per_model`)."""
        return search_space.sub_spaces(self.space, self.per_model, self.fixed)

    def grid_points(self) -> list[dict[str, Any]]:
        """The grid points the sweep runs, each once (duplicates dropped with drop_duplicates)."""
        if "points" not in self._cache:
            points = search_space.grid_points(self.sub_spaces())
            if self.drop_duplicates:
                base = {**self.base_config(), "seed": self.seeds[0]}
                dropped = {i for g in search_space.duplicate_groups(base, points) for i in g[1:]}
                points = [p for i, p in enumerate(points) if i not in dropped]
            self._cache["points"] = points
        return self._cache["points"]

    def distinct_configs(self) -> list[dict[str, Any]]:
        """The canonical config (keys that apply, seed left out) of every grid point run."""
        out = []
        for p in self.grid_points():
            canon = self.run_config(p).canonical()
            canon.pop("seed", None)
            out.append(canon)
        return out

    def enumerates_grid(self) -> bool:
        """True when Ray gets explicit grid points (per-model spaces, dropped duplicates)."""
        if self.search.algorithm == "optuna":
            return False
        if self.per_model:
            return True
        return self.drop_duplicates and len(self.grid_points()) < search_space.n_grid_points(
            self.sub_spaces())

    def values_of(self, key: str) -> list[tuple[str, Any]]:
        """(where, value) for every value a key takes: its searched values, else the fixed
        value, else RunConfig's default (for pre-flight checks against the data)."""
        places = search_space.dims_of(key, self.space, self.per_model)
        if places:
            return [(f"{p}.{d.kind}[{i}]", v) for p, d in places
                    for i, v in enumerate(d.candidates())]
        if key == "protocol":
            return [("protocol", self.protocol)]
        return [(f"fixed.{key}", self.base_config().get(key, RunConfig.model_fields[key].default))]

    def axes(self) -> list[str]:
        """Config keys that vary between trials: searched keys (file order), then seed."""
        keys = dict.fromkeys(k for s in [self.space, *self.per_model.values()] for k in s)
        out = [k for k in keys if any(d.n_values() != 1 for _, d in
                                      search_space.dims_of(k, self.space, self.per_model))]
        if self.per_model and "model" in self.space and "model" not in out:
            out.insert(0, "model")
        if len(self.seeds) > 1 or self.tune_per_model is not None:
            out.append("seed")
        if self.tune_per_model is not None:
            out.append("stage")  # STAGE_COLUMN: search or confirm
        return out

    def grid_size(self) -> int:
        """How many grid points the sweep runs (1 without grid dims)."""
        if self.enumerates_grid():
            return len(self.grid_points())
        return math.prod(len(d.candidates()) for d in self.space.values() if d.kind == "grid")

    def expected_trials(self) -> int | None:
        """How many trials the sweep runs (before early stopping).

        grid / random: num_samples x grid points x seeds; optuna: num_samples x seeds (Optuna
        draws every dim, grid ones included, so the grid does not multiply); tune-then-confirm:
        searched families x proposals x search seeds, plus families x confirmation seeds."""
        tpm = self.tune_per_model
        if tpm is not None:
            searched = sum(1 for m in self.families() if self.per_model.get(m))
            return (searched * tpm.proposals * len(self.seeds)
                    + len(self.families()) * len(tpm.confirm_seeds))
        n = self.search.num_samples * len(self.seeds)
        if self.search.algorithm == "optuna":
            return n
        return n * self.grid_size()

    def tune_num_samples(self) -> int:
        """The `num_samples` for `tune.TuneConfig` so that Ray runs `expected_trials()`."""
        if self.search.algorithm == "optuna":
            return self.search.num_samples * len(self.seeds)
        return self.search.num_samples

    def max_terms(self) -> int:
        """The largest term count any trial runs (ASHA's max_t on the term axis)."""
        return max(search_space.terms_values(self.fixed, self.sub_spaces()))

    def with_smoke(self) -> SweepSpec:
        """The `--smoke` version: smoke overrides become fixed (dropping searches over the same
        keys), one seed, num_samples capped at 2 and an ASHA grace period at the smoke terms."""
        raw = self.to_json()
        raw["fixed"] = {**self.fixed, **self.smoke}
        raw["space"] = {k: v for k, v in raw["space"].items() if k not in self.smoke}
        raw["per_model"] = {m: {k: v for k, v in sub.items() if k not in self.smoke}
                            for m, sub in raw["per_model"].items()}
        raw["search"]["num_samples"] = min(self.search.num_samples, 2)
        raw["seeds"] = list(self.seeds[:1])  # one seed: smoke checks plumbing, not statistics
        if self.tune_per_model is not None:
            # two proposals per family, one confirmation seed
            raw["tune_per_model"] = {"proposals": min(self.tune_per_model.proposals, 2),
                                     "confirm_seeds": self.tune_per_model.confirm_seeds[:1]}
        if self.scheduler.type == "asha":
            t = int(self.smoke.get("terms", self.max_terms()))
            if t < 1:
                raw["scheduler"] = {"type": "fifo"}
            elif t < self.scheduler.grace_period:
                raw["scheduler"]["grace_period"] = t
        return SweepSpec.from_dict(raw, f"{self.name} (smoke)")

    # -- tune-then-confirm ---------------------------------------------------------------------

    def families(self) -> list[str]:
        """The model families of the sweep (its model axis)."""
        return search_space.model_axis(self.space, self.fixed)

    def budget_label(self, model: str) -> str:
        """"searched, N proposals", or "fixed defaults" for a family without a sub-space (and
        for every trial outside tune-then-confirm)."""
        if self.tune_per_model is None or not self.per_model.get(model):
            return FIXED_BUDGET
        return f"searched, {self.tune_per_model.proposals} proposals"

    def trial_columns(self, cfg: RunConfig) -> dict[str, str]:
        """`config.stage` and `config.budget` of a tune-then-confirm trial (none otherwise): the
        stage follows from the seed (confirmation seeds are never search seeds), the budget
        from the model."""
        tpm = self.tune_per_model
        if tpm is None:
            return {}
        stage = "confirm" if cfg.seed in tpm.confirm_seeds else "search"
        return {STAGE_COLUMN: stage, BUDGET_COLUMN: self.budget_label(cfg.model)}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of the spec plus the derived `axes` and `expected_trials`: everything
        DIR/sweep.json needs; `from_dict` of it gives the spec back."""
        out = self.model_dump(mode="json", by_alias=True)
        if "protocol" in self.space:
            del out["protocol"]  # searched: the top-level default would contradict the axis
        out["axes"] = self.axes()
        out["expected_trials"] = self.expected_trials()
        return out


# -- reading a sweep file -------------------------------------------------------------------------


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


_FLOAT = re.compile(r"^[-+]?(?:\d[\d_]*)?\.?\d+[eE][-+]?\d+$")  # 1e-3, 2.5E+4: no dot needed
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """ " at line L, column C: what the parser found" (PyYAML's own text names no file)."""
    mark = getattr(err, "problem_mark", None)
    what = ", ".join(str(x) for x in (getattr(err, "context", None),
                                      getattr(err, "problem", None)) if x)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {what or ' '.join(str(err).split())}"


def read_yaml(p: Path) -> Any:
    """The parsed YAML of a sweep file; SpecError for a missing, binary or malformed file."""
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
    return raw


def load_sweep(path: str | Path, **overrides: Any) -> SweepSpec:
    """The sweep file at `path`, fully validated: `SweepSpec.from_yaml` (its keyword overrides:
    output, data_source, drop_duplicates, data)."""
    return SweepSpec.from_yaml(path, **overrides)
