"""Sweep files: the shipped configs load with the trial counts worked out by hand, the spec maps
to RunConfigs and Ray param spaces, and malformed files fail before anything runs, naming the
key path and the allowed values."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ocfb.config import ConfigError, RunConfig
from ocfb.names import SMOKE_SETTINGS as DEFAULT_SMOKE
from ocfb.names import STRATEGIES, default_objective
from suite.driver import search_specs
from suite.spec import (
    SpecError,
    SweepSpec,
    load_sweep,
    param_space,
    produced_metrics,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
ML_PLACEHOLDER = "/data/ml-100k/u.data"

# Trials per shipped config, worked out by hand from the files.
EXPECTED = {
    # (2 models x mf_dim x negatives x threshold + 3 baselines, repeats dropped) x 3 seeds
    "quickstart": (2 * 2 * 2 * 2 + 3) * 3,
    # (per-model sizes (GMF 4, MLP 4x4, NeuMF 4x4x4) x (ocfb, static) + 3 baselines, run once)
    # x 2 negatives x 3 seeds
    "paper": ((4 + 16 + 64) * 2 + 3) * 2 * 3,
    # (4 NeuMF thresholds + static, the equal-epochs control, + 3 baselines) x 10 seeds
    "ablation-threshold": (4 + 1 + 3) * 10,
    # (2 models x (2 thresholds + static) + 3 baselines) x 10 seeds
    "ablation-terms": (2 * (2 + 1) + 3) * 10,
    "strategies": (9 + 3) * 10,  # 9 NeuMF strategies + 3 baselines, x 10 seeds
    # tune-then-confirm: 3 searched families x 24 proposals x 1 search seed, then 4 families x
    # 5 confirmation seeds
    "movielens-100k": 3 * 24 * 1 + 4 * 5,
    "movielens-100k-strategies": (9 + 3) * 10,  # 9 strategies + 3 baselines, x 10 seeds
    "protocol-gap": 2 * (2 + 3) * 5,  # protocol x (MLP x 2 strategies + 3 baselines) x seeds
    "ease-lastfm-shape": 3 * 2,  # 3 EASE l2 values x 2 seeds
}


def _load(name: str, **kw) -> SweepSpec:
    if name == "movielens-100k":
        kw.setdefault("data_source", ML_PLACEHOLDER)
    return load_sweep(CONFIGS / f"{name}.yaml", **kw)


def _write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


# -- shipped configs --------------------------------------------------------------------------


def test_every_shipped_config_is_covered():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config_loads_with_hand_counted_trials(name):
    spec = _load(name)
    assert spec.name == name
    assert spec.expected_trials() == EXPECTED[name]
    assert spec.output == f"runs/{name}"
    # every grid point / range end is a valid run: the base config builds too
    cfg = spec.run_config({})
    assert cfg.protocol == spec.protocol


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_config_key_carries_a_comment(name):
    for i, line in enumerate((CONFIGS / f"{name}.yaml").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            assert " # " in line or "  #" in line, f"{name}.yaml:{i} has no comment: {line!r}"


def test_shipped_config_details():
    q = _load("quickstart")
    assert q.protocol == "holdout" and q.data.is_synthetic
    assert q.axes() == ["model", "mf_dim", "negatives", "threshold", "seed"]
    assert q.fixed["terms"] == 5 and q.fixed["batch_size"] == 256
    assert q.objective.metric == "val_hr@10" and q.objective.mode == "max"

    p = _load("paper")
    assert p.protocol == "paper" and p.objective.metric == "val_auc"
    assert p.fixed["terms"] == 15 and p.seeds == [0, 1, 2]
    assert p.space["model"].candidates() == ["gmf", "mlp", "neumf", "popularity", "ease", "als"]
    assert {m: list(sub) for m, sub in p.per_model.items()} == {
        "gmf": ["mf_dim"], "mlp": ["user_dim", "item_dim"],
        "neumf": ["mf_dim", "user_dim", "item_dim"]}
    # 84 sizes x 2 negative counts x (ocfb, static): 1,008 neural trials (the old cross of every
    # size with every model ran 1,152 per strategy); baselines once per negative count
    neural = [c for c in p.distinct_configs() if c["model"] in ("gmf", "mlp", "neumf")]
    assert len(neural) * len(p.seeds) == 1008
    assert {c["strategy"] for c in neural} == {"ocfb", "static"}
    assert len({json.dumps(c, sort_keys=True) for c in p.distinct_configs()}) == 342
    assert p.axes() == ["model", "negatives", "strategy", "mf_dim", "user_dim", "item_dim",
                        "seed"]
    assert p.run_config({"model": "gmf"}).select_metric == "val_auc"

    t = _load("ablation-threshold")
    assert t.pivots == [["threshold", "terms"]] and t.fixed["terms"] == 15

    s = _load("strategies")
    assert s.space["strategy"].candidates() == list(STRATEGIES)  # all nine (issue 22)
    assert s.protocol == "holdout" and len(s.seeds) == 10
    assert sorted(p["model"] for p in s.grid_points()) == ["als", "ease"] + ["neumf"] * 9 + [
        "popularity"]

    m = _load("movielens-100k")
    assert m.data.source == ML_PLACEHOLDER and m.data.format == "movielens-100k"
    assert (m.search.algorithm, m.scheduler.type) == ("optuna", "asha")
    assert m.tune_per_model is not None and m.tune_per_model.proposals == 24
    assert m.tune_per_model.confirm_seeds == [1, 2, 3, 4, 5] and m.seeds == [0]
    stages = search_specs(m)
    assert [s.name for s in stages] == [f"movielens-100k-search-{f}" for f in ("neumf", "ease",
                                                                               "als")]
    assert [s.tune_num_samples() for s in stages] == [24, 24, 24]
    assert stages[0].max_terms() == 10
    assert {"lr", "weight_decay", "epochs", "negatives", "batch_size", "l2",
            "als_factors"} <= set(m.axes())
    # by default the team's copy beside the checkout (never committed); --data overrides it
    assert load_sweep(CONFIGS / "movielens-100k.yaml").data.source == (
        "../shared/data/ml-100k/u.data")


def test_cli_overrides(tmp_path):
    spec = _load("quickstart", output=str(tmp_path / "out"))
    assert spec.output == str(tmp_path / "out")
    spec = load_sweep(CONFIGS / "quickstart.yaml", data_source="some/file.csv")
    assert spec.data.source == "some/file.csv" and spec.data.data_seed is None
    # data_seed follows the replicate seed unless the file fixes it (issue 9, item 4)
    q = _load("quickstart")
    assert [q.run_config({"seed": s}).data.data_seed for s in (0, 1, 2)] == [0, 1, 2]
    fixed = SweepSpec.from_dict({"name": "t", "data": {"data_seed": 7}, "seeds": [0, 1]})
    assert fixed.run_config({"seed": 1}).data.data_seed == 7


# -- the spec's methods -----------------------------------------------------------------------


def test_run_config_merges_fixed_and_params():
    q = _load("quickstart")
    cfg = q.run_config({"model": "gmf", "mf_dim": np.int64(16), "negatives": 2000,
                        "threshold": np.float64(0.6), "seed": 0})
    assert isinstance(cfg, RunConfig)
    assert (cfg.model, cfg.mf_dim, cfg.negatives, cfg.threshold, cfg.seed) == (
        "gmf", 16, 2000, 0.6, 0)
    assert (cfg.terms, cfg.epochs, cfg.epochs_per_term, cfg.batch_size) == (5, 10, 2, 256)
    assert (cfg.user_dim, cfg.item_dim, cfg.layers) == (16, 16, (32, 16, 8))
    assert cfg.protocol == "holdout" and cfg.data.source == "synthetic-influencer"
    # layers travel through Ray as "32,16,8" strings
    assert q.run_config({"layers": "64,32"}).layers == (64, 32)
    with pytest.raises(ConfigError, match="model"):
        q.run_config({"model": "svd"})


def test_expected_trials_random_and_optuna(tmp_path):
    text = """\
        name: t
        space:
          model: {grid: [gmf, mlp]}
          lr: {loguniform: [1e-4, 1e-2]}
          mf_dim: {choice: [4, 8, 16]}
        seeds: [0, 1]
        search: {algorithm: %s, num_samples: 3}
    """
    r = load_sweep(_write(tmp_path, text % "random"))
    assert r.expected_trials() == 3 * 2 * 2 and r.tune_num_samples() == 3
    assert r.space["lr"].candidates() == [1e-4, 1e-2]  # 1e-4 is a float, not YAML 1.1's string
    o = load_sweep(_write(tmp_path, text % "optuna"))
    assert o.expected_trials() == 3 * 2 and o.tune_num_samples() == 6
    assert o.axes() == ["model", "lr", "mf_dim", "seed"]


def test_objective_defaults_follow_protocol(tmp_path):
    for protocol in ("paper", "holdout"):
        spec = load_sweep(_write(tmp_path, f"name: t\nprotocol: {protocol}\n"))
        assert spec.objective.metric == default_objective(protocol)
        assert spec.objective.mode == "max"
    spec = load_sweep(_write(tmp_path, "name: t\nobjective: {metric: train_loss}\n"))
    assert spec.objective.mode == "min"
    spec = load_sweep(_write(tmp_path, "name: t\nprotocol: holdout\n"
                                       "objective: {metric: val_auc}\n"))
    assert spec.objective.metric == "val_auc"
    # holdout never selects on test
    with pytest.raises(SpecError, match=r"objective.metric: 'test_auc' is a test metric; under "
                                        r"protocol 'holdout' model selection uses validation "
                                        r"\(e.g. 'val_auc'\)"):
        load_sweep(_write(tmp_path, "name: t\nprotocol: holdout\nobjective: {metric: test_auc}\n"))


def test_produced_metrics_match_the_loop():
    """The objective check's metric names are exactly what the loop reports."""
    from ocfb.algorithm import OCFBRun
    from ocfb.data import synthetic_influencer

    data = synthetic_influencer(80, 300, 600, seed=0)
    bookkeeping = {"term", "n_negatives", "n_replaced", "n_removed_total", "time_train",
                   "time_score", "time_resample", "time_eval"}
    for protocol in ("paper", "holdout"):
        cfg = RunConfig(protocol=protocol, model="gmf", negatives=300, terms=0, epochs=1,
                        batch_size=512, n_candidates=20, full_ranking="every")
        rec = next(iter(OCFBRun(cfg, data)))
        metrics = {k for k in rec if k not in bookkeeping and not k.startswith(("sel_", "time_"))}
        assert metrics == set(produced_metrics(protocol)), protocol


