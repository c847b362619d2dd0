"""The input errors share the InputError base and keep their old bases (ValueError, KeyError, RuntimeError)."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import HyperparameterError, InputError, PluginError, UnknownOptimizerError, create


def test_bad_input_errors_share_the_input_error_base_and_keep_their_old_bases():
    assert issubclass(HyperparameterError, InputError) and issubclass(HyperparameterError, ValueError)
    assert issubclass(UnknownOptimizerError, InputError) and issubclass(UnknownOptimizerError, KeyError)
    assert issubclass(PluginError, InputError) and issubclass(PluginError, RuntimeError)
    with pytest.raises(InputError, match="Did you mean 'lars'"):
        create("lasr", torch.nn.Linear(2, 2))
    assert str(UnknownOptimizerError("plain message")) == "plain message"  # not KeyError's quoted repr
