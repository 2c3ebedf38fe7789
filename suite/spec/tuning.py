"""Tune-then-confirm: every model family searched with the same budget, then confirmed.

A sweep file with `tune_per_model: {proposals: N, confirm_seeds: [...]}` runs two stages
(Dacrema et al. 2019, Rendle et al. 2020: an untuned baseline makes any comparison with a tuned
model meaningless; DaisyRec 2.0 gives every model the same Bayesian budget):

1. search: each family of the model axis with a sub-space (`per_model.<model>`) gets its own
   search of N proposals (`search.algorithm` random or optuna) on the sweep's `seeds`;
   a family without one (popularity) is not searched: its budget is "fixed defaults";
2. confirm: each family's chosen configuration (the validation argmax of the objective, mean
   over the search seeds) runs on `confirm_seeds`, which played no part in the search.

EASE and ALS get a default sub-space (`BASELINE_SPACES`) unless the file gives one (`{}`
opts out). The stage of a trial follows from its seed (the two seed lists are disjoint), its
budget from its model: `trial_columns` gives both as the results columns `config.stage` and
`config.budget`. This module derives each stage's own `SweepSpec`; `suite.confirm` runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ocfb.config import RunConfig
from suite.spec.dims import Dim, Section

if TYPE_CHECKING:
    from suite.spec.model import SweepSpec

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


class TunePerModelConfig(Section):
    """Equal tuning budget per model family, then a confirmation on fresh seeds."""

    # configurations each searched family is given (Optuna proposals or random draws)
    proposals: int = Field(ge=1)
    # seeds the chosen configurations run on; disjoint from the search's `seeds`
    confirm_seeds: list[int] = Field(min_length=1)


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


def check_tuning(tpm: TunePerModelConfig, seeds: list[int] | None, search: Any) -> list[str]:
    """Confirmation seeds new to the search, a search that draws proposals, no num_samples."""
    from suite.spec.rules import check_seeds

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


def families(spec: SweepSpec) -> list[str]:
    """The model families a tune-then-confirm sweep compares (its model axis)."""
    from suite.spec.rules import model_axis

    return model_axis(spec.space, spec.fixed)


def budget_label(spec: SweepSpec, model: str) -> str:
    """"searched, N proposals", or "fixed defaults" for a family without a sub-space."""
    if spec.tune_per_model is None or not spec.per_model.get(model):
        return FIXED_BUDGET
    return f"searched, {spec.tune_per_model.proposals} proposals"


def trial_columns(spec: SweepSpec, cfg: RunConfig) -> dict[str, str]:
    """`config.stage` and `config.budget` of a trial (none outside tune-then-confirm)."""
    tpm = spec.tune_per_model
    if tpm is None:
        return {}
    stage = "confirm" if cfg.seed in tpm.confirm_seeds else "search"
    return {STAGE_COLUMN: stage, BUDGET_COLUMN: budget_label(spec, cfg.model)}


def expected_trials(spec: SweepSpec) -> int:
    """Search trials (proposals x search seeds per searched family) plus confirmation trials
    (families x confirm seeds)."""
    tpm = spec.tune_per_model
    assert tpm is not None
    fams = families(spec)
    searched = sum(1 for m in fams if spec.per_model.get(m))
    return searched * tpm.proposals * len(spec.seeds) + len(fams) * len(tpm.confirm_seeds)


def _raw(spec: SweepSpec) -> dict[str, Any]:
    raw = spec.to_json()
    for k in ("axes", "expected_trials", "tune_per_model"):
        raw.pop(k, None)
    return raw


def search_specs(spec: SweepSpec) -> list[SweepSpec]:
    """Stage 1: one flat sweep per searched family (its sub-space at the top level, the model
    pinned as a one-value grid so every trial's config names it), `proposals` samples each."""
    tpm = spec.tune_per_model
    assert tpm is not None
    out = []
    for m in families(spec):
        sub = spec.per_model.get(m)
        if not sub:
            continue
        raw = _raw(spec)
        raw["name"] = f"{spec.name}-search-{m}"
        raw["fixed"] = {k: v for k, v in raw["fixed"].items() if k not in sub and k != "model"}
        raw["space"] = {"model": {"grid": [m]}, **raw["per_model"][m]}
        raw["per_model"] = {}
        raw["search"] = {**raw["search"], "num_samples": tpm.proposals}
        out.append(type(spec).from_dict(raw, f"{spec.name} (search {m})"))
    return out


def confirm_spec(spec: SweepSpec, chosen: dict[str, dict[str, Any]]) -> SweepSpec:
    """Stage 2: a grid of each family's chosen configuration x the confirmation seeds, run to
    the end (FIFO: equal budget, no early stopping). `chosen`: model -> its searched values."""
    tpm = spec.tune_per_model
    assert tpm is not None
    raw = _raw(spec)
    models = list(chosen)
    raw["name"] = f"{spec.name}-confirm"
    raw["fixed"] = {k: v for k, v in raw["fixed"].items() if k != "model"}
    raw["space"] = {"model": {"grid": models}}
    raw["per_model"] = {m: {k: {"grid": [v]} for k, v in vals.items()}
                        for m, vals in chosen.items() if vals}
    raw["seeds"] = list(tpm.confirm_seeds)
    raw["search"] = {"algorithm": "grid", "num_samples": 1, "seed": spec.search.seed}
    raw["scheduler"] = {"type": "fifo"}
    return type(spec).from_dict(raw, f"{spec.name} (confirm)")


def smoke_tuning(tpm: TunePerModelConfig) -> dict[str, Any]:
    """`--smoke`: two proposals per family, one confirmation seed."""
    return {"proposals": min(tpm.proposals, 2), "confirm_seeds": list(tpm.confirm_seeds[:1])}