def test_with_smoke_shrinks(tmp_path):
    q = _load("quickstart").with_smoke()
    assert q.fixed["terms"] == DEFAULT_SMOKE["terms"] == 2
    assert q.run_config({"model": "gmf"}).epochs == 2
    assert q.seeds == [0]
    assert q.expected_trials() == EXPECTED["quickstart"] // 3  # one seed of three

    m = _load("movielens-100k").with_smoke()
    assert m.tune_per_model is not None and m.tune_per_model.proposals == 2
    assert m.tune_per_model.confirm_seeds == [1] and m.expected_trials() == 3 * 2 + 4
    assert m.fixed["terms"] == 2 and m.fixed["epochs"] == 1

    spec = load_sweep(_write(tmp_path, """\
        name: t
        fixed: {epochs: 3}
        space:
          terms: {grid: [5, 10]}
          model: {grid: [gmf, mlp]}
        scheduler: {type: asha, grace_period: 4}
        smoke: {terms: 3}
    """))
    assert spec.expected_trials() == 4 and spec.max_terms() == 10
    s = spec.with_smoke()
    assert "terms" not in s.space and s.fixed["terms"] == 3
    assert s.expected_trials() == 2
    assert s.scheduler.grace_period == 3  # capped at the smoke term count
    assert s.smoke == {**DEFAULT_SMOKE, "terms": 3}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_json_round_trips(name):
    spec = _load(name)
    js = json.loads(json.dumps(spec.to_json()))
    assert SweepSpec.from_dict(js) == spec
    # what DIR/sweep.json needs
    assert js["name"] == name
    assert js.get("protocol") == (None if "protocol" in spec.space else spec.protocol)
    assert js["objective"] == {"metric": spec.objective.metric, "mode": spec.objective.mode}
    assert js["axes"] == spec.axes() and js["expected_trials"] == EXPECTED[name]
    assert js["pivots"] == spec.pivots


