"""nightbench.optimizers: the registry, the optimizers, the param-group policy and the schedules.

    from nightbench.optimizers import create
    opt = create("nigt", model, lr=1e-3)
"""

from .errors import InputError
from .hyperparams import Hyperparameter, HyperparameterError
from .param_groups import (
    PAPER_RECIPE_HYPERPARAMETERS,
    PAPER_RECIPE_POLICY,
    PAPER_RECIPE_SETTINGS,
    ParamGroupPolicy,
)
from .registry import (
    PluginError,
    create,
    expand_names,
    get_spec,
    load_optimizer_file,
    names,
    plugin_errors,
    register_optimizer,
    register_spec,
    specs,
)
from .schedules import Schedule, build_scheduler, epochs_to_steps
from .spec import OptimizerSpec, UnknownOptimizerError
from .swap import evaluation_weights, has_eval_swap

__all__ = [
    "Hyperparameter", "HyperparameterError", "InputError", "OptimizerSpec", "ParamGroupPolicy", "PluginError",
    "UnknownOptimizerError", "PAPER_RECIPE_HYPERPARAMETERS", "PAPER_RECIPE_POLICY", "PAPER_RECIPE_SETTINGS",
    "Schedule",
    "build_scheduler", "create", "epochs_to_steps", "expand_names", "evaluation_weights", "get_spec", "has_eval_swap",
    "load_optimizer_file", "names", "plugin_errors", "register_optimizer", "register_spec", "specs",
]
