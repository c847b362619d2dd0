"""The offline English corpus of the small presets: text that ships with Python itself.

Two sources, both present wherever Python is, and both fixed by the Python version:
  pydoc_topics        the language reference topics behind `help()` (pydoc_data.topics, ~465k chars)
  stdlib_docstrings   module, class and function docstrings of the standard library (~1.6M chars)
Documents are kept in a fixed order (topics by name, then modules by path), doctest prompt lines are
dropped (code, not prose), and exact duplicates (after whitespace normalization) are removed.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import sysconfig
from pathlib import Path
from typing import Iterator
from ..config import SuiteConfigError

SOURCES = ("pydoc_topics", "stdlib_docstrings")
MIN_WORDS = 8  # shorter docstrings ("Return self==value.") carry little context for masked-LM
_SKIPPED_STDLIB_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo"}


def corpus_key(sources: list[str], max_chars: int | None) -> dict:
    """What determines the corpus: the sources, the size cap and the Python version that ships them."""
    return {"sources": list(sources), "max_chars": max_chars, "python": sys.version.split()[0], "version": 1}


def _clean(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith((">>>", "... "))]
    return "\n".join(lines).strip()


def _pydoc_topics() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name]


def _stdlib_docstrings() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not _SKIPPED_STDLIB_DIRS.intersection(p.relative_to(root).parts))
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few stdlib files are templates or legacy encodings: not prose we need
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


_READERS = {"pydoc_topics": _pydoc_topics, "stdlib_docstrings": _stdlib_docstrings}


def python_docs_corpus(sources: list[str] | tuple[str, ...] = SOURCES, max_chars: int | None = None) -> list[str]:
    """The deduplicated documents of `sources`, in a fixed order, cut after `max_chars` characters."""
    unknown = [s for s in sources if s not in _READERS]
    if unknown or not sources:
        raise SuiteConfigError(
            f"invalid corpus_sources {list(sources)!r}: expected a non-empty list drawn from {list(SOURCES)}")
    seen: set[str] = set()
    documents, total = [], 0
    for source in sources:
        for raw in _READERS[source]():
            text = _clean(raw)
            if len(text.split()) < MIN_WORDS:
                continue
            digest = hashlib.sha1(re.sub(r"\s+", " ", text).encode("utf-8")).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            documents.append(text)
            total += len(text)
            if max_chars is not None and total >= max_chars:
                return documents
    return documents