def test_param_space_for_ray():
    from ray import tune  # noqa: F401 - the only test that needs Ray
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.variant_generator import generate_variants

    # a plain grid maps dim by dim
    q = SweepSpec.from_dict({**_load("quickstart").to_json(), "drop_duplicates": False,
                             "space": {"model": {"grid": ["gmf", "neumf"]},
                                       "threshold": {"grid": [0.3, 0.6]}}})
    ps = param_space(q)
    assert ps["model"] == {"grid_search": ["gmf", "neumf"]}
    assert ps["threshold"] == {"grid_search": [0.3, 0.6]}
    assert ps["seed"] == {"grid_search": [0, 1, 2]}
    assert "terms" not in ps  # fixed keys stay in the spec
    variants = [cfg for _, cfg in generate_variants(ps)]
    assert len(variants) == q.expected_trials() == 2 * 2 * 3
    assert len({json.dumps(v, sort_keys=True) for v in variants}) == len(variants)
    for v in variants:
        assert q.run_config(v).terms == 5

    # dropped duplicates and per-model spaces: Ray gets the explicit grid points, and the
    # trials it generates are exactly the distinct runs, each once per seed
    for name in ("quickstart", "paper", "strategies"):
        spec = _load(name)
        assert spec.enumerates_grid()
        variants = [cfg for _, cfg in generate_variants(param_space(spec))]
        assert len(variants) == spec.expected_trials() == EXPECTED[name], name
        runs = {json.dumps(spec.run_config(v).canonical(), sort_keys=True) for v in variants}
        assert len(runs) == len(variants), name

    m = search_specs(_load("movielens-100k"))[0]  # NeuMF's own search
    mps = param_space(m)
    assert mps["epochs"].lower == 2 and mps["epochs"].upper == 7  # int [2, 6], hi inclusive
    assert "seed" not in mps  # seeds are replicated by a Repeater, never searched by TPE
    dists = OptunaSearch.convert_search_space(mps)
    assert dists["epochs"].high == 6 and dists["lr"].log

    # layers as strings; grid dims become choices under optuna
    spec = SweepSpec.from_dict({
        "name": "t", "space": {"layers": {"grid": [[32, 16, 8], [16, 8]]}},
        "search": {"algorithm": "optuna", "num_samples": 2}, "seeds": [0, 1]})
    sps = param_space(spec)
    assert sps["layers"].categories == ["32,16,8", "16,8"]
    assert "seed" not in sps
    assert spec.run_config({"layers": sps["layers"].categories[1]}).layers == (16, 8)
    # the Repeater's trial index picks the seed
    assert spec.run_config({"__trial_index__": 1}).seed == 1
    assert spec.run_config({"__trial_index__": 0}).seed == 0
    OptunaSearch.convert_search_space(sps)


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_loading_a_sweep_does_not_import_ray():
    code = (
        "import sys; import suite.spec as s; "
        "spec = s.load_sweep(sys.argv[1]); spec.run_config({}); spec.with_smoke(); "
        "assert 'ray' not in sys.modules, 'ray imported'; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(spec.expected_trials())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(CONFIGS / "quickstart.yaml")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(EXPECTED["quickstart"])


# -- malformed sweep files --------------------------------------------------------------------

# (id, YAML text, substrings the SpecError message must contain)
MALFORMED = [
    ("unknown-top-key", "name: t\nspcae: {}\n",
     ["spcae: unknown key (did you mean 'space'?)", "allowed keys:", "seeds"]),
    ("unknown-search-key", "name: t\nsearch: {algorithm: grid, samples: 3}\n",
     ["search.samples: unknown key", "algorithm, num_samples, seed"]),
    ("unknown-data-key", "name: t\ndata: {source: synthetic-influencer, n_user: 10}\n",
     ["data.n_user: unknown key", "n_users"]),
    ("unknown-scheduler-key", "name: t\nscheduler: {type: asha, grace: 2}\n",
     ["scheduler.grace: unknown key", "grace_period"]),
    ("unknown-resources-key", "name: t\nresources: {cpu: 1}\n",
     ["resources.cpu: unknown key", "cpus, gpus"]),
    ("unknown-fixed-key", "name: t\nfixed: {thresold: 0.5}\n",
     ["fixed.thresold: unknown run parameter (did you mean 'threshold'?)"]),
    ("unknown-dim-kind", "name: t\nsearch: {algorithm: random}\nspace: {lr: {range: [1, 2]}}\n",
     ["space.lr.range: unknown dimension kind", "grid, choice, uniform, loguniform, int"]),
    ("unsearchable-key", "name: t\nspace: {device: {grid: [cpu]}}\n",
     ["space.device: not a searchable key", "under `fixed`", "threshold"]),
    ("unknown-searchable-key", "name: t\nspace: {temperature: {grid: [1, 2]}}\n",
     ["space.temperature: not a searchable key", "model, mf_dim"]),
    ("wrong-type-num-samples", "name: t\nsearch: {num_samples: many}\n",
     ["search.num_samples", "valid integer", "'many'"]),
    ("wrong-type-cpus", "name: t\nresources: {cpus: two}\n", ["resources.cpus", "valid number"]),
    ("wrong-type-fixed-terms", "name: t\nfixed: {terms: many}\n",
     ["fixed.terms", "valid integer"]),
    ("wrong-type-section", "name: t\nsearch: grid\n", ["search: expected a mapping"]),
    ("wrong-type-space-dim", "name: t\nspace: {model: gmf}\n",
     ["space.model: expected a one-key mapping", "grid, choice"]),
    ("empty-grid", "name: t\nspace: {model: {grid: []}}\n",
     ["space.model.grid", "at least 1 item"]),
    ("negative-threshold", "name: t\nspace: {threshold: {grid: [0.5, -0.1]}}\n",
     ["space.threshold.grid[1]: Input should be greater than or equal to 0"]),
    ("threshold-above-1-under-prob",
     "name: t\nfixed: {error: prob}\nspace: {threshold: {grid: [0.5, 1.5]}}\n",
     ["space.threshold.grid[1]", "threshold=1.5 is out of range for error='prob'"]),
    ("fixed-threshold-above-1", "name: t\nfixed: {threshold: 1.5}\n",
     ["fixed.threshold", "out of range for error='prob'"]),
    ("gpus-above-1", "name: t\nresources: {gpus: 2}\n",
     ["resources.gpus", "less than or equal to 1"]),
    ("gpus-negative", "name: t\nresources: {gpus: -0.5}\n",
     ["resources.gpus", "greater than or equal to 0"]),
    ("cpus-negative", "name: t\nresources: {cpus: -1}\n",
     ["resources.cpus", "greater than 0"]),
    ("objective-not-produced", "name: t\nprotocol: paper\nobjective: {metric: val_hr@10}\n",
     ["objective.metric", "not produced by protocol 'paper'", "val_auc", "val_f1_weighted"]),
    ("objective-typo", "name: t\nobjective: {metric: val_hr@11}\n",
     ["objective.metric", "'val_hr@11'", "val_hr@10", "val_ndcg@20"]),
    ("objective-needs-full-ranking",
     "name: t\nfixed: {full_ranking: false}\nobjective: {metric: val_full_hr@10}\n",
     ["objective.metric: 'val_full_hr@10' needs fixed.full_ranking: every",
      "full_ranking 'off'", "select on 'val_hr@10'"]),
    ("objective-bad-mode", "name: t\nobjective: {metric: val_hr@10, mode: maximize}\n",
     ["objective.mode", "'max' or 'min'"]),
    ("uniform-lo-ge-hi",
     "name: t\nsearch: {algorithm: random}\nspace: {threshold: {uniform: [0.9, 0.3]}}\n",
     ["space.threshold.uniform: lo must be < hi"]),
    ("loguniform-lo-le-0",
     "name: t\nsearch: {algorithm: random}\nspace: {lr: {loguniform: [0, 0.1]}}\n",
     ["space.lr.loguniform[0]: must be > 0", "space.lr.loguniform[0]: Input should be greater"]),
    ("grid-algorithm-with-uniform",
     "name: t\nsearch: {algorithm: grid}\nspace: {threshold: {uniform: [0.3, 0.9]}}\n",
     ["space.threshold.uniform", "search.algorithm random or optuna"]),
    ("grid-algorithm-with-choice", "name: t\nspace: {model: {choice: [gmf, mlp]}}\n",
     ["space.model.choice", "search.algorithm random or optuna"]),
    ("key-in-fixed-and-space", "name: t\nfixed: {model: gmf}\nspace: {model: {grid: [mlp]}}\n",
     ["space.model: also set in fixed.model"]),
    ("seed-in-space-and-seeds", "name: t\nseeds: [0]\nspace: {seed: {grid: [0, 1]}}\n",
     ["space.seed", "seeds are their own axis"]),
    ("seed-in-fixed", "name: t\nfixed: {seed: 3}\n", ["fixed.seed", "`seeds`"]),
    ("duplicate-seeds", "name: t\nseeds: [0, 1, 0]\n", ["seeds[2]: duplicate seed 0"]),
    ("negative-seed", "name: t\nseeds: [1, -1]\n",
     ["seeds[1]", "greater than or equal to 0"]),
    ("empty-seeds", "name: t\nseeds: []\n", ["seeds: expected a non-empty list"]),
    ("unknown-model-in-grid", "name: t\nspace: {model: {grid: [gmf, svd]}}\n",
     ["space.model.grid[1]", "'gmf', 'mlp', 'neumf', 'popularity', 'ease' or 'als'", "'svd'"]),
    ("unknown-strategy", "name: t\nfixed: {strategy: boost}\n",
     ["fixed.strategy",
      ", ".join(repr(x) for x in STRATEGIES[:-1]) + f" or {STRATEGIES[-1]!r}"]),
    ("terms-negative", "name: t\nfixed: {terms: -1}\n",
     ["fixed.terms: Input should be greater than or equal to 0"]),
    ("num-samples-0", "name: t\nsearch: {num_samples: 0}\n",
     ["search.num_samples", "greater than or equal to 1"]),
    ("asha-grace-above-terms",
     "name: t\nfixed: {terms: 3}\nscheduler: {type: asha, grace_period: 5}\n",
     ["scheduler.grace_period: 5 exceeds terms=3"]),
    ("unknown-scheduler", "name: t\nscheduler: {type: hyperband}\n",
     ["scheduler.type", "'fifo' or 'asha'"]),
    ("unknown-algorithm", "name: t\nsearch: {algorithm: bayes}\n",
     ["search.algorithm", "'grid', 'random' or 'optuna'"]),
    ("not-a-mapping", "- name\n- t\n", ["expected a mapping of sweep keys at the top level"]),
    ("invalid-yaml", "name: [unclosed\n", ["not valid YAML at line 2, column 1", "flow sequence"]),
    ("duplicate-yaml-key", "name: a\nname: b\n",
     ["not valid YAML at line 2, column 1", "duplicate key 'name'"]),
    ("empty-file", "", ["the file is empty"]),
    ("unknown-wandb-mode", "name: t\nwandb: {mode: sometimes}\n",
     ["wandb.mode", "'auto', 'online', 'offline' or 'disabled'"]),
    ("bad-name", "name: my sweep!\n", ["name: must be a slug", "'my sweep!'"]),
    ("missing-name", "protocol: holdout\n", ["name: required key is missing"]),
    ("unknown-protocol", "name: t\nprotocol: loo\n", ["protocol: must be one of paper, holdout"]),
    ("pivot-unknown-key", "name: t\npivots: [[threshold, temperature]]\n",
     ["pivots[0][1]: 'temperature' is not a run parameter", "threshold"]),
    ("pivot-not-a-pair", "name: t\npivots: [[threshold]]\n", ["pivots[0]: expected a pair"]),
    ("duplicate-grid-value", "name: t\nspace: {threshold: {grid: [0.5, 0.5]}}\n",
     ["space.threshold.grid[1]: duplicate of grid[0]"]),
    ("uniform-on-int-key",
     "name: t\nsearch: {algorithm: random}\nspace: {mf_dim: {uniform: [2, 8]}}\n",
     ["space.mf_dim.uniform: mf_dim is not a float parameter", "int"]),
    ("two-kinds-in-one-dim",
     "name: t\nspace: {threshold: {grid: [0.5], uniform: [0.1, 0.2]}}\n",
     ["space.threshold: expected a one-key mapping", "grid, uniform"]),
    ("bad-layers-in-grid", "name: t\nspace: {layers: {grid: [[32, 16], [0]]}}\n",
     ["space.layers.grid[1]", "positive integers"]),
    ("bad-negatives", "name: t\nfixed: {negatives: lots}\n", ["fixed.negatives", "'4x'"]),
    ("max-concurrent-0", "name: t\nmax_concurrent_trials: 0\n",
     ["max_concurrent_trials: must be an integer >= 1"]),
    ("storage-unknown-scheme", "name: t\nstorage_path: ftp://host/dir\n",
     ["storage_path: unsupported URI scheme 'ftp'", "s3"]),
    ("storage-no-bucket", "name: t\nstorage_path: 's3:///dir'\n",
     ["storage_path: 's3:///dir' names no bucket or host", "s3://bucket/prefix"]),
    ("data-out-of-range", "name: t\ndata: {n_users: 1}\n",
     ["data.n_users", "greater than or equal to 2"]),
    ("smoke-unknown-key", "name: t\nsmoke: {terms: 1, speed: 2}\n", ["smoke.speed: unknown"]),
    ("replace-fraction-range-end",
     "name: t\nsearch: {algorithm: random}\nspace: {replace_fraction: {uniform: [0.5, 1.5]}}\n",
     ["space.replace_fraction.uniform[1]", "less than or equal to 1"]),
    ("int-range-lo-ge-hi",
     "name: t\nsearch: {algorithm: random}\nspace: {terms: {int: [5, 5]}}\n",
     ["space.terms.int: lo must be < hi"]),
    ("int-range-float-end",
     "name: t\nsearch: {algorithm: random}\nspace: {terms: {int: [1, 5.5]}}\n",
     ["space.terms.int[1]", "valid integer"]),
    ("derived-key-in-file", "name: t\nexpected_trials: 4\n",
     ["expected_trials: unknown key"]),
    ("cuda-without-gpu-share", "name: t\nfixed: {device: cuda}\n",
     ["fixed.device: 'cuda' needs resources.gpus > 0"]),
    ("objective-not-a-mapping", "name: t\nobjective: val_hr@10\n",
     ["objective: expected a mapping"]),
]


def test_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed_sweep_file_is_rejected(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    msg = str(info.value)
    for line in msg.splitlines():
        assert line.startswith(f"{path}: "), line
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg}"


def test_all_problems_are_reported_together(tmp_path):
    path = _write(tmp_path, """\
        name: t
        bogus: 1
        fixed: {terms: -1}
        resources: {gpus: 3}
        space: {model: {grid: [gmf, svd]}}
    """)
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    for key in ("bogus", "fixed.terms", "resources.gpus", "space.model.grid[1]"):
        assert sum(f"{path}: {key}" in ln for ln in lines) == 1, key

    # cross-field rules are still judged when an unrelated block is broken
    path = _write(tmp_path, "name: t\nwandb: {mode: x}\nfixed: {threshold: 1.5}\n")
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: wandb.mode") and "fixed.threshold" in lines[1]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SpecError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="not a file"):
        load_sweep(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(SpecError, match="not a text file"):
        load_sweep(binary)


def test_from_dict_validates_like_a_file():
    with pytest.raises(SpecError, match=r"<sweep>: resources.gpus"):
        SweepSpec.from_dict({"name": "t", "resources": {"gpus": 1.5}})
    spec = SweepSpec.from_dict({"name": "t", "resources": {"gpus": 0.25, "cpus": 2}})
    assert (spec.resources.gpus, spec.resources.cpus) == (0.25, 2.0)
    assert spec.expected_trials() == 1 and spec.axes() == []


def test_protocol_can_be_searched_for_the_protocol_gap(tmp_path):
    spec = load_sweep(CONFIGS / "protocol-gap.yaml")
    assert spec.axes() == ["protocol", "strategy", "model", "seed"]
    assert spec.objective.metric == "val_auc"  # the validation metric both protocols produce
    assert spec.expected_trials() == EXPECTED["protocol-gap"]
    assert spec.run_config({"protocol": "paper", "strategy": "ocfb", "seed": 3}).protocol == "paper"
    both = "name: t\nspace:\n  protocol: {grid: [paper, holdout]}\n"
    with pytest.raises(SpecError, match=r"objective.metric: 'val_hr@10' is not produced by "
                                        r"protocol 'paper' and 'holdout'.*allowed: .*val_auc"):
        load_sweep(_write(tmp_path, both + "objective: {metric: val_hr@10}\n"))
    with pytest.raises(SpecError, match="protocol: also searched in space.protocol"):
        load_sweep(_write(tmp_path, both + "protocol: paper\n"))
