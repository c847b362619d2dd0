"""Where the report is written: checked before any work, so a bad path fails at once with a message."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nightbench.optimizers.errors import InputError

ACCEPTED = ("expected the path of an HTML file to write (e.g. report.html) in a folder you can write to; "
            "missing parent folders are created")


class ReportOutputError(InputError):
    """The report's output path cannot be written."""


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def check_output_path(output_path: str | os.PathLike) -> Path:
    """The output path as a Path, or ReportOutputError naming it and what is accepted.

    Refused: an existing folder; a path under a file; a folder in which no file can be created
    (tried for real, because permission bits do not tell for root or read-only mounts)."""
    text = os.fspath(output_path)
    if not str(text).strip():
        raise ReportOutputError(f"report output path is empty; {ACCEPTED}")
    output = Path(text).expanduser()
    if output.is_dir():
        raise ReportOutputError(f"report output '{output}' is a folder; {ACCEPTED}, e.g. '{output / 'report.html'}'")
    folder = _existing_ancestor(output.parent)
    if not folder.is_dir():
        raise ReportOutputError(f"report output '{output}' is under '{folder}', which is a file, not a folder; "
                                f"{ACCEPTED}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".report-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise ReportOutputError(f"report output '{output}' cannot be written: no file can be created in "
                                f"'{folder}' ({exc.strerror or exc}); {ACCEPTED}") from exc
    return output
