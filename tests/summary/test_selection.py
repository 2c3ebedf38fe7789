"""Per-trial selection on validation, canonical configurations and pseudo-replicates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from suite.summary.frames import canonicalize, dedupe, select

# val peaks at term 2 (tied again at 4: the earliest wins), test peaks at term 3.
VAL = [0.50, 0.60, 0.70, 0.65, 0.70]
TEST = [0.40, 0.45, 0.50, 0.80, 0.55]


def _history(tid: str, val=VAL, test=TEST, **final) -> list[dict]:
    rows = [{"trial_id": tid, "term": t, "val_hr@10": v, "test_hr@10": x}
            for t, (v, x) in enumerate(zip(val, test, strict=True))]
    rows[-1].update(final)
    return rows


def _trials(*ids: str, **cfg) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": i, "status": "completed", "config.model": "neumf",
                          "config.seed": k, **{f"config.{a}": b for a, b in cfg.items()}}
                         for k, i in enumerate(ids)])


def test_reported_test_is_test_at_the_validation_argmax_term() -> None:
    sel = select(_trials("a"), pd.DataFrame(_history("a")), "val_hr@10", "max").iloc[0]
    assert sel["sel_term"] == 2  # earliest of the tied peaks at terms 2 and 4
    assert sel["sel.test_hr@10"] == TEST[2] != max(TEST)
    assert sel["final_term"] == 4 and sel["final.test_hr@10"] == TEST[4]
    assert sel["opt.test_hr@10"] == max(TEST)  # kept only as the optimistic number
    assert sel["selected_on"] == "validation" and sel["kind"] == "trained"
    low = select(_trials("a"), pd.DataFrame(_history("a")), "val_hr@10", "min").iloc[0]
    assert low["sel_term"] == 0 and low["sel.test_hr@10"] == TEST[0]


def test_a_test_objective_never_selects() -> None:
    with pytest.raises(ValueError, match="test metric"):
        select(_trials("a"), pd.DataFrame(_history("a")), "test_hr@10", "max")


def test_selected_schedule_full_metrics_come_from_the_final_records_sel_keys() -> None:
    # Full ranking ran only at the final term; the loop adds the selected weights' numbers.
    same = _history("a", sel_term=2, **{"sel_test_full_hr@10": 0.33, "test_full_hr@10": 0.2})
    other = _history("b", sel_term=3, **{"sel_test_full_hr@10": 0.44, "test_full_hr@10": 0.2})
    sel = select(_trials("a", "b"), pd.DataFrame(same + other), "val_hr@10", "max")
    sel = sel.set_index("trial_id")
    assert sel.loc["a", "sel.test_full_hr@10"] == 0.33
    assert sel.loc["a", "final.test_full_hr@10"] == 0.2
    # The loop selected another term than the summary: its numbers are not ours to report.
    assert math.isnan(sel.loc["b", "sel.test_full_hr@10"])


def test_no_validation_metric_falls_back_to_the_final_term_and_says_so() -> None:
    hist = pd.DataFrame(_history("a")).drop(columns="val_hr@10")
    sel = select(_trials("a"), hist, "val_hr@10", "max").iloc[0]
    assert sel["sel_term"] == 4 and sel["selected_on"] == "final term"


def test_trials_without_history_use_the_runners_best_columns() -> None:
    t = _trials("a").assign(**{"best.val_hr@10": 0.7, "best.test_hr@10": 0.5, "best_term": 2,
                               "final.test_hr@10": 0.55, "terms_done": 5})
    sel = select(t, None, "val_hr@10", "max").iloc[0]
    assert (sel["sel.test_hr@10"], sel["sel_term"], sel["final_term"]) == (0.5, 2, 4)


def test_canonicalize_blanks_keys_that_do_not_apply() -> None:
    rows = [("gmf", "ocfb"), ("mlp", "ocfb"), ("neumf", "static"), ("popularity", "ocfb")]
    t = pd.DataFrame([{"trial_id": f"t{i}", "config.model": m, "config.strategy": s,
                       "config.protocol": "holdout", "config.mf_dim": 8, "config.user_dim": 16,
                       "config.layers": "32,16,8", "config.threshold": 0.5, "config.lr": 0.01,
                       "config.seed": 0} for i, (m, s) in enumerate(rows)])
    c = canonicalize(t).set_index("config.model")
    assert c.loc["gmf", "config.mf_dim"] == 8 and c.loc["gmf", "config.user_dim"] is None
    assert c.loc["gmf", "config.layers"] is None
    assert c.loc["mlp", "config.mf_dim"] is None and c.loc["mlp", "config.user_dim"] == 16
    assert c.loc["neumf", "config.threshold"] is None  # static ignores the threshold
    assert c.loc["neumf", "config.mf_dim"] == 8
    for k in ("mf_dim", "user_dim", "layers", "threshold", "lr", "strategy"):
        assert c.loc["popularity", f"config.{k}"] is None
    assert (c["config.seed"] == 0).all()


def test_dedupe_counts_a_configuration_and_seed_once() -> None:
    # paper.yaml's pattern: user_dim crossed with gmf gives bit-identical gmf trials.
    t = pd.DataFrame([{"trial_id": f"g{d}-{s}", "status": "completed", "config.model": "gmf",
                       "config.user_dim": d, "config.mf_dim": 8, "config.seed": s}
                      for d in (8, 16, 32) for s in (0, 1)]
                     + [{"trial_id": "m", "status": "completed", "config.model": "mlp",
                         "config.user_dim": 8, "config.mf_dim": 8, "config.seed": 0}])
    kept, notes = dedupe(canonicalize(t))
    assert sorted(kept["trial_id"]) == ["g16-0", "g16-1", "m"]
    assert len(notes) == 1 and notes[0].startswith("4 trial(s) repeat a configuration")
    assert all(x in notes[0] for x in ("g32-0", "g32-1", "g8-0", "g8-1"))
    assert dedupe(kept)[1] == []
    assert np.array_equal(dedupe(t)[0]["trial_id"], t["trial_id"])  # raw: all distinct
