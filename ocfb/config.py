"""Typed, validated configuration of one OCF-B run (data, model, loop, protocol).

Loaded once, strictly: an unknown key or a value out of range is an error naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ocfb.names import (
    BASELINE_MODELS,
    RATIO,
    ErrorName,
    FullRankingSchedule,
    ModelName,
    ProtocolName,
    StrategyName,
    default_objective,
)

# numpy and torch seeds must fit a signed 64-bit integer (a larger one overflows inside torch).
MAX_SEED = 2**63 - 1


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""


class _Strict(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `threshold: .nan` is refused at validation, not found
    # as a diverged trial minutes later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # lax mode turns YAML's `terms: true` into terms=1 without a word; a boolean is never
        # meant as a number
        if isinstance(v, bool) and info.field_name is not None:
            ann = cls.model_fields[info.field_name].annotation
            args = get_args(ann) or (ann,)
            if bool not in args and any(a in (int, float) for a in args):
                raise ValueError(f"expected a number, got the boolean {v!r}")
        return v


class DataConfig(_Strict):
    """Where the interactions come from: the built-in generator or a file."""

    source: str = "synthetic-influencer"
    format: str = "auto"
    user_col: str = "user"
    item_col: str = "item"
    timestamp_col: str | None = None
    rating_col: str | None = None
    min_rating: float | None = None
    sep: str | None = None
    """Column delimiter of a CSV/TSV file (None: the format's own, "," or tab)."""
    string_ids: bool = False
    """Read id columns as text even when most values are numbers (else a stray word is refused)."""
    # synthetic-influencer sizes (the paper's data shape by default)
    n_users: int = Field(407, ge=2)
    n_items: int = Field(462, ge=2)
    n_interactions: int = Field(2000, ge=2)
    # None: follow the run's `seed`, so replicates vary the generated data too (set it to fix
    # the data across seeds).
    data_seed: int | None = Field(None, ge=0, le=MAX_SEED)

    @property
    def is_synthetic(self) -> bool:
        """True for the built-in generator."""
        return self.source == "synthetic-influencer"

    def key(self) -> tuple:
        """The identity of the dataset: its source and load settings (two configs with the
        same key load the same interactions, so a sweep loads and ships it once)."""
        return (self.source, tuple(sorted(self.load_kwargs().items())))

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `ocfb.data.load_source`."""
        if self.is_synthetic:
            return {
                "n_users": self.n_users,
                "n_items": self.n_items,
                "n_interactions": self.n_interactions,
                "seed": 0 if self.data_seed is None else self.data_seed,
            }
        kw: dict[str, Any] = {"format": self.format}
        if self.format not in ("movielens-100k", "movielens-1m", "movielens-csv"):
            kw.update(user_col=self.user_col, item_col=self.item_col)
            if self.timestamp_col:
                kw["timestamp_col"] = self.timestamp_col
            if self.rating_col:
                kw["rating_col"] = self.rating_col
            if self.sep:
                kw["sep"] = self.sep
        if self.string_ids:
            kw["string_ids"] = True
        if self.min_rating is not None:
            kw["min_rating"] = self.min_rating
        return kw

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.is_synthetic and self.n_interactions > self.n_users * self.n_items:
            raise ValueError(
                f"n_interactions={self.n_interactions} exceeds n_users*n_items="
                f"{self.n_users * self.n_items}"
            )
        return self


class RunConfig(_Strict):
    """One OCF-B run: model, negatives, threshold, terms, strategy, protocol, training."""

    data: DataConfig = DataConfig()
    protocol: ProtocolName = "holdout"
    # gmf / mlp / neumf train in the OCF-B loop; popularity / ease / als are reference baselines
    # fitted once (one record, term 0), scored by the same protocol code on the same splits.
    model: ModelName = "neumf"
    # GMF branch size (He et al. 2017 "predictive factors").
    mf_dim: int = Field(8, ge=1, le=1024)
    # MLP embedding sizes, set separately as the paper varies them separately.
    user_dim: int = Field(32, ge=1, le=1024)
    item_dim: int = Field(32, ge=1, le=1024)
    # MLP hidden tower widths after the concatenated embeddings (NCF's [64,32,16,8] with
    # 32-d embeddings is user_dim=item_dim=32, layers=[32,16,8]).
    layers: tuple[int, ...] = (32, 16, 8)
    # absolute count (int) or a ratio of training positives ("4x").
    negatives: int | str = 2000
    threshold: float = Field(0.5, ge=0.0)
    terms: int = Field(15, ge=0, le=10_000)
    error: ErrorName = "prob"
    strategy: StrategyName = "ocfb"
    # random-replace: None = as many as ocfb would replace at this threshold; else this fraction.
    replace_fraction: float | None = Field(None, gt=0.0, le=1.0)
    # ocfb-resample: rounds of redrawing the slots whose fresh draw is a suspected positive.
    max_redraws: int = Field(3, ge=0, le=100)
    # dns: candidate cells drawn per negative slot; the highest-scored is kept (Zhang et al. 2013).
    dns_candidates: int = Field(5, ge=2, le=1000)
    # pop / pop-ocfb: P(negative cell) ∝ (its item's count among training positives) ** pop_alpha;
    # 0 = uniform, 0.75 = word2vec's (Mikolov et al. 2013), 1 = proportional.
    pop_alpha: float = Field(0.75, ge=0.0, le=10.0)
    # srns (Ding et al. 2020, per slot; ocfb/strategies.py says why): memory cells per negative
    # slot, fresh uniform cells entering each slot's memory per term, weight of the score's
    # standard deviation, and the terms over which that weight ramps from 0 to srns_alpha.
    srns_memory: int = Field(3, ge=2, le=100)
    srns_candidates: int = Field(1, ge=1, le=99)
    srns_alpha: float = Field(1.0, ge=0.0, le=100.0)
    srns_warmup: int = Field(1, ge=0, le=10_000)
    refit: Literal["warm", "fresh"] = "warm"
    exclude_removed: bool = True
    epochs: int = Field(20, ge=1, le=10_000)
    epochs_per_term: int = Field(5, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=10_000_000)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = "cpu"
    # paper protocol: fraction of the labeled set held out (stratified), as the paper's 70/30.
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    # paper protocol: fraction of the labeled *training* side carved out (stratified, seeded) as
    # validation, so selection never looks at the test part.
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    # holdout protocol: "loo" = one held-out positive per user (latest by timestamp, else random);
    # "fraction" = a seeded random fraction of each user's positives.
    split: Literal["loo", "fraction"] = "loo"
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    n_candidates: int = Field(99, ge=1)
    # full ranking over all items is exact but costs n_eval_users x n_items scores per term:
    # every term, at the validation-selected and final terms ("selected"), final only, or off.
    full_ranking: FullRankingSchedule = "selected"
    # the validation metric the loop selects on (best weights kept for `full_ranking: selected`);
    # None = the protocol's default (`ocfb.names.default_objective`). A sweep sets its objective.
    select_metric: str | None = None
    # divergence: a term whose training loss exceeds this is `diverged`; None = 10x the loss of
    # an untrained model (ln 2 = 0.69 for a logit of 0), i.e. 6.9.
    max_loss: float | None = Field(None, gt=0.0)
    # baselines: EASE's L2 weight (Steck 2019 tunes it in the hundreds for ML-size data).
    l2: float = Field(500.0, gt=0.0)
    # baselines: implicit's ALS (Hu et al. 2008) factors, sweeps, regularisation, confidence.
    # 16 factors / reg 1.0, chosen on validation: ML-100K val HR@10 0.690 vs 0.637 at implicit's
    # 64 / 0.01, which also overfits the paper-shape data to AUC 0.50 (16 / 1.0: 0.73).
    als_factors: int = Field(16, ge=1, le=4096)
    als_iterations: int = Field(15, ge=1, le=1000)
    als_regularization: float = Field(1.0, ge=0.0)
    als_alpha: float = Field(1.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _data_seed_follows_seed(cls, values: Any) -> Any:
        # Replicates must vary the generated data, not only split and init: an unset data_seed
        # takes the run's seed (recorded explicitly, so a saved config reproduces the data).
        if not isinstance(values, dict):
            return values
        data = values.get("data", {})
        if isinstance(data, DataConfig):
            data = data.model_dump()
        if isinstance(data, dict) and data.get("data_seed") is None:
            seed = values.get("seed", 0)
            if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED:
                values = {**values, "data": {**data, "data_seed": seed}}
        return values

    @field_validator("full_ranking", mode="before")
    @classmethod
    def _full_ranking(cls, v: Any) -> Any:
        # older configs and sweep.json files wrote a bool
        if v is True:
            return "every"
        if v is False:
            return "off"
        return v

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, v: Any) -> Any:
        if isinstance(v, int):
            v = (v,)
        if isinstance(v, list | tuple):
            if len(v) == 0 or any(not isinstance(x, int) or x < 1 for x in v):
                raise ValueError("layers must be a non-empty list of positive integers")
            return tuple(v)
        raise ValueError("layers must be a list of positive integers, e.g. [32, 16, 8]")

    @field_validator("negatives")
    @classmethod
    def _negatives(cls, v: int | str) -> int | str:
        if isinstance(v, bool):
            raise ValueError("negatives must be a positive integer or a ratio like '4x'")
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"negatives must be >= 1 (got {v})")
            return v
        m = RATIO.match(v)
        if not m or float(m.group(1)) <= 0:
            raise ValueError(
                "negatives must be a positive integer or a ratio of positives like '4x' "
                f"(got {v!r})"
            )
        return v.strip()

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", v):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto' (got {v!r})")
        return v

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.srns_candidates >= self.srns_memory:
            raise ValueError(
                f"srns_candidates={self.srns_candidates} must be < srns_memory="
                f"{self.srns_memory}: each term's fresh cells replace memory cells other than "
                "the slot's current negative"
            )
        if self.error in ("prob", "residual") and self.threshold > 1.0:
            raise ValueError(
                f"threshold={self.threshold} is out of range for error={self.error!r}: "
                "a probability error lies in [0, 1]"
            )
        return self

    @field_validator("select_metric")
    @classmethod
    def _select_metric(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("val_"):
            raise ValueError(
                f"select_metric must be a validation metric (val_...), got {v!r}: selecting on "
                "test reports an optimistic number"
            )
        return v

    @property
    def selection_metric(self) -> str:
        """The validation metric this run selects its term on."""
        return self.select_metric or default_objective(self.protocol)

    @property
    def is_baseline(self) -> bool:
        """True for the reference baselines (no negatives, no terms)."""
        return self.model in BASELINE_MODELS

    def n_negatives(self, n_positives: int) -> int:
        """Resolve `negatives` to an absolute count given the number of positives it scales."""
        if isinstance(self.negatives, int):
            return self.negatives
        ratio = float(RATIO.match(self.negatives).group(1))  # type: ignore[union-attr]
        return max(1, int(round(ratio * n_positives)))

    def inapplicable_keys(self) -> dict[str, str]:
        """Keys whose value changes nothing this run computes, each with the reason (interface 7).

        Two configs that differ only in these keys are the same run: a sweep that crosses them
        makes bit-identical pseudo-replicates. Conservative on purpose: a key is listed only when
        no code path of this model / strategy / protocol reads it.
        """
        return _inapplicable_keys(self)

    def canonical(self) -> dict[str, Any]:
        """The keys that apply to this run, as plain JSON values (`inapplicable_keys` dropped).

        Equal canonical dicts mean the same run; sweeps dedupe and summaries group on it.
        """
        out = self.model_dump(mode="json")
        for k in self.inapplicable_keys():
            out.pop(k, None)
        if not self.data.is_synthetic:  # the generator's sizes say nothing about a file
            for k in ("n_users", "n_items", "n_interactions", "data_seed"):
                out["data"].pop(k, None)
        return out


_ALS_KEYS = ("als_factors", "als_iterations", "als_regularization", "als_alpha")
# Keys only the OCF-B loop reads; a baseline fits once and never sees them.
_LOOP_KEYS = (
    "mf_dim", "user_dim", "item_dim", "layers", "threshold", "terms", "error", "strategy",
    "replace_fraction", "max_redraws", "dns_candidates", "refit", "exclude_removed", "epochs",
    "epochs_per_term", "batch_size", "lr", "weight_decay", "select_metric", "max_loss",
    "pop_alpha", "srns_memory", "srns_candidates", "srns_alpha", "srns_warmup",
)
# Strategy parameters and the strategies that read them.
_STRATEGY_PARAMS: dict[str, tuple[str, ...]] = {
    "replace_fraction": ("random-replace",), "max_redraws": ("ocfb-resample", "pop-ocfb"),
    "dns_candidates": ("dns",), "pop_alpha": ("pop", "pop-ocfb"),
    **{k: ("srns",) for k in ("srns_memory", "srns_candidates", "srns_alpha", "srns_warmup")},
}


def _inapplicable_keys(cfg: RunConfig) -> dict[str, str]:
    """RunConfig.inapplicable_keys: the model's, the strategy's and the protocol's rules."""
    m = cfg.model
    if cfg.is_baseline:
        out = {k: f"{m} is a baseline fitted once (no OCF-B loop)" for k in _LOOP_KEYS}
        if cfg.protocol == "holdout":
            out["negatives"] = f"{m} under holdout never uses the drawn negatives"
    else:
        out = _strategy_keys(cfg)
        if m not in ("gmf", "neumf"):
            out["mf_dim"] = f"mf_dim (the GMF branch) does not apply to {m}"
        if m not in ("mlp", "neumf"):
            for k in ("user_dim", "item_dim", "layers"):
                out[k] = f"{k} (the MLP branch) does not apply to {m}"
    if m != "ease":
        out["l2"] = f"l2 (EASE's weight) does not apply to {m}"
    if m != "als":
        out.update({k: f"{k} does not apply to {m}" for k in _ALS_KEYS})
    unused = (("test_fraction", "val_fraction") if cfg.protocol == "holdout"
              else ("split", "holdout_fraction", "n_candidates"))
    out.update({k: f"{k} does not apply to protocol {cfg.protocol}" for k in unused})
    return out


def _strategy_keys(cfg: RunConfig) -> dict[str, str]:
    """The strategy parameters a neural run's strategy never reads."""
    out: dict[str, str] = {}
    s = cfg.strategy
    uses_threshold = s in ("ocfb", "ocfb-resample", "pop-ocfb") or (
        s == "random-replace" and cfg.replace_fraction is None)
    if not uses_threshold:
        why = "random-replace with replace_fraction set" if s == "random-replace" else s
        out["threshold"] = f"threshold does not apply to {why}"
    for key, owners in _STRATEGY_PARAMS.items():
        if s not in owners:
            out[key] = f"{key} does not apply to strategy {s}"
    if s not in ("ocfb", "ocfb-resample", "pop-ocfb"):  # only these add to the removed set
        out["exclude_removed"] = f"exclude_removed does not apply to strategy {s}"
    return out


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: the dotted key path, what is wrong, and the value given."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{path or '<root>'}: {msg}")
    return "\n".join(lines)


def make_run_config(values: dict[str, Any], prefix: str = "") -> RunConfig:
    """Build a RunConfig, turning pydantic's errors into a ConfigError that names the keys."""
    try:
        return RunConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a run config from YAML (a mapping of RunConfig keys), apply overrides, validate."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys at the top level")
    raw.update(overrides or {})
    return make_run_config(raw)
