"""The stage runner: skip when current, rerun on change, never leave partial output."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal

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


OLD_OUTPUTS = ("a.txt", "parts", "reports/toy.txt")
NEW_OUTPUTS = (*OLD_OUTPUTS, "extra.txt")  # the new run adds an output the previous one lacked


def swap_stage(tmp_path, version: int) -> runner.Stage:
    return stage(tmp_path, outputs=OLD_OUTPUTS if version == 1 else NEW_OUTPUTS, settings={"v": version})


def nested_writer(text: str, calls: list | None = None):
    """Every output of ``NEW_OUTPUTS`` (those the stage declares), each file holding ``text``."""

    def build(tmp):
        if calls is not None:
            calls.append(text)
        writer([], text)(tmp)
        (tmp / "reports").mkdir()
        (tmp / "reports" / "toy.txt").write_text(text)
        (tmp / "extra.txt").write_text(text)
        return f"wrote {text}"

    return build


def texts(workdir) -> dict[str, str]:
    """Every file under the outputs, by relative name, ignoring the runner's own folders."""
    return {
        p.relative_to(workdir).as_posix(): p.read_text()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and not p.relative_to(workdir).parts[0].startswith(".")
    }


OLD_TEXTS = {"a.txt": "old", "parts/part-0.txt": "old 0", "parts/part-1.txt": "old 1", "parts/part-2.txt": "old 2"}
OLD_TEXTS = {**OLD_TEXTS, "reports/toy.txt": "old"}
NEW_TEXTS = {**{k: v.replace("old", "new") for k, v in OLD_TEXTS.items()}, "extra.txt": "new"}


MUTATIONS = ("mkdir", "rename", "replace", "unlink", "rmdir", "open")


def run_killed_at(step: int, action) -> bool:
    """Run ``action`` in a forked child that SIGKILLs itself just before its ``step``-th change
    to the filesystem (every os call that creates, renames or deletes); True if it was killed,
    False if it finished with fewer changes than that."""
    pid = os.fork()
    if pid == 0:
        count = 0

        def counting(name):
            real = getattr(os, name)

            def call(*args, **kwargs):
                nonlocal count
                writing = name != "open" or (len(args) > 1 and args[1] & (os.O_CREAT | os.O_WRONLY | os.O_RDWR))
                if writing:
                    count += 1
                    if count == step:
                        os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            return call

        for name in MUTATIONS:
            setattr(os, name, counting(name))
        try:
            action()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def previous_run(tmp_path) -> runner.Stage:
    work = tmp_path / "work"
    if work.exists():
        shutil.rmtree(work)
    runner.run(swap_stage(tmp_path, 1), nested_writer("old"), log=lambda _: None)
    return swap_stage(tmp_path, 1)


def test_a_kill_at_any_instant_of_a_rerun_keeps_the_last_finished_outputs(tmp_path):
    """SIGKILL a rerun before each of its filesystem changes in turn: the stamp always describes
    the outputs in place, and until the new stamp is written the previous outputs come back whole
    on the next up-to-date check, without rebuilding."""
    old = previous_run(tmp_path)
    new = swap_stage(tmp_path, 2)
    workdir = old.workdir
    outcomes = set()
    for step in range(1, 200):
        previous_run(tmp_path)
        if not run_killed_at(step, lambda: runner.run(new, nested_writer("new"), log=lambda _: None)):
            break
        stamp = runner.read_stamp(old)
        if stamp is not None:  # the stamp never claims outputs that are not as it recorded
            assert all(runner.tree_state(workdir / rel) == state for rel, state in stamp["outputs"].items())
        if stamp is not None and stamp["summary"] == "wrote new":
            assert texts(workdir) == NEW_TEXTS, step
            outcomes.add("new")
            continue
        calls = []
        checked = runner.run(old, nested_writer("rebuilt", calls), log=lambda _: None)
        assert checked.skipped and not calls, step
        assert texts(workdir) == OLD_TEXTS, step
        assert not [p.name for p in workdir.iterdir() if p.name.startswith((".tmp-", ".old-"))], step
        outcomes.add("old")
    else:
        pytest.fail("the rerun never finished")
    assert outcomes == {"old", "new"} and step > 10  # killed both before and after the swap
    assert texts(workdir) == NEW_TEXTS and runner.read_stamp(new)["summary"] == "wrote new"


