"""The one mechanism behind nightbench's plugin tables (optimizers, suites): a `Registry` object.

A registry holds entries by name, each with the source that registered it ('builtin', a file, an
entry point). A plugin's import runs inside `staged(source)`: what it registers is kept aside and
committed only if the whole import succeeds, so a half-imported plugin leaves nothing behind, and
a failure is recorded by source (`errors`). An unknown name fails with the known names and the
closest match. Tests swap in `copy()` of a registry and throw it away afterwards.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Generic, Iterator, NoReturn, TypeVar

from .errors import InputError

T = TypeVar("T")
BUILTIN = "builtin"  # the source of everything nightbench ships


class UnknownNameError(InputError, KeyError):
    """A name no registry entry has; the message lists the known names and the closest match."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def failure_reason(exc: BaseException) -> str:
    """Why a plugin's import failed, in one line (a plugin's sys.exit() is a failure, not an exit)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while being imported"
    return f"{type(exc).__name__}: {exc}"


class Registry(Generic[T]):
    """Entries of one kind ('optimizer', 'suite') by name, in registration order.

    `conflict` is the message (formatted with name, source, existing) of the `error` raised when a
    name is registered again by another source; `unknown_error` and `known_suffix` shape the
    error for an unknown name.
    """

    def __init__(self, kind: str, *, error: type[Exception], conflict: str,
                 unknown_error: type[UnknownNameError] = UnknownNameError, known_suffix: str = "") -> None:
        self.kind, self.error, self.conflict = kind, error, conflict
        self.unknown_error, self.known_suffix = unknown_error, known_suffix
        self.entries: dict[str, T] = {}
        self.sources: dict[str, str] = {}  # name -> who registered it
        self.errors: dict[str, str] = {}  # plugin source -> why it failed to load
        self.loaded = False  # whether the owner has found its builtins and plugins
        self.source = BUILTIN  # who registers now (a plugin's source while it is staged)
        self._staging: dict[str, T] | None = None

    def copy(self) -> Registry[T]:
        """A new registry with the same entries and errors; registering in it leaves this one as it is."""
        other: Registry[T] = Registry(self.kind, error=self.error, conflict=self.conflict,
                                      unknown_error=self.unknown_error, known_suffix=self.known_suffix)
        other.entries, other.sources, other.errors = dict(self.entries), dict(self.sources), dict(self.errors)
        other.loaded = self.loaded
        return other

    def add(self, name: str, entry: T, source: str | None = None) -> None:
        """Register `entry` (into the staging table while a plugin is staged); a name taken by another source fails."""
        source = self.source if source is None else source
        self._check_free(name, source)
        if self._staging is not None:
            self._staging[name] = entry
        else:
            self.entries[name], self.sources[name] = entry, source

    def _check_free(self, name: str, source: str) -> None:
        if name in self.entries:
            existing = self.sources.get(name, BUILTIN)
        elif self._staging is not None and name in self._staging:
            existing = self.source
        else:
            return
        if existing != source:
            raise self.error(self.conflict.format(name=name, source=source, existing=existing))

    @contextmanager
    def staged(self, source: str) -> Iterator[dict[str, T]]:
        """Import a plugin inside this block; it yields the staged entries (to check them before commit).

        On success they are committed and an earlier error of `source` is forgotten; on any failure
        (even sys.exit()) nothing is committed, the reason is recorded in `errors`, and it re-raises.
        """
        if self._staging is not None:
            raise RuntimeError(f"{source} is staged while {self.source} is still importing")
        self._staging, self.source = {}, source
        try:
            yield self._staging
            staged, self._staging = self._staging, None
            for name in staged:  # all checked before any is committed
                self._check_free(name, source)
            for name, entry in staged.items():
                self.add(name, entry, source)
            self.errors.pop(source, None)
        except (Exception, SystemExit) as exc:
            self.errors[source] = failure_reason(exc)
            raise
        finally:
            self._staging, self.source = None, BUILTIN

    def staged_names(self) -> list[str]:
        """What the plugin being imported has registered so far (nothing outside `staged`)."""
        return list(self._staging or ())

    def names_from(self, source: str) -> list[str]:
        return [name for name in self.entries if self.sources.get(name) == source]

    def get(self, name: str) -> T:
        if name in self.entries:
            return self.entries[name]
        self.unknown(name)

    def unknown(self, name: object) -> NoReturn:
        """Raise the unknown-name error: the known names and, if there is one, the closest match."""
        known = list(self.entries)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise self.unknown_error(f"unknown {self.kind} '{name}'.{hint} Known {self.kind}s: {', '.join(known)}"
                                 f"{self.known_suffix}")
