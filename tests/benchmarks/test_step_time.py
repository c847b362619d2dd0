"""The step-time benchmark's logic and its entries, run tiny (the figures come from running the script)."""

from __future__ import annotations

import pytest
import torch

from .step_time import (REFERENCES, TIMM_REFERENCES, WARMUP_ROUNDS, PairedBaselines, Timing, entries, main,
                        make_entry, make_params, ratio_table)

TINY = [(16, 8)] * 4 + [(16,)] * 2


@pytest.mark.parametrize("entry,foreach", entries())
def test_every_entry_steps(entry, foreach):
    params = make_params(TINY)
    before = params[0].detach().clone()
    optimizer, step = make_entry(entry, foreach, params)
    step()
    assert torch.isfinite(params[0]).all()
    assert not torch.equal(params[0].detach(), before)  # the step changed the weights
    if entry in REFERENCES or entry in TIMM_REFERENCES:
        assert len(optimizer.state) == len(params)  # it really stepped and keeps state


def test_a_tiny_run_prints_the_requested_entries_with_their_ratios(capsys):
    assert main(["--tiny", "--rounds", "1", "--only", "lamb[multi]", "--only", "torch_sgd_foreach"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"lamb[multi]", "torch_sgd_foreach", "each", "fastest"}  # "each optimizer with a target..."
    assert "<= 1.1x adam:" in rows["lamb[multi]"] and len(rows["lamb[multi]"].split()) > 5


def test_an_unknown_entry_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "lamb[fused]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown entry lamb[fused]" in err and "lamb[multi]" in err


def test_paired_ratios_use_the_faster_baseline_after_the_warmup():
    paired = PairedBaselines.__new__(PairedBaselines)
    paired.kinds = ("sgd", "adam")
    warm = [9.0] * WARMUP_ROUNDS  # warmup rounds must not count
    paired.seconds = {"torch_sgd_forloop": warm + [0.020, 0.018, 0.022], "torch_sgd_foreach": warm + [0.010, 0.009, 0.011],
                      "torch_adam_forloop": warm + [0.040, 0.030, 0.050], "torch_adam_foreach": warm + [0.05] * 3,
                      "torch_adam_fused": warm + [0.045, 0.035, 0.06]}
    assert paired.ratios(0.012, 0.0117) == {"sgd": pytest.approx((1.2, 1.3)), "adam": pytest.approx((0.3, 0.39))}
    paired.seconds["torch_adam_fused"] = warm + [0.030, 0.020, 0.035]  # now the fastest Adam
    assert paired.ratios(0.012, 0.0117)["adam"] == pytest.approx((0.4, 0.585))
    lines = ratio_table({
        "lars": Timing(0.012, 0.0117, {"sgd": (1.2, 1.3)}),
        "lamb": Timing(0.06, 0.033, {"sgd": (6.0, 3.7), "adam": (1.5, 1.1)}),
        "nigt_adaptive[single]": Timing(0.02, 0.019, {"sgd": (2.0, 1.9)}),
        "nigt_adaptive[multi]": Timing(0.014, 0.012, {"sgd": (1.4, 1.2)}),
    })
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["lars"].split()[3:5] == ["1.20", "-"]
    assert "<= 1.1x sgd: MISSES (1.20; 1.30)" in rows["lars"]
    assert "<= 1.1x adam: MISSES (1.50; 1.10)" in rows["lamb"]
    assert "<= 1.5x sgd: MISSES (2.00; 1.90)" in rows["nigt_adaptive[single]"]
    fastest = [line for line in lines if line.startswith("fastest ")]
    assert [line.split()[1] for line in fastest] == ["lars", "lamb", "nigt_adaptive[multi]"]
    assert "<= 1.5x sgd: meets (1.40; 1.20)" in fastest[2]
    assert ratio_table({}) == ["nothing was timed"]
