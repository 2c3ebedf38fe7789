"""RunConfig's own rules: numbers are numbers, finite, seeds fit 64 bits, data follows the seed."""

from __future__ import annotations

import pytest

from ocfb.config import ConfigError, RunConfig, make_run_config


@pytest.mark.parametrize("key", ["terms", "epochs", "lr", "threshold", "seed", "max_redraws"])
def test_a_yaml_boolean_is_not_a_number(key):
    with pytest.raises(ConfigError, match=rf"{key}: expected a number, got the boolean True"):
        make_run_config({key: True})


def test_booleans_stay_valid_where_they_are_meant():
    assert RunConfig(exclude_removed=False).exclude_removed is False
    # older sweep.json files wrote full_ranking as a bool
    assert RunConfig(full_ranking=True).full_ranking == "every"
    assert RunConfig(full_ranking=False).full_ranking == "off"


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_values_are_refused(value):
    with pytest.raises(ConfigError, match="lr: Input should be a finite number"):
        make_run_config({"lr": value})


def test_seed_must_fit_a_signed_64_bit_integer():
    assert RunConfig(seed=2**63 - 1).seed == 2**63 - 1
    with pytest.raises(ConfigError, match="seed"):
        make_run_config({"seed": 2**63})


def test_generated_data_follows_the_replicate_seed_unless_fixed():
    assert RunConfig(seed=7).data.data_seed == 7
    assert RunConfig(seed=7, data={"data_seed": 3}).data.data_seed == 3
    # the recorded config reproduces the data: data_seed is explicit after validation
    assert RunConfig(**RunConfig(seed=5).model_dump()).data.data_seed == 5


def test_select_metric_must_be_a_validation_metric():
    with pytest.raises(ConfigError, match="select_metric must be a validation metric"):
        make_run_config({"select_metric": "test_hr@10"})
    assert RunConfig(protocol="paper").selection_metric == "val_auc"
