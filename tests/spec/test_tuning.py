"""Tune-then-confirm sweep files: every family gets the same number of proposals on
validation, the confirmed configuration is the validation argmax, and confirmation seeds never
took part in the search. A bad `tune_per_model` block is refused naming what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocfb.config import RunConfig
from ocfb.data.interactions import from_pairs
from ocfb.runs import make_run
from suite.driver import choose, confirm_spec, search_specs
from suite.spec import BUDGET_COLUMN, STAGE_COLUMN, SpecError, SweepSpec
from suite.spec.vocabulary import BASELINE_SPACES


def _raw(**over: object) -> dict:
    raw = {
        "name": "tc",
        "data": {"source": "synthetic-influencer"},
        "fixed": {"terms": 2, "strategy": "static"},
        "space": {"model": {"grid": ["neumf", "popularity", "ease", "als"]}},
        "per_model": {"neumf": {"lr": {"loguniform": [1e-3, 1e-2]}}},
        "tune_per_model": {"proposals": 3, "confirm_seeds": [1, 2]},
        "seeds": [0],
        "search": {"algorithm": "optuna", "seed": 0},
    }
    raw.update(over)
    return raw


def _error(raw: dict) -> str:
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict(raw)
    return str(info.value)


# -- the two stages ------------------------------------------------------------------------------


def test_every_searched_family_gets_the_same_proposals_and_popularity_none() -> None:
    spec = SweepSpec.from_dict(_raw())
    # EASE and ALS get their own parameters' space by default; popularity has none
    assert {k: d.model_dump(by_alias=True) for k, d in spec.per_model["ease"].items()} == \
        BASELINE_SPACES["ease"]
    assert set(spec.per_model["als"]) == {"als_factors", "als_regularization", "als_alpha",
                                          "als_iterations"}
    stages = search_specs(spec)
    assert [s.name for s in stages] == ["tc-search-neumf", "tc-search-ease", "tc-search-als"]
    assert [s.expected_trials() for s in stages] == [3, 3, 3]
    assert all(s.seeds == [0] and s.search.algorithm == "optuna" for s in stages)
    # 3 searched families x 3 proposals x 1 search seed + 4 families x 2 confirmation seeds
    assert spec.expected_trials() == 9 + 8
    assert spec.trial_columns(spec.run_config({"model": "popularity", "seed": 1})) == {
        STAGE_COLUMN: "confirm", BUDGET_COLUMN: "fixed defaults"}
    assert spec.trial_columns(spec.run_config({"model": "ease", "l2": 3.0, "seed": 0})) == {
        STAGE_COLUMN: "search", BUDGET_COLUMN: "searched, 3 proposals"}


def test_an_empty_sub_space_opts_a_baseline_out_of_the_search() -> None:
    spec = SweepSpec.from_dict(_raw(per_model={"ease": {}, "als": {}}))
    assert search_specs(spec) == []
    assert spec.expected_trials() == 4 * 2
    assert spec.trial_columns(spec.run_config({"model": "ease", "seed": 2}))[BUDGET_COLUMN] == \
        "fixed defaults"


def test_smoke_keeps_two_proposals_and_one_confirmation_seed() -> None:
    smoke = SweepSpec.from_dict(_raw(tune_per_model={"proposals": 8,
                                                     "confirm_seeds": [5, 6, 7]})).with_smoke()
    assert smoke.tune_per_model is not None
    assert smoke.tune_per_model.proposals == 2 and smoke.tune_per_model.confirm_seeds == [5]


def _trials(rows: list[tuple[str, dict, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": f"t{i}", "status": status, "config.model": m,
                          STAGE_COLUMN: "search", "config.seed": seed,
                          **{f"config.{k}": v for k, v in vals.items()}, "best.val_hr@10": hr}
                         for i, (m, vals, seed, status, hr) in enumerate(rows)])


def test_choice_is_the_validation_argmax_averaged_over_search_seeds() -> None:
    spec = SweepSpec.from_dict(_raw(seeds=[0, 3], tune_per_model={"proposals": 2,
                                                                  "confirm_seeds": [1, 2]}))
    trials = _trials([
        # lr 0.002 has the best single trial (0.80) but the lower mean over seeds (0.65)
        ("neumf", {"lr": 0.002}, 0, "completed", 0.80),
        ("neumf", {"lr": 0.002}, 3, "completed", 0.50),
        ("neumf", {"lr": 0.005}, 0, "completed", 0.70),
        ("neumf", {"lr": 0.005}, 3, "completed", 0.68),
        # an early-stopped trial never wins, however high its partial record
        ("neumf", {"lr": 0.009}, 0, "stopped", 0.95),
        ("ease", {"l2": 10.0}, 0, "completed", 0.60),
        ("ease", {"l2": 500.0}, 0, "completed", 0.55),
    ])
    trials["config.als_factors"] = np.nan
    chosen = choose(trials, spec)
    assert chosen["neumf"] == {"lr": 0.005}
    assert chosen["ease"] == {"l2": 10.0}
    assert chosen["popularity"] == {}
    assert "als" not in chosen  # no completed search trial: not confirmed
    confirm = confirm_spec(spec, chosen)
    assert set(confirm.seeds).isdisjoint(spec.seeds)
    assert confirm.scheduler.type == "fifo" and confirm.expected_trials() == 3 * 2
    points = confirm.grid_points()
    assert points == [{"model": "neumf", "lr": 0.005}, {"model": "popularity"},
                      {"model": "ease", "l2": 10.0}]


def _clusters(seed: int = 0, n_users: int = 60, n_items: int = 30, k: int = 3) -> object:
    """Users in k taste clusters: 50 % of their cluster's items, 8 % of the others'."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        for i in range(n_items):
            if rng.random() < (0.5 if i % k == u % k else 0.08):
                users.append(u)
                items.append(i)
                times.append(rng.random())
    return from_pairs(users, items, times)


