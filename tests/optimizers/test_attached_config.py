"""optimizer.nightbench_config survives copy.deepcopy and pickling, for ours and torch's; a plain torch optimizer copies as before."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from nightbench.optimizers import create


WRITTEN_HERE = ("nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb")


@pytest.mark.parametrize("name", list(WRITTEN_HERE) + ["sgd", "adam"])
def test_nightbench_config_survives_deepcopy_and_pickle(name):
    model = torch.nn.Linear(3, 2)
    optimizer = create(name, model, lr=0.01)
    config = optimizer.nightbench_config
    assert config["name"] == name and config["hyperparameters"]["lr"] == 0.01
    copied = copy.deepcopy(optimizer)
    unpickled = pickle.loads(pickle.dumps(optimizer))
    for other in (copied, unpickled):
        assert other.nightbench_config == config
        assert type(other) is type(optimizer) and len(other.param_groups) == len(optimizer.param_groups)
    if hasattr(optimizer, "foreach"):
        assert unpickled.foreach == optimizer.foreach
    plain = torch.optim.SGD(model.parameters(), lr=0.1)  # an optimizer built elsewhere copies as before
    assert not hasattr(copy.deepcopy(plain), "nightbench_config")
