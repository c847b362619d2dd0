"""The planner: the tuning grid's window around the default lr, which presets tune over the whole grid,
the default board (the paper's set; optimizer sets are accepted), and what the board refuses before it
writes anything (an ignored plugin file, an empty optimizer set, a device or suite value every run would refuse)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites import leaderboard
from nightbench.suites.cli import main
from nightbench.suites.config import ConfigError
from nightbench.suites.leaderboard.planner import BoardSettings, check_board
from nightbench.suites.outcomes import ExitCode
from tests.optimizers.builtins import MODERN, PAPER


def test_tuning_grid_window():
    grid = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert leaderboard.tuning_grid(grid, 1e-3, None) == list(grid)
    assert leaderboard.tuning_grid(grid, 1e-3, 10.0) == [1e-4, 1e-3, 1e-2]
    assert leaderboard.tuning_grid(grid, 2.0, 10.0) == [1.0, 2.0]  # off-grid default joins its neighbours
    assert leaderboard.tuning_grid(grid, 1e3, 10.0) == [1e3]  # nothing near: the default alone


@pytest.mark.parametrize("preset, expected", [("paper", None), ("small", leaderboard.LOCAL_TUNING_WINDOW),
                                              ("ci", leaderboard.LOCAL_TUNING_WINDOW)])
def test_paper_preset_tunes_over_the_whole_grid(preset, expected):
    assert leaderboard.tuning_window(preset, None) == expected
    assert leaderboard.tuning_window(preset, "full") is None


PAPER_SET, MODERN_SET = set(PAPER), set(MODERN)


def test_the_default_board_is_the_paper_set_and_sets_are_accepted():
    assert set(BoardSettings.create(suites=["bert_mlm"], preset="ci").optimizers) == PAPER_SET
    assert set(BoardSettings.create(suites=["bert_mlm"], optimizers=["modern"], preset="ci").optimizers) == MODERN_SET


# --- input every run would refuse, or that would be ignored, is refused by the board before it writes ----------
@pytest.fixture
def own_registry(monkeypatch):
    """A copy of the optimizer registry for one test: plugins a test loads are gone after it."""
    optimizer_registry.names()  # builtins and entry points loaded into the registry that is copied
    monkeypatch.setattr(optimizer_registry, "REGISTRY", optimizer_registry.REGISTRY.copy())
    return optimizer_registry.REGISTRY


@pytest.fixture
def no_plugins(own_registry):
    """No plugin optimizer registered (none loaded, no entry point installed), whatever this machine has."""
    for name in [n for n, spec in own_registry.entries.items() if spec.family == "plugin"]:
        del own_registry.entries[name]
    own_registry.errors.clear()


def _optimizer_file(tmp_path: Path, name: str = "board_check_sgd") -> str:
    path = tmp_path / "my_opt.py"
    path.write_text(textwrap.dedent(f'''
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("{name}")
        class MySGD(torch.optim.SGD):
            def __init__(self, params, lr=0.05):
                super().__init__(params, lr=lr)
    '''))
    return str(path)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _refused_boards(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    toy = ["--suites", "toy", "--optimizers", "sgd"]
    return {
        "optimizer file not selected": (["--suites", "toy", "--optimizers", "adam", "--optimizer-file",
                                         _optimizer_file(tmp_path)],
                                        "registers board_check_sgd, which --optimizers adam does not select: the "
                                        "file would be ignored. Add it (--optimizers adam board_check_sgd) or the set "
                                        "plugin, or omit --optimizers"),
        "plugin set without plugins": (["--suites", "toy", "--optimizers", "plugin"],
                                       "--optimizers plugin selects no optimizer: no plugin optimizer is registered: "
                                       "pass --optimizer-file FILE"),
        "suite file not selected": (["--suites", "toy", "--optimizers", "sgd", "--suite-file", _suite_file(tmp_path)],
                                    "registers board_check_suite, which --suites toy does not select"),
        "bert_mlm steps=-1": (["--suites", "bert_mlm", "--optimizers", "adam", "--set", "steps=-1"],
                              "suite 'bert_mlm': invalid steps=-1: expected a positive integer"),
        "bert_mlm heads": (["--suites", "bert_mlm", "--optimizers", "adam", "--set", "num_heads=3"],
                           "invalid model shape: hidden_size 32 is not a multiple of num_heads 3"),
        "bert_mlm seq_len": (["--suites", "bert_mlm", "--optimizers", "adam", "--set", "seq_len=4"],
                             "invalid seq_len 4: expected at least 8"),
        "bert_mlm masking": (["--suites", "bert_mlm", "--optimizers", "adam", "--set", "mask_probability=1.5"],
                             "invalid mask_probability 1.5: expected a fraction in (0, 1)"),
        "resnet epochs=0": (["--suites", "resnet50_imagenet", "--optimizers", "sgd", "--set", "epochs=0"],
                            "invalid value 0.0 for resnet50_imagenet key 'epochs': expected a number > 0.0"),
        "device gpu": ([*toy, "--device", "gpu"], "invalid --device 'gpu': expected auto, cpu, cuda or cuda:N"),
        "device cuda:7 here": ([*toy, "--device", "cuda:7"], "cuda:7"),
    }


def _suite_file(tmp_path: Path) -> str:
    path = tmp_path / "my_suite.py"
    path.write_text("from tests.suites.toy_suite import ToySuite\n\n"
                    "class Other(ToySuite):\n    name = 'board_check_suite'\n\nSUITE = Other()\n")
    return str(path)


@pytest.mark.parametrize("case", ["optimizer file not selected", "plugin set without plugins",
                                  "suite file not selected", "bert_mlm steps=-1", "bert_mlm heads", "bert_mlm seq_len",
                                  "bert_mlm masking", "resnet epochs=0", "device gpu",
                                  "device cuda:7 here"])
def test_the_board_refuses_before_writing_anything(clean_catalog, toy_suite, no_plugins, tmp_path, capsys, case):
    argv, message = _refused_boards(tmp_path)[case]
    if case == "device cuda:7 here" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU cuda:7")
    results = tmp_path / "results"
    before = _files_under(tmp_path)
    code = main(["leaderboard", "--preset", "ci", "--results", str(results), "--seeds", "1", "--jobs", "1", *argv])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT, err
    assert message in err and "internal error" not in err, err
    assert not results.exists()  # no run, no _logs, no request file
    assert _files_under(tmp_path) == before


def test_a_selected_optimizer_file_is_accepted_by_name_by_the_plugin_set_or_by_default(own_registry, tmp_path):
    path = _optimizer_file(tmp_path)
    for optimizers in (["adam", "board_check_sgd"], ["plugin"], None):
        settings = BoardSettings.create(suites=["bert_mlm"], optimizers=optimizers, preset="ci",
                                        optimizer_files=[path])
        assert "board_check_sgd" in settings.optimizers


def test_the_plugin_set_with_a_plugin_file_and_the_default_without_plugins_are_accepted(no_plugins, tmp_path):
    assert set(BoardSettings.create(suites=["bert_mlm"], preset="ci").optimizers) == PAPER_SET
    settings = BoardSettings.create(suites=["bert_mlm"], optimizers=["plugin"], preset="ci",
                                    optimizer_files=[_optimizer_file(tmp_path)])
    assert settings.optimizers == ("board_check_sgd",)


def test_a_device_name_is_checked_everywhere_and_cuda_only_where_the_runs_execute():
    with pytest.raises(ConfigError, match="invalid --device 'gpu'"):
        BoardSettings.create(suites=["bert_mlm"], optimizers=["adam"], preset="ci", device="gpu")
    settings = BoardSettings.create(suites=["bert_mlm"], optimizers=["adam"], preset="ci", device="cuda:7")
    check_board(settings, here=False)  # a SLURM board: the node it runs on may have the GPU
    if torch.cuda.device_count() <= 7:
        with pytest.raises(ConfigError, match="cuda:7"):
            check_board(settings, here=True)


def test_check_board_passes_a_valid_board_and_names_the_suite_that_refuses(tmp_path):
    check_board(BoardSettings.create(suites=["bert_mlm", "resnet50_imagenet"], optimizers=["adam", "sgd"],
                                     preset="ci", device="cpu"))
    bad = BoardSettings.create(suites=["bert_mlm"], optimizers=["adam"], preset="ci", overrides={"eval_every": 0})
    with pytest.raises(ConfigError, match="invalid eval_every=0: expected a positive integer"):
        check_board(bad)
