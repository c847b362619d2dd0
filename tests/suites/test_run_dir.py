"""run_dir's atomic writer: whole files or none, readable as open() would make them, fsynced before the rename."""

from __future__ import annotations

import os
import stat

import pytest

from nightbench.suites.run_dir import atomic_write_text


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_text_writes_the_whole_text_with_the_mode_open_would_give(tmp_path, umask):
    path = tmp_path / "sub" / "file.txt"
    previous = os.umask(umask)
    try:
        atomic_write_text(path, "héllo\n")
        with open(tmp_path / "plain.txt", "w"):  # what any other program's file gets
            pass
    finally:
        os.umask(previous)
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert mode(path) == mode(tmp_path / "plain.txt") == 0o666 & ~umask
    assert os.listdir(path.parent) == ["file.txt"]  # no temporary file left


def test_atomic_write_text_gives_the_mode_asked_for(tmp_path):
    atomic_write_text(tmp_path / "report.html", "<html>", mode=0o644)
    assert mode(tmp_path / "report.html") == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "file.txt"
    atomic_write_text(path, "old")

    def no_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["file.txt"]
