"""Progress a person can watch: tqdm's bar on a terminal, plain lines while the work runs
when stderr is a pipe or a log (nohup, SLURM, CI), and the download's summary in sentences."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest
from conftest import REPO
from tqdm import tqdm

from pipeline.download.stage import short_classes, summary_line
from pipeline.errors import InputError
from pipeline.imagehost import ImageHost
from pipeline.progress import Lines, counted, plural, progress

# A stage's loop in miniature: steps until STOP exists (or 1000), then the rest at once.
SCRIPT = """
import pathlib, sys, time
from pipeline.progress import progress
stop = pathlib.Path(sys.argv[1])
with progress(total=1000, desc="work", unit="step") as bar:
    bar.set_postfix(ok="97%")
    while not stop.exists() and bar.n < 999:
        time.sleep(0.01)
        bar.update()
    bar.update(1000 - bar.n)
"""
LINE = re.compile(r"work: \d+/1000 steps \(\d+%\), [\d.]+ steps/s, 0:\d\d elapsed(, eta \d+:\d\d)?; ok 97%")
LAST = re.compile(r"work: done, 1000 steps in 0:\d\d, [\d.]+ steps/s; ok 97%")


def start(*args: str, seconds: str = "0.05", **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env={**os.environ, "PROGRESS_SECONDS": seconds}, **popen)


def test_a_piped_process_prints_lines_while_it_runs_and_a_last_line(tmp_path):
    stop = tmp_path / "stop"
    worker = start("-c", SCRIPT, str(stop), stderr=subprocess.PIPE)
    try:
        early = [worker.stderr.readline(), worker.stderr.readline()]
        assert worker.poll() is None, "the lines came only when the work had ended"
        stop.touch()
        _, rest = worker.communicate(timeout=60)
    finally:
        worker.kill()
    lines = b"".join(early + [rest]).decode().split("\n")
    assert lines[-1] == "" and all("\r" not in line and "\x1b" not in line for line in lines)
    assert all(LINE.fullmatch(line) for line in lines[:-2]), lines
    assert LAST.fullmatch(lines[-2]), lines[-2]


def test_on_a_terminal_it_is_tqdms_bar(tmp_path):
    stop = tmp_path / "stop"
    stop.touch()
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new pty is 0 wide
    worker = start("-c", SCRIPT, str(stop), stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            piece = os.read(main, 4096)
        except OSError:  # the terminal's other end closed
            break
        if not piece:
            break
        shown += piece
    os.close(main)
    assert worker.wait(timeout=60) == 0
    assert b"\r" in shown and b"1000/1000" in shown and b"step/s" in shown
    assert b"work: done" not in shown


@pytest.mark.slow
def test_a_piped_download_shows_its_progress_before_it_ends(tmp_path):
    """The download stage as a log sees it: a line while the slow pictures are still coming."""
    from test_download import write_candidates

    with ImageHost() as host:
        urls = [host.url(f"/picture/n01440764/{n}.jpg") for n in range(6)]
        urls += [host.url(f"/fault/slow/progress-{n}?seconds={1.5 * n}") for n in (1, 2, 3)]
        workdir = tmp_path / "piped"
        write_candidates(workdir, urls)
        args = ("--data", tmp_path, "--subset", "piped", "--allow-private-hosts", "--host-rate", "0")
        worker = start(
            "-m", "pipeline", "download", *map(str, args), "--processes", "1", "--timeout", "20",
            seconds="0.2", stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            first = worker.stderr.readline()
            running = worker.poll() is None
            _, rest = worker.communicate(timeout=120)
        finally:
            worker.kill()
    assert worker.returncode == 0, first + rest
    assert re.fullmatch(r"download: \d/9 urls \(\d+%\), [\d.]+ urls/s, 0:0\d elapsed, eta \d+:\d\d; ok \d+%.*\n", first)
    assert running, "the first progress line came after the download ended"
    assert "\r" not in first + rest and "\x1b" not in first + rest
    assert re.search(r"^download: done, 9 urls in 0:0\d, [\d.]+ urls/s; ok 100%", rest, re.M), rest
    assert "download: 9 of 9 candidates ok (100.0%) in 1 shard; every class has an image -> " in rest


def test_lines_say_the_count_rate_time_and_postfix(capsys):
    bar = progress(total=4, desc="hash", unit="img")
    assert isinstance(bar, Lines)  # capsys's stderr is no terminal
    bar.seconds = 1e-9
    bar.set_postfix({"ok": "50%"}, refresh=False, mb="1.2")
    bar.update(3)
    bar.update()
    bar.close()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"hash: 3/4 imgs \(75%\), [\d.]+ imgs/s, 0:00 elapsed, eta 0:00; ok 50%, mb 1\.2", lines[0])
    assert re.fullmatch(r"hash: 4/4 imgs \(100%\), [\d.]+ imgs/s, 0:00 elapsed; ok 50%, mb 1\.2", lines[1])
    assert re.fullmatch(r"hash: done, 4 imgs in 0:00, [\d.]+ imgs/s; ok 50%, mb 1\.2", lines[2])
    assert len(lines) == 3


def test_bytes_are_scaled_and_an_unknown_total_has_no_eta(capsys):
    with Lines(desc="urllist", total=5_000_000, unit="B", unit_scale=True, seconds=1e-9) as bar:
        bar.update(1_250_000)
    with Lines(desc="synsets", unit="entry", seconds=1e-9) as bar:
        bar.update(2)
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"urllist: 1\.25 MB of 5 MB \(25%\), [\d.]+ [kMGT]?B/s, 0:00 elapsed, eta 0:00", lines[0])
    assert lines[1].startswith("urllist: stopped at 1.25 MB of 5 MB (25%) after 0:00, ")
    assert re.fullmatch(r"synsets: 2 entries, [\d.]+ entries/s, 0:00 elapsed", lines[2])
    assert lines[3].startswith("synsets: done, 2 entries in 0:00, ")


def test_work_that_stops_early_says_where(capsys):
    with pytest.raises(RuntimeError), Lines(desc="export", total=10, unit="img", seconds=1e-9) as bar:
        bar.update(4)
        raise RuntimeError("disk full")
    assert capsys.readouterr().err.splitlines()[-1].startswith("export: stopped at 4/10 imgs (40%) after 0:00, ")


def test_iterating_counts_each_item_and_ends_with_the_last_line(capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_SECONDS", "0.000001")
    seen = []
    for item in progress(["a", "b", "c"], desc="list", unit="entry"):
        time.sleep(0.001)
        seen.append(item)
    lines = capsys.readouterr().err.splitlines()
    assert seen == ["a", "b", "c"]
    assert [line.split(",")[0] for line in lines] == [
        "list: 1/3 entries (33%)",
        "list: 2/3 entries (67%)",
        "list: 3/3 entries (100%)",
        "list: done",
    ]


def test_short_work_prints_nothing_and_leave_false_no_last_line(capsys, monkeypatch):
    with progress(total=3, desc="quick", unit="img") as bar:  # 10 s between lines: none in a test
        bar.update(3)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("PROGRESS_SECONDS", "0.000001")
    with progress(total=3, desc="epoch 1/2", unit="img", leave=False) as bar:
        time.sleep(0.001)
        bar.update(3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch 1/2: 3/3 imgs (100%), ")


def test_progress_seconds_zero_prints_no_line_and_a_bad_value_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_SECONDS", "0")
    with progress(total=3, desc="quiet", unit="img") as bar:
        time.sleep(0.001)
        bar.update(3)
    assert capsys.readouterr().err == ""
    for bad in ("ten", "-1", "inf", "nan"):
        monkeypatch.setenv("PROGRESS_SECONDS", bad)
        with pytest.raises(InputError, match=f"^PROGRESS_SECONDS '{bad}': must be a number of seconds"):
            progress(total=3, desc="x")


def test_disable_shows_nothing_even_on_a_terminal_and_keeps_the_calls(capsys):
    bar = progress(["a"], desc="pull", disable=True)
    assert isinstance(bar, tqdm) and list(bar) == ["a"]
    bar.set_postfix_str("x")
    bar.close()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "noun, plural_form",
    [("url", "urls"), ("entry", "entries"), ("class", "classes"), ("day", "days"), ("box", "boxes")],
)
def test_plural(noun, plural_form):
    assert plural(noun) == plural_form
    assert counted(1, noun) == f"1 {noun}" and counted(0, noun) == f"0 {plural_form}"


def report(shards: int, classes: int, below: int, minimum: int) -> dict:
    wnids = [f"n{n:08d}" for n in range(classes)]
    return {
        "ok": 12,
        "candidates": 20,
        "ok_percent": 60.0,
        "shards": shards,
        "min_per_class": minimum,
        "per_class": {w: {"candidates": 5, "ok": 0 if w in wnids[:below] else minimum} for w in wnids},
        "classes_below_min": wnids[:below],
    }


@pytest.mark.parametrize(
    "shards, classes, below, minimum, line",
    [
        (1, 3, 0, 1, "12 of 20 candidates ok (60.0%) in 1 shard; every class has an image"),
        (2, 3, 0, 5, "12 of 20 candidates ok (60.0%) in 2 shards; every class has at least 5 images"),
        (1, 3, 1, 1, "12 of 20 candidates ok (60.0%) in 1 shard; 1 of 3 classes has no image"),
        (3, 3, 2, 732, "12 of 20 candidates ok (60.0%) in 3 shards; 2 of 3 classes have fewer than 732 images"),
        (1, 1, 1, 2, "12 of 20 candidates ok (60.0%) in 1 shard; 1 of 1 class has fewer than 2 images"),
        (1, 3, 0, 0, "12 of 20 candidates ok (60.0%) in 1 shard"),
    ],
)
def test_the_download_summary_says_a_sentence(shards, classes, below, minimum, line):
    figures = report(shards, classes, below, minimum)
    assert summary_line(figures) == line
    if below:
        assert short_classes(figures) == line.split("; ")[1]


def test_a_call_sites_results_go_to_their_own_stream_beside_the_lines(capsys):
    with Lines(["a.jpg", "b.jpg"], desc="predict", unit="img", seconds=1e-9) as bar:
        for name in bar:
            bar.write(f"{name}: n01440764 0.9")
    out, err = capsys.readouterr()
    assert out.splitlines() == ["a.jpg: n01440764 0.9", "b.jpg: n01440764 0.9"]
    assert err.splitlines()[-1].startswith("predict: done, 2 imgs in 0:00, ")
