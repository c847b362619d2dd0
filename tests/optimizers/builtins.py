"""The builtin optimizers' names: the one list the tests hold the registry to.

Tests parametrized over it fail (never skip) when a builtin is missing from the registry, say a
module that no longer imports. `test_registry` checks it against the registry both ways, so a new
builtin module is added here too. Everything else about a builtin (its state slots, its paper) is
read from its registry entry.
"""

PAPER = ("sgd", "adam", "lars", "lamb", "nsgd", "nsgd_momentum", "nigt", "nigt_adaptive")  # the mission's eight
MODERN = ("muon", "lion", "signum", "adamw_schedulefree", "adafactor", "soap")  # the 2026 baselines
BUILTINS = PAPER + MODERN
