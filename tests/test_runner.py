"""The stage runner: skip when current, rerun on change, never leave partial output."""

from __future__ import annotations

import fcntl
import os

import pytest

from pipeline import runner
from pipeline.errors import InputError, PipelineError


def stage(tmp_path, **kw) -> runner.Stage:
    defaults = dict(name="toy", workdir=tmp_path / "work", outputs=("a.txt", "parts"))
    return runner.Stage(**{**defaults, **kw})


def writer(calls: list, text: str = "hello"):
    def build(tmp):
        calls.append(tmp)
        (tmp / "a.txt").write_text(text)
        (tmp / "parts").mkdir()
        for i in range(3):
            (tmp / "parts" / f"part-{i}.txt").write_text(f"{text} {i}")
        return f"wrote {text}"

    return build


def test_runs_once_then_skips_until_forced(tmp_path):
    calls, logs = [], []
    first = runner.run(stage(tmp_path), writer(calls), log=logs.append)
    assert not first.skipped and first.summary == "wrote hello"
    assert (tmp_path / "work" / "a.txt").read_text() == "hello"
    assert sorted(p.name for p in (tmp_path / "work" / "parts").iterdir()) == ["part-0.txt", "part-1.txt", "part-2.txt"]
    second = runner.run(stage(tmp_path), writer(calls), log=logs.append)
    assert second.skipped and len(calls) == 1
    assert logs[-1].startswith("toy: up to date") and "wrote hello" in logs[-1]
    runner.run(stage(tmp_path), writer(calls, "again"), force=True, log=logs.append)
    assert len(calls) == 2 and (tmp_path / "work" / "a.txt").read_text() == "again"
    assert not list((tmp_path / "work").glob(".tmp-*"))


def test_settings_inputs_and_touched_outputs_each_cause_a_rerun(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("one")
    calls = []

    def run(**kw):
        return runner.run(stage(tmp_path, inputs=(source,), **kw), writer(calls), log=lambda _: None)

    run(settings={"k": 1})
    run(settings={"k": 1})
    assert len(calls) == 1
    run(settings={"k": 2})
    assert len(calls) == 2
    source.write_text("two, longer")
    run(settings={"k": 2})
    assert len(calls) == 3
    (tmp_path / "work" / "parts" / "part-1.txt").write_text("edited by hand")
    run(settings={"k": 2})
    assert len(calls) == 4
    run(settings={"k": 2}, version=2)
    assert len(calls) == 5


def test_a_missing_input_is_an_input_error_naming_it(tmp_path):
    with pytest.raises(InputError, match="input.txt: stage toy needs this input"):
        runner.run(stage(tmp_path, inputs=(tmp_path / "input.txt",)), writer([]))


def test_a_failing_build_leaves_nothing_behind(tmp_path):
    def fails(tmp):
        (tmp / "a.txt").write_text("half")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        runner.run(stage(tmp_path), fails)
    assert not (tmp_path / "work").exists()  # a new working folder goes again

    runner.run(stage(tmp_path), writer([]), log=lambda _: None)
    with pytest.raises(ValueError):
        runner.run(stage(tmp_path), fails, force=True)
    assert (tmp_path / "work" / "a.txt").read_text() == "hello"  # the last good output stays
    assert not list((tmp_path / "work").glob(".tmp-*"))


def test_a_build_that_skips_an_output_fails(tmp_path):
    def partial(tmp):
        (tmp / "a.txt").write_text("only this")
        return "partial"

    with pytest.raises(PipelineError, match="did not write parts"):
        runner.run(stage(tmp_path), partial)
    assert not (tmp_path / "work" / "a.txt").exists()


def test_a_second_run_of_the_same_stage_is_refused_while_one_holds_the_lock(tmp_path):
    s = stage(tmp_path)
    lock = s.workdir / runner.STAMPS / "toy.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(PipelineError, match="another run of stage toy"):
            runner.run(s, writer([]))
    finally:
        os.close(fd)
    runner.run(s, writer([]), log=lambda _: None)
    assert (s.workdir / "a.txt").exists()


def test_stale_temporary_folders_of_a_killed_run_are_cleared(tmp_path):
    stale = tmp_path / "work" / ".tmp-toy-killed"
    stale.mkdir(parents=True)
    (stale / "a.txt").write_text("half")
    runner.run(stage(tmp_path), writer([]), log=lambda _: None)
    assert not stale.exists()