@pytest.mark.slow
def test_a_kill_during_the_repair_leaves_it_to_the_next_run(tmp_path):
    """Kill the rerun when its swap is half done (just after the stamp went aside, halfway, and
    just before the new stamp), then kill the check that repairs it at each of its own instants:
    the run after that still finds the previous outputs whole."""
    old, new = swap_stage(tmp_path, 1), swap_stage(tmp_path, 2)

    def rerun():
        runner.run(new, nested_writer("new"), log=lambda _: None)

    half_done = []
    for step in range(1, 200):
        previous_run(tmp_path)
        if not run_killed_at(step, rerun):
            break
        if runner.read_stamp(old) is None:
            half_done.append(step)
    assert len(half_done) > 5
    for step in (half_done[0], half_done[len(half_done) // 2], half_done[-1]):
        for repair_step in range(1, 200):
            previous_run(tmp_path)
            run_killed_at(step, rerun)
            if not run_killed_at(repair_step, lambda: runner.run(old, nested_writer("rebuilt"), log=lambda _: None)):
                break
            calls = []
            assert runner.run(old, nested_writer("rebuilt", calls), log=lambda _: None).skipped, (step, repair_step)
            assert texts(old.workdir) == OLD_TEXTS and not calls, (step, repair_step)
        assert repair_step > 5


def runner_folders(workdir) -> list[str]:
    return sorted(p.name for p in workdir.iterdir() if p.name.startswith("."))


def test_a_half_done_swap_left_by_a_kill_is_put_back_by_the_next_check(tmp_path):
    old = swap_stage(tmp_path, 1)
    runner.run(old, nested_writer("old"), log=lambda _: None)
    work = old.workdir
    # Killed halfway through a swap: the previous stamp and two outputs aside, two new outputs
    # in (one the previous run did not have), a build folder not yet emptied.
    aside = work / ".old-toy-killed"
    (aside / runner.OLD_OUTPUTS).mkdir(parents=True)
    journal = {"outputs": list(NEW_OUTPUTS), "present": list(OLD_OUTPUTS)}
    (aside / runner.JOURNAL).write_text(json.dumps(journal))
    os.replace(runner.stamp_path(old), aside / runner.OLD_STAMP)
    os.replace(work / "a.txt", aside / runner.OLD_OUTPUTS / "a.txt")
    os.replace(work / "parts", aside / runner.OLD_OUTPUTS / "parts")
    (work / "a.txt").write_text("new")
    (work / "extra.txt").write_text("new")
    (work / ".tmp-toy-killed" / "parts").mkdir(parents=True)

    calls = []
    assert runner.run(old, nested_writer("rebuilt", calls), log=lambda _: None).skipped and not calls
    assert texts(work) == OLD_TEXTS
    assert runner_folders(work) == [".stages"]


def test_a_finished_swap_left_by_a_kill_keeps_the_new_outputs_and_drops_the_old(tmp_path):
    new = swap_stage(tmp_path, 2)
    runner.run(new, nested_writer("new"), log=lambda _: None)
    work = new.workdir
    # Killed while deleting the previous outputs, after the new stamp was written.
    aside = work / ".old-toy-killed"
    (aside / runner.OLD_OUTPUTS / "parts").mkdir(parents=True)
    (aside / runner.OLD_OUTPUTS / "parts" / "part-2.txt").write_text("old 2")
    (aside / runner.JOURNAL).write_text(json.dumps({"outputs": list(NEW_OUTPUTS), "present": list(OLD_OUTPUTS)}))

    assert runner.run(new, nested_writer("rebuilt"), log=lambda _: None).skipped
    assert texts(work) == NEW_TEXTS
    assert runner_folders(work) == [".stages"]


def test_the_fingerprint_reads_through_links_to_folders_and_walks_a_loop_once(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "n01440764"
    elsewhere.mkdir(parents=True)
    (elsewhere / "a.JPEG").write_bytes(b"first")
    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    (src / "n01440764").symlink_to(elsewhere, target_is_directory=True)
    (src / "n01440764" / "back").symlink_to(src, target_is_directory=True)  # a loop
    stage = runner.Stage("import", tmp_path / "work", ("out",), inputs=(src.parent,))
    before = runner.fingerprint(stage)
    names = [row[0] for row in runner.tree_state(src.parent)]
    assert names.count("train/n01440764/a.JPEG") == 1
    (elsewhere / "a.JPEG").write_bytes(b"changed, longer")
    assert runner.fingerprint(stage) != before
