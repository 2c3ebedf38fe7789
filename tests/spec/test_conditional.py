"""Sweep specs that a reviewer can trust: selection only on validation, no pseudo-replicates
(duplicates refused or dropped, per-model sub-spaces), wasted axes named, values and seeds in
range, and the select metric handed to every trial."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ocfb.config import RunConfig
from suite.spec import FIXED_KEYS, SEARCHABLE, SpecError, SweepSpec, load_sweep, param_space


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def _error(raw: dict) -> str:
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict(raw)
    return str(info.value)


# -- selection on validation -------------------------------------------------------------------

TEST_OBJECTIVE_SHAPES = {
    "holdout": {"protocol": "holdout"},
    "paper": {"protocol": "paper"},
    "protocol-axis": {"space": {"protocol": {"grid": ["paper", "holdout"]}}},
    "optuna": {"search": {"algorithm": "optuna", "num_samples": 4},
               "space": {"lr": {"loguniform": [1e-4, 1e-2]}}},
    "asha": {"scheduler": {"type": "asha", "grace_period": 1}, "fixed": {"terms": 3}},
    "random": {"search": {"algorithm": "random"}, "space": {"threshold": {"uniform": [0.3, 0.9]}}},
}


@pytest.mark.parametrize("shape", sorted(TEST_OBJECTIVE_SHAPES))
@pytest.mark.parametrize("metric", ["test_auc", "test_hr@10", "test_full_ndcg@20"])
def test_a_test_objective_is_refused_in_every_shape(shape, metric):
    raw = {"name": "t", **TEST_OBJECTIVE_SHAPES[shape], "objective": {"metric": metric}}
    msg = _error(raw)
    assert f"objective.metric: {metric!r} is a test metric" in msg
    assert f"(e.g. {metric.replace('test_', 'val_')!r})" in msg
    allowed = msg.split("allowed: ")[1].split(", ")
    assert allowed and not any(m.startswith("test_") for m in allowed)


def test_default_objectives_are_validation_metrics_and_reach_the_trials():
    assert SweepSpec.from_dict({"name": "t", "protocol": "paper"}).objective.metric == "val_auc"
    both = SweepSpec.from_dict({"name": "t", "space": {"protocol": {"grid": ["paper",
                                                                             "holdout"]}}})
    assert both.objective.metric == "val_auc"  # the validation metric both protocols produce
    for protocol in ("paper", "holdout"):
        assert both.run_config({"protocol": protocol}).select_metric == "val_auc"
    spec = SweepSpec.from_dict({"name": "t", "objective": {"metric": "val_ndcg@20"}})
    assert spec.run_config({}).select_metric == "val_ndcg@20"
    assert spec.run_config({}).selection_metric == "val_ndcg@20"
    # a loop metric ranks trials but is no validation metric: the loop keeps its default
    loss = SweepSpec.from_dict({"name": "t", "objective": {"metric": "train_loss"}})
    assert loss.objective.mode == "min" and loss.run_config({}).select_metric is None
    msg = _error({"name": "t", "fixed": {"select_metric": "val_auc"}})
    assert "fixed.select_metric: 'val_auc' differs from objective.metric 'val_hr@10'" in msg


def test_full_ranking_objective_needs_every_term():
    raw = {"name": "t", "objective": {"metric": "val_full_hr@10"}}
    msg = _error(raw)  # the default schedule is `selected`
    assert "needs fixed.full_ranking: every" in msg and "full_ranking 'selected'" in msg
    spec = SweepSpec.from_dict({**raw, "fixed": {"full_ranking": "every"}})
    assert spec.run_config({}).select_metric == "val_full_hr@10"


# -- duplicates and conditional spaces ---------------------------------------------------------

CROSS = {"name": "t", "space": {"model": {"grid": ["gmf", "mlp"]},
                                "mf_dim": {"grid": [4, 8, 16]}}, "seeds": [0, 1]}


def test_crossing_mf_dim_with_mlp_is_refused_naming_the_duplicates():
    msg = _error(CROSS)
    lines = msg.splitlines()
    # gmf x 3 sizes are distinct; mlp x 3 sizes are one run: 2 of 6 points repeat it
    assert "space: 2 of 6 grid points repeat another run" in lines[0]
    assert "per_model" in lines[0] and "--drop-duplicates" in lines[0]
    assert lines[1].endswith("space: model=mlp: mf_dim=4 and mf_dim=8 are the same run (3 such "
                             "points): mf_dim (the GMF branch) does not apply to mlp")
    assert len(lines) == 2


def test_drop_duplicates_keeps_exactly_the_distinct_runs(tmp_path):
    spec = SweepSpec.from_dict({**CROSS, "drop_duplicates": True})
    assert spec.grid_points() == [{"model": "gmf", "mf_dim": 4}, {"model": "gmf", "mf_dim": 8},
                                  {"model": "gmf", "mf_dim": 16}, {"model": "mlp", "mf_dim": 4}]
    assert spec.expected_trials() == 4 * 2
    configs = spec.distinct_configs()
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 4
    assert "mf_dim" not in configs[3]  # canonical: mlp never reads mf_dim
    # the CLI flag (load_sweep's drop_duplicates) does the same as the file key
    path = _write(tmp_path, json.dumps(CROSS))
    assert load_sweep(path, drop_duplicates=True).expected_trials() == 8
    with pytest.raises(SpecError, match="repeat another run"):
        load_sweep(path)


def test_per_model_sub_spaces_enumerate_each_model_with_its_own_keys():
    raw = {
        "name": "t", "seeds": [0, 1],
        "space": {"model": {"grid": ["gmf", "mlp", "ease"]}, "negatives": {"grid": [100, 200]}},
        "per_model": {"gmf": {"mf_dim": {"grid": [4, 8]}},
                      "mlp": {"user_dim": {"grid": [8, 16]}, "item_dim": {"grid": [8, 16]}},
                      "ease": {"l2": {"grid": [10.0, 100.0]}}},
    }
    # EASE under holdout never uses the drawn negatives: its negatives axis repeats runs
    assert "model=ease, l2=10.0: negatives=100 and negatives=200 are the same run" in _error(raw)
    spec = SweepSpec.from_dict({**raw, "drop_duplicates": True})
    points = spec.grid_points()
    # gmf 2 sizes x 2 negatives + mlp 4 sizes x 2 negatives + ease 2 l2 values
    assert len(points) == 2 * 2 + 4 * 2 + 2
    assert spec.expected_trials() == len(points) * 2
    assert {p["model"] for p in points if "l2" in p} == {"ease"}
    cfg = spec.run_config({"grid_point": {"model": "mlp", "user_dim": 16, "item_dim": 8,
                                          "negatives": 100}, "seed": 1})
    assert (cfg.model, cfg.user_dim, cfg.item_dim, cfg.negatives, cfg.seed) == (
        "mlp", 16, 8, 100, 1)
    assert spec.axes() == ["model", "negatives", "mf_dim", "user_dim", "item_dim", "l2", "seed"]
    assert spec.values_of("mf_dim") == [("per_model.gmf.mf_dim.grid[0]", 4),
                                        ("per_model.gmf.mf_dim.grid[1]", 8)]


def test_per_model_problems_are_named():
    base = {"name": "t", "space": {"model": {"grid": ["gmf", "mlp"]}}}
    msg = _error({**base, "per_model": {"neumf": {"mf_dim": {"grid": [4]}},
                                        "mlp": {"mf_dim": {"grid": [4, 8]}},
                                        "gmf": {"mf_dim": {"grid": [4, -1]}}}})
    assert "per_model.neumf: 'neumf' is not a model of this sweep; space.model has: gmf, mlp" \
        in msg
    assert "per_model.mlp.mf_dim: mf_dim (the GMF branch) does not apply to mlp" in msg
    assert "per_model.gmf.mf_dim.grid[1]: Input should be greater than or equal to 1" in msg
    msg = _error({**base, "search": {"algorithm": "optuna"},
                  "per_model": {"gmf": {"mf_dim": {"choice": [4, 8]}}}})
    assert "per_model: needs search.algorithm grid or random" in msg
    msg = _error({"name": "t", "space": {"model": {"grid": ["gmf"]}, "mf_dim": {"grid": [4]}},
                  "per_model": {"gmf": {"mf_dim": {"grid": [8]}}}})
    assert "per_model.gmf.mf_dim: also searched in space.mf_dim" in msg


def test_threshold_searched_with_dns_only_is_refused():
    msg = _error({"name": "t", "fixed": {"strategy": "dns"}, "search": {"algorithm": "random"},
                  "space": {"threshold": {"uniform": [0.3, 0.9]}}})
    assert "space.threshold: threshold does not apply to dns, and no run of this sweep uses " \
           "it" in msg
    # with a strategy that reads it, searching the threshold is fine (dns repeats are dropped)
    spec = SweepSpec.from_dict({"name": "t", "drop_duplicates": True, "space": {
        "strategy": {"grid": ["ocfb", "dns"]}, "threshold": {"grid": [0.3, 0.6]}}})
    assert len(spec.grid_points()) == 3


# -- values in range -----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ({"fixed": {"lr": float("inf")}}, "fixed.lr: Input should be a finite number"),
    ({"space": {"threshold": {"grid": [0.5, float("nan")]}}},
     "space.threshold.grid[1]: Input should be a finite number"),
    ({"search": {"algorithm": "random"}, "space": {"lr": {"uniform": [0.001, float("inf")]}}},
     "space.lr.uniform[1]: Input should be a finite number"),
    ({"resources": {"cpus": float("inf")}}, "resources.cpus: Input should be a finite number"),
    ({"seeds": [0, 2**63]}, "seeds[1]: Input should be less than or equal to 9223372036854775807"),
    ({"search": {"seed": 2**32}}, "search.seed: Input should be less than or equal to 4294967295"),
    ({"checkpoint_every": 0}, "checkpoint_every: Input should be greater than or equal to 1"),
    ({"checkpoint_interval_s": -1}, "checkpoint_interval_s: Input should be greater than or "
                                    "equal to 0"),
    ({"checkpoint_interval_s": float("inf")}, "checkpoint_interval_s: Input should be a finite"),
    ({"data": {"data_seed": -1}}, "data.data_seed: Input should be greater than or equal to 0"),
])
def test_non_finite_and_out_of_range_values_are_named(raw, expected):
    assert expected in _error({"name": "t", **raw})


def test_seed_bounds_and_checkpoint_every_accepted():
    spec = SweepSpec.from_dict({"name": "t", "seeds": [0, 2**63 - 1], "checkpoint_every": 3})
    assert spec.run_config({"seed": 2**63 - 1}).seed == 2**63 - 1
    assert spec.checkpoint_every == 3 and SweepSpec.from_dict({"name": "t"}).checkpoint_every == 1
    assert SweepSpec.from_dict({"name": "t"}).checkpoint_interval_s == 30.0
    assert SweepSpec.from_dict(spec.to_json()) == spec


def test_keys_follow_run_config():
    """A RunConfig field is a fixed key, and searchable unless it is placement or evaluation."""
    fields = set(RunConfig.model_fields)
    assert set(FIXED_KEYS) == fields - {"data", "protocol", "seed"}
    assert set(SEARCHABLE) == fields - {"data", "seed", "device", "select_metric", "full_ranking"}


def test_random_search_over_per_model_spaces_replicates_each_draw_over_the_seeds():
    """As the sweep's BasicVariantGenerator(constant_grid_search=True) draws them: one config
    per grid point and sample, the same draws for every seed (paired replicates)."""
    from ray.tune.search.variant_generator import generate_variants

    spec = SweepSpec.from_dict({
        "name": "t", "seeds": [0, 1, 2], "search": {"algorithm": "random", "num_samples": 1},
        "space": {"model": {"grid": ["gmf", "mlp"]}, "lr": {"loguniform": [1e-4, 1e-2]}},
        "per_model": {"gmf": {"mf_dim": {"grid": [4, 8]}},
                      "mlp": {"user_dim": {"choice": [8, 16, 32, 64]}}}})
    variants = [c for _, c in generate_variants(param_space(spec), constant_grid_search=True,
                                                random_state=0)]
    assert len(variants) == spec.expected_trials() == 3 * 3
    by_seed: dict[int, list[str]] = {}
    for v in variants:
        cfg = spec.run_config(v).canonical()
        assert cfg["data"].pop("data_seed") == cfg["seed"]  # the data follows the replicate
        by_seed.setdefault(cfg.pop("seed"), []).append(json.dumps(cfg, sort_keys=True))
    assert by_seed[0] == by_seed[1] == by_seed[2]
    assert len(set(by_seed[0])) == 3
    models = [json.loads(c)["model"] for c in by_seed[0]]
    assert sorted(models) == ["gmf", "gmf", "mlp"]
