"""The SLURM executor's settings: flags and config file -> submitit parameters -> the sbatch script.

The sbatch scripts are written by submitit itself, with its own mocked sbatch (no cluster needed);
these tests read what a cluster would be asked for.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import pytest

from nightbench.optimizers.errors import InputError
from nightbench.suites.leaderboard.slurm_options import (OWNED_PARAMETERS, SETTINGS, SlurmOptionError, add_slurm_arguments,
                                                          options_from_args, parse_option, submitit_parameters)
from nightbench.suites.leaderboard.slurm_queue import parse_squeue
from nightbench.suites.status import compress_job_ids

submitit = pytest.importorskip("submitit")
from submitit.slurm.test_slurm import mocked_slurm  # noqa: E402 - submitit's own sbatch mock


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_slurm_arguments(parser)
    return parser.parse_args(list(argv))


def sbatch_flags(tmp_path, options, runs: int = 1, single_process: bool = False) -> dict[str, str]:
    """The #SBATCH lines submitit writes for `runs` jobs submitted with these options, as {flag: value}."""
    with mocked_slurm():
        executor = submitit.SlurmExecutor(folder=tmp_path / "jobs")
        executor.update_parameters(**submitit_parameters(options, single_process=single_process))
        jobs = executor.map_array(abs, list(range(runs)))
        script = jobs[0].paths.submission_file.read_text()
    flags = {}
    for line in script.splitlines():
        match = re.fullmatch(r"#SBATCH --([\w-]+)(?:=(.*))?", line.strip())
        if match:
            flags[match.group(1)] = match.group(2) if match.group(2) is not None else True
    return flags


def test_the_flags_reach_sbatch(tmp_path):
    options = options_from_args(parse("--slurm-partition", "gpu", "--slurm-time", "30", "--slurm-account", "lab",
                                      "--slurm-qos", "high", "--mem-per-run", "64g", "--cpus-per-run", "6"))
    flags = sbatch_flags(tmp_path, options)
    assert flags["partition"] == "gpu" and flags["account"] == "lab" and flags["qos"] == "high"
    assert flags["time"] == "30"
    assert flags["mem"] == "64G"
    assert flags["cpus-per-task"] == "6"
    assert flags["nodes"] == "1" and flags["ntasks-per-node"] == "1"
    assert "gpus-per-node" not in flags  # a CPU run asks for no GPU
    # the checkpoint signal comes before the limit, early enough to stop and requeue
    signal, delay = flags["signal"].split("@")
    assert signal == "USR2" and 0 < int(delay) < 30 * 60


def test_one_node_of_eight_gpus_runs_eight_tasks(tmp_path):
    options = options_from_args(parse("--gpus-per-run", "8", "--cpus-per-run", "64"))
    flags = sbatch_flags(tmp_path, options)
    assert (flags["nodes"], flags["ntasks-per-node"], flags["gpus-per-node"]) == ("1", "8", "8")
    assert flags["cpus-per-task"] == "8"  # the node's 64 cores shared by its 8 processes
    assert options.world_size == 8


def test_nodes_per_run_spreads_one_run_over_several_nodes(tmp_path):
    options = options_from_args(parse("--gpus-per-run", "4", "--nodes-per-run", "2"))
    flags = sbatch_flags(tmp_path, options)
    assert (flags["nodes"], flags["ntasks-per-node"], flags["gpus-per-node"]) == ("2", "4", "4")
    assert options.world_size == 8
    # experiment suites (one process of their own) are submitted apart: one node, one task, one GPU
    single = sbatch_flags(tmp_path / "single", options, single_process=True)
    assert (single["nodes"], single["ntasks-per-node"], single["gpus-per-node"]) == ("1", "1", "1")


def test_a_stage_is_one_job_array_throttled_by_max_parallel(tmp_path):
    flags = sbatch_flags(tmp_path, options_from_args(parse("--max-parallel", "2")), runs=5)
    assert flags["array"] == "0-4%2"
    unthrottled = sbatch_flags(tmp_path / "all", options_from_args(parse()), runs=3)
    assert unthrottled["array"] == "0-2%3"


def test_slurm_options_pass_through(tmp_path):
    options = options_from_args(parse("--slurm-option", "constraint=a100", "--slurm-option", "reservation=maint",
                                      "--slurm-option", "exclusive=true", "--slurm-option=--begin=now+1hour"))
    flags = sbatch_flags(tmp_path, options)
    assert flags["constraint"] == "a100"  # a submitit parameter
    assert flags["reservation"] == "maint"  # unknown to submitit: written as an sbatch flag
    assert flags["exclusive"] is True
    assert flags["begin"] == "now+1hour"


def test_parse_option_types_values():
    assert parse_option("signal_delay_s=30") == ("signal_delay_s", 30)
    assert parse_option("exclusive=False") == ("exclusive", False)
    assert parse_option("mail-type=END") == ("mail_type", "END")
    with pytest.raises(SlurmOptionError, match="KEY=VALUE"):
        parse_option("constraint")


def test_a_passed_option_cannot_override_a_flag():
    with pytest.raises(SlurmOptionError, match="--slurm-time"):
        options_from_args(parse("--slurm-option", "time=5"))


