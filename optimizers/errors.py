"""The one base class for bad input, shared by every nightbench package.

Unknown names, values outside their accepted range, bad paths and unusable plugin files raise a
subclass of `InputError`; the command line maps it to exit status 2 with its message. Any other
exception is a bug, and the command line says so (exit 1, traceback written to a file).
It lives in the lowest package (optimizers) so that suites and reports can use it too.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input nightbench cannot use; the message says what was wrong and what would be accepted."""
