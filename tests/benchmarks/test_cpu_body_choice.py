"""The CPU body-choice benchmark's logic, run tiny (the figures themselves come from running the script)."""

from __future__ import annotations

import pytest

from . import cpu_body_choice
from .cpu_body_choice import Row


def test_the_verdict_compares_the_faster_body_with_cpu_foreach():
    rows = [Row("a", 0.010, 0.020, False), Row("b", 0.010, 0.020, True), Row("c", 0.030, 0.015, False)]
    lines = cpu_body_choice.table(rows, [(4, 2)], rounds=5)
    by_name = {line.split()[0]: line.split() for line in lines[2:]}
    assert by_name["a"][1:5] == ["10.00", "20.00", "2.00", "single"] and by_name["a"][-3:] == ["picks", "the", "faster"]
    assert by_name["b"][5] == "multi" and by_name["b"][-3:] == ["PICKS", "THE", "SLOWER"]
    assert by_name["c"][3:5] == ["0.50", "multi"] and by_name["c"][-1] == "SLOWER"
    assert "8 float32 parameters in 1 tensors, median of 5" in lines[0]


def test_a_tiny_run_prints_every_optimizer_with_two_bodies(capsys):
    expected = cpu_body_choice.two_body_optimizers()
    assert {"nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb"} <= set(expected)
    assert "sgd" not in expected and "adam" not in expected  # torch's classes: no CPU_FOREACH to choose
    assert cpu_body_choice.main(["--tiny", "--rounds", "1"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == expected


def test_rounds_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cpu_body_choice.main(["--rounds", "0"])
    assert exit_info.value.code == 2 and "--rounds must be at least 1, got 0" in capsys.readouterr().err
