"""The suites' input errors: one definition each, all InputErrors (the command line's exit 2)."""

from __future__ import annotations

import re

import pytest

from nightbench.optimizers.errors import InputError
from nightbench.suites import config
from nightbench.suites.config import ConfigError, SuiteConfigError, SuiteDataError
from nightbench.suites.resnet50_imagenet import config as resnet_config
from nightbench.suites.resnet50_imagenet.data import DataError
from nightbench.suites.resnet50_imagenet.model import ModelError
from nightbench.suites.memory_overhead import presets as memory_presets
from nightbench.suites.small_batch_variance import presets as sbv_presets
from nightbench.suites.small_batch_variance.problems import build_problem


def test_suite_config_error_is_defined_once():
    assert resnet_config.SuiteConfigError is SuiteConfigError and sbv_presets.SuiteConfigError is SuiteConfigError


def test_every_suite_input_error_is_an_input_error_and_the_path_ones_keep_their_os_error():
    for error in (SuiteConfigError, SuiteDataError, DataError, ModelError):
        assert issubclass(error, InputError) and not issubclass(error, ConfigError), error
    assert issubclass(config.DataNotFoundError, FileNotFoundError)
    assert issubclass(config.DataNotADirectoryError, NotADirectoryError)
    assert issubclass(config.DataIsADirectoryError, IsADirectoryError)
    assert str(config.DataNotFoundError("no such corpus")) == "no such corpus"


@pytest.mark.parametrize("check, value", [
    (lambda: memory_presets.validate_config({**memory_presets.PRESETS["ci"], "families": []}), "families=[]"),
    (lambda: build_problem("rosenbrock", {}), "rosenbrock"),
])
def test_a_bad_value_in_a_suite_raises_a_suite_config_error_naming_it(check, value):
    with pytest.raises(SuiteConfigError, match=re.escape(value)):
        check()