def test_ease_search_on_a_small_matrix_chooses_the_known_best_l2() -> None:
    """On the clustered matrix, l2 = 10 wins on validation full HR@10: 1 overfits the noise
    (0.542), 100 and 1000 drift towards co-occurrence counts (0.610), 10 gives 0.644."""
    raw = _raw(space={"model": {"grid": ["ease"]}},
               per_model={"ease": {"l2": {"choice": [1.0, 10.0, 100.0, 1000.0]}}},
               fixed={"negatives": 100, "n_candidates": 10, "full_ranking": "every"},
               tune_per_model={"proposals": 4, "confirm_seeds": [1, 2]},
               objective={"metric": "val_full_hr@10"})
    spec = SweepSpec.from_dict(raw)
    data = _clusters()
    rows = []
    for l2 in (1.0, 10.0, 100.0, 1000.0):
        rec = make_run(spec.run_config({"model": "ease", "l2": l2, "seed": 0}), data).step()
        rows.append(("ease", {"l2": l2}, 0, "completed", rec["val_full_hr@10"]))
    trials = _trials(rows).rename(columns={"best.val_hr@10": "best.val_full_hr@10"})
    assert trials["best.val_full_hr@10"].round(3).tolist() == [0.542, 0.644, 0.610, 0.610]
    chosen = choose(trials, spec)
    assert chosen == {"ease": {"l2": 10.0}}
    confirm = confirm_spec(spec, chosen)
    assert confirm.seeds == [1, 2] and not set(confirm.seeds) & set(spec.seeds)
    cfgs = [confirm.run_config({**p, "seed": s}) for p in confirm.grid_points()
            for s in confirm.seeds]
    assert [(c.model, c.l2, c.seed) for c in cfgs] == [("ease", 10.0, 1), ("ease", 10.0, 2)]
    assert all(isinstance(c, RunConfig) for c in cfgs)


# -- validation of the block ---------------------------------------------------------------------

BAD = {
    "overlap": (_raw(seeds=[0, 1], tune_per_model={"proposals": 2, "confirm_seeds": [1, 4]}),
                "tune_per_model.confirm_seeds: [1] also in seeds [0, 1]; the confirmation seeds "
                "must play no part in the search"),
    "zero-proposals": (_raw(tune_per_model={"proposals": 0, "confirm_seeds": [1]}),
                       "tune_per_model.proposals: Input should be greater than or equal to 1"),
    "no-confirm-seeds": (_raw(tune_per_model={"proposals": 2, "confirm_seeds": []}),
                         "tune_per_model.confirm_seeds: List should have at least 1 item"),
    "duplicate-confirm-seed": (_raw(tune_per_model={"proposals": 2, "confirm_seeds": [3, 3]}),
                               "tune_per_model.confirm_seeds[1]: duplicate seed 3"),
    "unknown-key": (_raw(tune_per_model={"proposals": 2, "confirm_seeds": [1], "seeds": [1]}),
                    "tune_per_model.seeds: unknown key; allowed keys: proposals, confirm_seeds"),
    "grid-search": (_raw(search={"algorithm": "grid"}),
                    "search.algorithm: tune_per_model needs random or optuna"),
    "num-samples": (_raw(search={"algorithm": "random", "num_samples": 4}),
                    "search.num_samples: 4 conflicts with tune_per_model.proposals (3 "
                    "configurations per family)"),
    "shared-space": (_raw(space={"model": {"grid": ["neumf", "ease"]},
                                 "lr": {"loguniform": [1e-3, 1e-2]}}, per_model={}),
                     "space.lr: with tune_per_model each family searches its own keys: put lr "
                     "under per_model.<model>"),
    "grid-in-family": (_raw(search={"algorithm": "random"},
                            per_model={"neumf": {"mf_dim": {"grid": [8, 16]}}}),
                       "per_model.neumf.mf_dim.grid: with tune_per_model each family draws the "
                       "same number of proposals; use choice"),
    "loop-objective": (_raw(objective={"metric": "train_loss"}),
                       "objective.metric: tune_per_model confirms each family's validation "
                       "argmax; 'train_loss' is not a validation metric"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tune_per_model_is_refused_naming_the_problem(case: str) -> None:
    raw, expected = BAD[case]
    assert expected in _error(raw)


def test_optuna_with_per_model_is_refused_only_without_tune_per_model() -> None:
    raw = _raw()
    del raw["tune_per_model"]
    raw["search"] = {"algorithm": "optuna", "num_samples": 3}
    assert "per_model: needs search.algorithm grid or random" in _error(raw)
    SweepSpec.from_dict(_raw())  # the same sub-spaces, one Optuna search per family: fine


def test_a_boolean_where_a_number_belongs_says_got_once() -> None:
    message = _error({"name": "t", "fixed": {"terms": True}})
    assert "fixed.terms: expected a number, got the boolean True" in message
    assert message.count("got") == 1
