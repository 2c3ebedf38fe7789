"""The sweep file's `verdicts` block: validated in the spec, recorded in sweep.json, and what the
summary's verdict sections then decide on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.spec import SpecError, SweepSpec
from suite.spec.vocabulary import DEFAULT_ROPE
from suite.summary.verdicts import verdict_plan

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "strategies.yaml"


def _raw(**verdicts) -> dict:
    raw = yaml.safe_load(CONFIG.read_text())
    if verdicts:
        raw["verdicts"] = verdicts
    return raw


def test_named_metric_and_rope_reach_sweep_json_and_the_verdict_plan() -> None:
    spec = SweepSpec.from_dict(_raw(metric="test_ndcg@10", rope=0.02))
    meta = spec.to_json()
    assert meta["verdicts"] == {"metric": "test_ndcg@10", "rope": 0.02}
    frame = pd.DataFrame({"sel.test_ndcg@10": [0.1], "sel.test_full_ndcg@10": [0.05]})
    plan = verdict_plan(meta, "val_hr@10", "holdout", "max", [frame])
    # the named sampled metric decides; its full-ranking counterpart is shown beside it
    assert (plan.metric, plan.beside, plan.rope) == ("test_ndcg@10", "test_full_ndcg@10", 0.02)


def test_no_block_means_the_defaults() -> None:
    meta = SweepSpec.from_dict(_raw()).to_json()
    assert meta["verdicts"] is None
    frame = pd.DataFrame({"sel.test_hr@10": [0.1], "sel.test_full_hr@10": [0.05]})
    plan = verdict_plan(meta, "val_hr@10", "holdout", "max", [frame])
    assert (plan.metric, plan.rope) == ("test_full_hr@10", DEFAULT_ROPE)


@pytest.mark.parametrize(("block", "message"), [
    ({"metric": "val_hr@10"}, "verdicts.metric: 'val_hr@10' is not a test metric this sweep "
                              "records; allowed: test_hr@5,"),
    ({"metric": "test_hr@7"}, "verdicts.metric: 'test_hr@7' is not a test metric"),
    ({"rope": 0}, "verdicts.rope: Input should be greater than 0"),
    ({"rope": float("nan")}, "verdicts.rope"),
    ({"alpha": 0.1}, "verdicts.alpha"),
])
def test_bad_block_is_refused_naming_the_key_and_what_is_allowed(block, message) -> None:
    with pytest.raises(SpecError, match=None) as err:
        SweepSpec.from_dict(_raw(**block))
    assert message in str(err.value)
