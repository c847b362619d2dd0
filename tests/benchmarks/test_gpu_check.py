"""The GPU check script's logic, run tiny on CPU (the GPU run itself needs a CUDA machine)."""

from __future__ import annotations

import json

import pytest
import torch

from . import gpu_check


def test_the_traffic_counter_counts_reads_writes_and_host_reads():
    src, dst = torch.randn(1000), torch.empty(1000)
    counter = gpu_check.TrafficCounter()
    with counter:
        dst.copy_(src)  # an op's tensor inputs count as read (src, dst) and a mutated one as written (dst)
        float(src.sum())  # sum reads src; its 0-dim result and the host read move no tensor bytes
    assert counter.host_reads == 1 and counter.total == 3
    assert counter.bytes == 3 * 4000 + 4000


@pytest.mark.slow
def test_tiny_cpu_run_measures_every_requested_entry(tmp_path, capsys):
    out = tmp_path / "check.json"
    wanted = ["nigt [single]", "nigt [multi]", "lamb [multi]", "torch SGD-momentum foreach"]
    argv = ["--device", "cpu", "--tiny", "--out", str(out)] + [arg for name in wanted for arg in ("--only", name)]
    assert gpu_check.main(argv) == 0
    result = json.loads(out.read_text())
    assert sorted(result["rows"]) == sorted(wanted) and result["copy_bandwidth_GBps"] > 0
    for name, row in result["rows"].items():
        assert row["step_ms"] > 0 and row["train_step_ms"] > 0 and row["bytes_per_step"] > 0, name
        assert 0 < row["bandwidth_fraction"] and row["sync_free"] == "n/a (cpu)", name
    assert result["rows"]["nigt [single]"]["host_reads"] > 0  # one per normalized tensor
    assert result["rows"]["nigt [multi]"]["host_reads"] == 0
    assert result["rows"]["torch SGD-momentum foreach"]["host_reads"] == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in wanted) and "copy bandwidth" in printed


def test_without_cuda_it_says_so_and_exits_cleanly(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
