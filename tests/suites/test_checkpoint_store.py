"""CheckpointStore: rotation on save, weights-only loads, damaged files set aside with one line each."""

from __future__ import annotations

import dataclasses
import errno
import os
import random

import numpy as np
import pytest
import torch

from nightbench.optimizers.errors import InputError
from nightbench.suites.checkpoint_store import (
    CheckpointStore,
    DamagedCheckpointError,
    load_weights_only,
    move_aside,
)
from nightbench.suites.training_host import rng_state, set_rng_state


@dataclasses.dataclass
class Note:
    text: str


def _payload(step: int) -> dict:
    return {"step": step, "weights": torch.full((3,), float(step))}


def _store(tmp_path, lines=None, **kwargs) -> CheckpointStore:
    return CheckpointStore(tmp_path, announce=(lines.append if lines is not None else print), **kwargs)


def test_save_keeps_the_previous_checkpoint(tmp_path):
    store = _store(tmp_path)
    for step in (1, 2, 3):
        store.save(_payload(step))
    assert load_weights_only(store.latest)["step"] == 3
    assert load_weights_only(store.previous)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    loaded = store.load()
    assert loaded["step"] == 3 and torch.equal(loaded["weights"], torch.full((3,), 3.0))


def test_a_kill_between_the_two_renames_leaves_the_previous_checkpoint(tmp_path):
    lines = []
    store = _store(tmp_path, lines)
    store.save(_payload(1))
    store.save(_payload(2))
    os.replace(store.latest, store.previous)  # the first rename of a save of step 3 ...
    store.in_progress.write_bytes(b"half a file")  # ... and its temporary file, cut off
    assert store.load()["step"] == 2
    assert lines == []  # nothing was damaged: the unfinished save is simply not a checkpoint
    store.save(_payload(3))
    assert store.load()["step"] == 3 and not store.in_progress.exists()


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut", os.urandom(256)], ids=["empty", "cut zip", "random"])
def test_damaged_latest_is_moved_aside_and_the_previous_loads(tmp_path, damage):
    lines = []
    store = _store(tmp_path, lines)
    store.save(_payload(1))
    store.save(_payload(2))
    store.latest.write_bytes(damage)
    assert store.load()["step"] == 1
    (aside,) = tmp_path.glob("checkpoint.pt.damaged-*")
    assert aside.read_bytes() == damage and not store.latest.exists()
    assert len(lines) == 1 and str(store.latest) in lines[0] and aside.name in lines[0]
    assert "resuming from checkpoint.prev.pt" in lines[0]


def test_both_damaged_means_starting_again(tmp_path):
    lines = []
    store = _store(tmp_path, lines)
    store.save(_payload(1))
    store.save(_payload(2))
    store.latest.write_bytes(b"")
    torch.save({"note": Note("not plain data")}, store.previous)
    assert store.load() is None
    assert len(lines) == 2 and all("starting the run again" in line for line in lines[1:])
    assert "needs" in lines[1] and "Note" in lines[1]
    assert {p.name.split(".damaged-")[0] for p in tmp_path.glob("*.damaged-*")} == {"checkpoint.pt",
                                                                                   "checkpoint.prev.pt"}


def test_a_payload_without_the_required_keys_is_damaged(tmp_path):
    lines = []
    store = _store(tmp_path, lines, required_keys=("step", "rng"))
    store.save(_payload(1))
    assert store.load() is None
    assert "lacks rng" in lines[0]


def test_weights_only_load_refuses_globals_unless_allowed(tmp_path):
    path = tmp_path / "note.pt"
    torch.save({"note": Note("hello")}, path)
    with pytest.raises(DamagedCheckpointError, match=r"note\.pt needs .*Note, which a checkpoint may not use"):
        load_weights_only(path)
    assert load_weights_only(path, allowed_globals=[Note])["note"] == Note("hello")
    with pytest.raises(DamagedCheckpointError):  # allowed for that one load only
        load_weights_only(path)
    assert issubclass(DamagedCheckpointError, InputError)


def test_errors_that_are_not_damage_propagate(tmp_path, monkeypatch):
    store = _store(tmp_path, [])
    store.save(_payload(1))

    def no_permission(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(store.latest))

    monkeypatch.setattr(torch, "load", no_permission)
    with pytest.raises(PermissionError):
        store.load()
    assert store.latest.exists()  # not set aside: renaming would not help


def test_save_refuses_a_payload_no_load_would_accept(tmp_path):
    store = _store(tmp_path)
    store.save(_payload(1))
    with pytest.raises(RuntimeError, match="cannot save a checkpoint that loads safely: it needs .*Note"):
        store.save({"note": Note("a plugin's own object")})
    assert load_weights_only(store.latest)["step"] == 1 and not store.in_progress.exists()


def test_move_aside_never_overwrites(tmp_path):
    names = set()
    for content in (b"a", b"b", b"c"):
        (tmp_path / "checkpoint.pt").write_bytes(content)
        names.add(move_aside(tmp_path / "checkpoint.pt").name)
    assert len(names) == 3
    assert sorted((tmp_path / name).read_bytes() for name in names) == [b"a", b"b", b"c"]


def test_rng_state_survives_a_weights_only_load(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    random.gauss(0, 1), np.random.normal()  # leave a cached Gaussian in both Box-Muller generators
    torch.save(rng_state(), tmp_path / "rng.pt")

    def draws():
        return [float(torch.rand(())), float(np.random.normal()), float(np.random.rand()), random.gauss(0, 1),
                random.random()]

    expected = draws()
    draws()
    set_rng_state(load_weights_only(tmp_path / "rng.pt"))
    assert draws() == expected


def test_a_failed_checkpoint_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import torch

    from nightbench.suites.checkpoint_store import CheckpointStore

    store = CheckpointStore(tmp_path)
    store.save({"step": 1})

    def disk_fills(payload, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_fills)
    with pytest.raises(OSError):
        store.save({"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    monkeypatch.undo()
    assert store.load()["step"] == 1  # the last whole checkpoint is untouched


# What torch 2.14 raises when the disk fills during torch.save (measured on a 1 MiB tmpfs)
TORCH_FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


@pytest.mark.parametrize("free_bytes, says_disk_full", [(0, True), (10 * 2**30, False)])
def test_a_save_that_fails_on_a_full_disk_says_so(tmp_path, monkeypatch, free_bytes, says_disk_full):
    import shutil

    store = CheckpointStore(tmp_path)
    store.save({"step": 1})

    def disk_fills(payload, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise TORCH_FULL_DISK

    monkeypatch.setattr(torch, "save", disk_fills)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**40, 2**40 - free_bytes,
                                                                                      free_bytes))
    with pytest.raises((OSError, RuntimeError)) as raised:
        store.save({"step": 2})
    if says_disk_full:  # the run's summary then names the disk and the folder, and how to go on
        assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOSPC
        assert "No space left on device (0.0 MiB free)" in str(raised.value)
        assert raised.value.filename == str(store.in_progress)
        assert raised.value.__cause__ is TORCH_FULL_DISK
    else:  # another failure is not dressed up as a full disk
        assert raised.value is TORCH_FULL_DISK
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert store.load()["step"] == 1
