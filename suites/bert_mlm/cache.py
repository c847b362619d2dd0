"""Build-once artifacts (corpus, tokenizer, tokenized sequences) under the results root's cache.

An artifact is a directory named by a hash of everything that determines it. It is built in a
private temporary directory and renamed into place, so concurrent runs (the leaderboard runs several
at once) never see a half-written artifact: the first rename wins and the others are discarded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

COMPLETE_MARKER = "key.json"  # written last, inside the temporary directory, before the rename


def fingerprint(key: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able description of an artifact."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (used to key artifacts on the content they were built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cached_directory(root: str | Path, kind: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """The directory `<root>/<kind>-<hash(key)>`, calling build(tmp_dir) to create it when missing."""
    final = Path(root) / f"{kind}-{fingerprint(key)}"
    if (final / COMPLETE_MARKER).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=final.parent))
    try:
        build(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(key, sort_keys=True, indent=1, default=str))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / COMPLETE_MARKER).exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
