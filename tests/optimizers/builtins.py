"""The builtin optimizers' names: the one list the tests hold the registry to.

Tests parametrized over it fail (never skip) when a builtin is missing from the registry, say a
module that no longer imports. `test_registry` checks it against the registry both ways, so a new
builtin module is added here too. Everything else about a builtin (its state slots, its paper) is
read from its registry entry.
"""

PAPER = ("sgd", "adam", "lars", "lamb", "nsgd", "nsgd_momentum", "nigt", "nigt_adaptive")  # the mission's eight
MODERN = ("muon", "lion", "signum", "adamw_schedulefree", "adafactor", "soap")  # the 2026 baselines
BUILTINS = PAPER + MODERN

# Builtins whose state is not a whole number of parameter-shaped slots; each one's exact bytes are
# checked in its own test file (tests/optimizers/test_<name>.py).
NOT_PARAMETER_SHAPED = {
    "muon": "1 slot on the hidden matrices, AdamW's 2 on the rest (test_muon.py)",
    "adafactor": "a row and a column vector per matrix (test_adafactor.py)",
    "soap": "Adam's 2 slots plus a d x d statistic and basis per dimension (test_soap.py)",
}
PARAMETER_SHAPED = tuple(name for name in BUILTINS if name not in NOT_PARAMETER_SHAPED)
