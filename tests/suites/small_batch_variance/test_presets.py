"""The presets' check: a bad value fails naming its key and what is accepted, also through the engine."""

from __future__ import annotations

import pytest

from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.small_batch_variance.presets import PRESETS, SuiteConfigError, validate_config


@pytest.mark.parametrize("key, value, expected", [
    ("skew_p", 0.7, "skew_p=0.7: expected a number in (0, 0.5)"),
    ("batch_sizes", [0, 4], "batch_sizes=0: expected an integer in [1, 65536]"),
    ("problems", ["skewed_flat", "rosenbrock"], "expected distinct names from"),
    ("lr_multipliers", [], "expected a non-empty list"),
    ("skewed_steps", 2.5, "expected an integer in [1, inf]"),
])
def test_bad_config_values_fail_naming_the_key_and_what_is_accepted(key, value, expected):
    with pytest.raises(SuiteConfigError, match="small_batch_variance") as info:
        validate_config({**PRESETS["ci"], key: value})
    assert expected in str(info.value)


def test_bad_config_value_through_the_engine_names_the_key(tmp_path):
    try:
        outcome = execute_run(RunRequest(suite="small_batch_variance", optimizer="nsgd", preset="ci",
                                         overrides={"skew_p": 0.7}, results_root=str(tmp_path), progress=False))
    except ValueError as exc:  # an engine that validates before starting the run
        message = str(exc)
    else:
        assert outcome.status == "failed"
        message = outcome.summary["error"]
    assert "skew_p" in message and "(0, 0.5)" in message
