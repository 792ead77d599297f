"""The baseline's command line refuses a setting out of range before it imports PyTorch or
touches a run folder: one line naming the option, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from wordnet_facts import REPO


def baseline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "baseline", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "command, option, value, wanted",
    [
        ("train", "--epochs", "0", "an integer of at least 1"),
        ("train", "--batch", "-8", "an integer of at least 1"),
        ("train", "--lr", "0", "a number above 0"),
        ("train", "--lr", "inf", "a number above 0"),
        ("train", "--size", "0", "an integer of at least 1"),
        ("train", "--workers", "-1", "an integer of at least 0"),
        ("train", "--patience", "-1", "an integer of at least 0"),
        ("train", "--warmup", "-2", "an integer of at least 0"),
        ("train", "--weight-decay", "-0.1", "a number of at least 0"),
        ("train", "--momentum", "1.5", "a number from 0 to 1"),
        ("train", "--dropout", "2", "a number from 0 to 1"),
        ("train", "--seed", "-1", "an integer of at least 0"),
        ("train", "--cache-gb", "-1", "a number of at least 0"),
        ("train", "--max-steps", "0", "an integer of at least 1"),
        ("evaluate", "--workers", "many", "an integer of at least 0"),
        ("summary", "--classes", "0", "an integer of at least 1"),
        ("summary", "--size", "-224", "an integer of at least 1"),
    ],
)
def test_a_setting_out_of_range_is_one_line_and_leaves_the_run_folder_alone(tmp_path, command, option, value, wanted):
    run = tmp_path / "demo" / "runs" / "alexnet"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"kept": true}\n')
    data = () if command == "summary" else ("--data", tmp_path, "--subset", "demo")
    done = baseline(command, *data, option, value)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m baseline {command}: error: argument {option}: ")
    assert wanted in lines[0] and lines[0].endswith("(--help lists the options)")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["alexnet", "demo", "metrics.json", "runs"]
    assert (run / "metrics.json").read_text() == '{"kept": true}\n'


def test_an_unknown_command_is_one_line():
    done = baseline("fit")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m baseline: error: argument <command>: invalid choice: 'fit' (choose from 'train', 'summary', "
        "'evaluate', 'predict') (--help lists the options)"
    ]
