"""Cached artifacts (sequences, tokenizers): built once, and a failed build leaves nothing behind."""

from __future__ import annotations

import pytest

from nightbench.suites.bert_mlm.cache import cached_directory


def test_cached_artifacts_are_built_once_and_failures_leave_nothing(tmp_path):
    calls = []

    def build(out):
        calls.append(out)
        (out / "data.txt").write_text("x")

    first = cached_directory(tmp_path, "thing", {"a": 1}, build)
    second = cached_directory(tmp_path, "thing", {"a": 1}, build)
    other = cached_directory(tmp_path, "thing", {"a": 2}, build)
    assert first == second != other and len(calls) == 2 and (first / "data.txt").read_text() == "x"

    def broken(out):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached_directory(tmp_path, "broken", {}, broken)
    assert not list(tmp_path.glob("*broken*")), "no half-built artifact remains"