def test_config_file_holds_a_labs_settings_and_flags_win(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(textwrap.dedent("""
        partition = "gpu"
        time = 1440
        gpus_per_run = 8
        account = "lab"
        max_parallel = 16
        [options]
        constraint = "a100"
    """))
    options = options_from_args(parse("--executor-config", str(config), "--slurm-time", "60"))
    assert (options.partition, options.time, options.gpus_per_run, options.account) == ("gpu", 60, 8, "lab")
    flags = sbatch_flags(tmp_path, options, runs=20)
    assert flags["constraint"] == "a100" and flags["array"] == "0-19%16" and flags["time"] == "60"


@pytest.mark.parametrize("text, message", [
    ('partiton = "gpu"', "unknown key.*partiton.*accepted: partition"),
    ("time = ", "not valid TOML"),
    ('options = "a100"', "must be a table"),
])
def test_a_bad_config_file_says_what_is_wrong(tmp_path, text, message):
    config = tmp_path / "cluster.toml"
    config.write_text(text + "\n")
    with pytest.raises(SlurmOptionError, match=message):
        options_from_args(parse("--executor-config", str(config)))


def test_a_missing_config_file_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="cannot read --executor-config"):
        options_from_args(parse("--executor-config", str(tmp_path / "absent.toml")))


@pytest.mark.parametrize("argv, message", [
    (("--slurm-time", "0"), "--slurm-time"),
    (("--mem-per-run", "lots"), "--mem-per-run"),
    (("--gpus-per-run", "-1"), "--gpus-per-run"),
    (("--nodes-per-run", "0"), "--nodes-per-run"),
    (("--gpus-per-run", "8", "--cpus-per-run", "4"), "fewer than the run's 8 processes"),
    (("--max-parallel", "0"), "--max-parallel"),
])
def test_bad_values_are_bad_input(argv, message):
    with pytest.raises(InputError, match=message):
        options_from_args(parse(*argv))


def test_short_time_limits_still_signal_before_the_limit():
    for minutes in (1, 2, 5, 60, 24 * 60):
        delay = options_from_args(parse("--slurm-time", str(minutes))).signal_delay_s
        assert 0 < delay < minutes * 60
        assert delay <= 90  # never earlier than submitit's own default asks


def test_squeue_lines_become_states():
    text = "31_0|RUNNING\n31_1|PENDING\n31_2|COMPLETING\n31_3|COMPLETED\n40|REQUEUED\n41|CANCELLED\n"
    assert parse_squeue(text) == {"31_0": "running", "31_1": "queued", "31_2": "running", "40": "queued"}


def test_job_ids_are_shown_compactly():
    assert compress_job_ids(["31_2", "31_0", "31_1", "31_5", "40", "31_7", "31_8"]) == "31_[0-2,5,7-8] 40"
    assert compress_job_ids([]) == ""


def test_the_readme_config_example_is_accepted(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    example = readme.split("## On a SLURM cluster", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    config = tmp_path / "cluster.toml"
    config.write_text(example)
    options = options_from_args(parse("--executor-config", str(config)))
    assert options.gpus_per_run == 8 and options.world_size == 8 and options.options["constraint"] == "a100"
    flags = sbatch_flags(tmp_path, options)
    assert flags["partition"] == "gpu" and flags["gpus-per-node"] == "8"


def test_a_bad_value_is_named_as_where_it_came_from(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text('time = 0\npoll_seconds = -1\nqos = ""\n')
    with pytest.raises(SlurmOptionError, match=r"invalid time \(in .*cluster.toml\) 0: expected an integer >= 1"):
        options_from_args(parse("--executor-config", str(config)))
    # the flag wins, and a refusal of the flag's value names the flag
    with pytest.raises(SlurmOptionError, match=r"invalid --slurm-qos '': expected a non-empty name"):
        options_from_args(parse("--executor-config", str(config), "--slurm-time", "5", "--slurm-qos", ""))
    config.write_text("poll_seconds = -1\n")
    with pytest.raises(SlurmOptionError, match="poll_seconds .*expected a number of seconds > 0"):
        options_from_args(parse("--executor-config", str(config)))


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.flag], ids=lambda s: s.key)
def test_every_flag_sets_its_config_key_and_the_file_key_means_the_same(tmp_path, setting):
    value = {"zero_stage": "2", "deepspeed_config": str(tmp_path / "ds.json"), "mem_per_run": "8G",
             "gpus_per_run": "1"}.get(setting.key, "3" if setting.type is int else "gpu")
    (tmp_path / "ds.json").write_text("{}")
    from_flag = options_from_args(parse(setting.flag, value))
    config = tmp_path / "cluster.toml"
    config.write_text(f"{setting.key} = {value if setting.type is int else repr(value)}\n")
    from_file = options_from_args(parse("--executor-config", str(config)))
    assert getattr(from_flag, setting.key) == getattr(from_file, setting.key) != setting.default


def test_every_owned_submitit_parameter_is_one_submitit_takes():
    taken = set(submitit.SlurmExecutor._valid_parameters()) | {"map_count"}  # map_count: set by map_array
    assert set(OWNED_PARAMETERS) <= taken
    assert {s.submitit for s in SETTINGS if s.submitit} <= taken
