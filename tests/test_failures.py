"""Failures a user meets, on real stage processes: a SIGKILL at the worst moment, two first runs
of a new subset at once, a read-only data folder, a full disk. Each ends with the last finished
outputs whole and, where the run fails, one line naming the path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import rows, run_cli
from test_manifest_exports import PLAN, built  # noqa: F401  (the tiny dataset, built by the real manifests stage)
from wordnet_facts import REPO

from pipeline import runner
from pipeline.layout import STAMPS, Layout

EXTRA_FILES = 10_000  # an old export big enough that deleting it takes a while (about 0.3 s here)


def dataset(built: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A private copy of the tiny dataset, its stamps still current (mtimes kept)."""
    shutil.copytree(built.parent, tmp_path / "data")
    return tmp_path / "data" / built.name


def where(workdir: Path) -> list[str]:
    return ["--data", str(workdir.parent), "--subset", workdir.name]


def start(*args: str | Path) -> subprocess.Popen:
    """``python -m pipeline ARGS`` started as a separate process, as a user starts it."""
    command = [sys.executable, "-m", "pipeline", *map(str, args)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(process: subprocess.Popen, appeared, what: str) -> None:
    """SIGKILL ``process`` as soon as ``appeared()`` is true, polling the filesystem."""
    deadline = time.monotonic() + 120
    while not appeared():
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def own_folders(workdir: Path, kind: str, stage: str) -> list[Path]:
    """The runner's temporary (``.tmp-``) or aside (``.old-``) folders of ``stage``."""
    return [p for p in workdir.iterdir() if p.name.startswith(f"{kind}{stage}-")] if workdir.is_dir() else []


def leftovers(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.iterdir() if p.name.startswith((".tmp-", ".old-")))


def files(folder: Path) -> dict[str, str]:
    """Every file below ``folder``: relative name -> sha256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The run's error, checked to be its only stderr line and free of a traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def stamp_as_finished(workdir: Path, stage: str, output: str) -> None:
    """Record ``output`` as it is now in ``stage``'s stamp, as if a finished run had written it."""
    path = workdir / STAMPS / f"{stage}.json"
    stamp = json.loads(path.read_text())
    stamp["outputs"][output] = runner.tree_state(workdir / output)
    path.write_text(json.dumps(stamp))


# --- SIGKILL ---------------------------------------------------------------------------------


def stamp_changed(workdir: Path, stage: str):
    """True once ``stage``'s stamp is gone or is another file than now: a swap has begun."""
    path = workdir / STAMPS / f"{stage}.json"
    inode = path.stat().st_ino

    def changed() -> bool:
        try:
            return path.stat().st_ino != inode
        except FileNotFoundError:
            return True

    return changed


# The instants at which a rerun's SIGKILL used to destroy the previous export: its build finished
# (the old export about to be deleted), its stamp removed (the old export being deleted), and
# the swap begun (previous outputs moved aside).
MOMENTS = {
    "build finished": lambda workdir: (
        lambda: any(
            (t / "export" / "ilsvrc" / "README.txt").exists() for t in own_folders(workdir, ".tmp-", "export-ilsvrc")
        )
    ),
    "stamp removed": lambda workdir: stamp_changed(workdir, "export-ilsvrc"),
    "swap begun": lambda workdir: lambda: bool(own_folders(workdir, ".old-", "export-ilsvrc")),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rerun_killed_at_its_swap_keeps_a_whole_export(built, tmp_path, moment):  # noqa: F811
    workdir = dataset(built, tmp_path)
    assert run_cli("export", *where(workdir), "--format", "ilsvrc").returncode == 0
    folder = Layout(workdir).export("ilsvrc")
    new = files(folder)
    wnid = sorted((folder / "train").iterdir())[0]
    for n in range(EXTRA_FILES):  # a previous export of many more files
        (wnid / f"extra_{n}.JPEG").write_bytes(b"%d" % n)
    stamp_as_finished(workdir, "export-ilsvrc", "export/ilsvrc")
    old = files(folder)

    appeared = MOMENTS[moment](workdir)
    rerun = start("export", *where(workdir), "--format", "ilsvrc", "--force")
    kill_when(rerun, appeared, moment)
    if not own_folders(workdir, ".old-", "export-ilsvrc"):  # otherwise put back by the next run
        assert folder.exists() and files(folder) in (old, new), "a half-deleted export"

    check = run_cli("export", *where(workdir), "--format", "ilsvrc")
    assert check.returncode == 0 and "export-ilsvrc: up to date" in check.stderr, check.stderr
    assert files(folder) in (old, new)
    assert leftovers(workdir) == []


def test_a_manifests_run_killed_mid_build_leaves_the_previous_outputs_and_stamp(built, tmp_path):  # noqa: F811
    workdir = dataset(built, tmp_path)
    manifests, stamp = Layout(workdir).manifests, workdir / STAMPS / "manifests.json"
    before, stamp_before = files(manifests), stamp.read_bytes()
    other_plan = [*PLAN[:-2], "--min-train", "2"]

    rerun = start("manifests", *where(workdir), *other_plan)
    kill_when(rerun, lambda: bool(own_folders(workdir, ".tmp-", "manifests")), "the build folder")
    assert files(manifests) == before and stamp.read_bytes() == stamp_before

    check = run_cli("manifests", *where(workdir), *PLAN)
    assert check.returncode == 0 and "manifests: up to date" in check.stderr, check.stderr
    assert leftovers(workdir) == [] and files(manifests) == before
    assert run_cli("manifests", *where(workdir), *other_plan).returncode == 0
    assert leftovers(workdir) == []


# --- two first runs at once -----------------------------------------------------------------


@pytest.mark.slow
def test_two_first_runs_of_a_new_subset_at_once_leave_one_whole_output(tmp_path):
    wnids = tmp_path / "classes.txt"
    wnids.write_text("n01440764\nn02012849\n")
    for attempt in range(4):
        data = tmp_path / f"data-{attempt}"  # neither the data root nor the subset exists yet
        both = [start("synsets", "--data", data, "--subset", "new", "--wnids", wnids) for _ in range(2)]
        errs = [run.communicate(timeout=300)[1] for run in both]
        assert sorted(run.returncode for run in both) in ([0, 0], [0, 1]), errs
        for run, err in zip(both, errs):
            if run.returncode:
                assert err.strip() == f"error: another run of stage synsets is writing to {data / 'new'}", err
        assert [r["wnid"] for r in rows(Layout(data / "new").synsets)] == ["n01440764", "n02012849"]
        assert leftovers(data / "new") == []
        again = run_cli("synsets", "--data", data, "--subset", "new", "--wnids", wnids)
        assert "synsets: up to date" in again.stderr, again.stderr


def test_a_failed_first_run_removes_only_what_it_made(tmp_path):
    """A first run that fails removes the folders it created only when nothing else is in them:
    another stage's run that started in that folder meanwhile keeps its outputs."""
    workdir = tmp_path / "data" / "new"
    other = runner.Stage(name="other", workdir=workdir, outputs=("other.txt",))

    def write_other(tmp: Path) -> str:
        (tmp / "other.txt").write_text("kept")
        return "wrote other.txt"

    def build(tmp: Path) -> str:
        runner.run(other, write_other, log=lambda _: None)
        raise RuntimeError("the first stage fails")

    with pytest.raises(RuntimeError):
        runner.run(runner.Stage(name="first", workdir=workdir, outputs=("first.txt",)), build)
    assert (workdir / "other.txt").read_text() == "kept"
    assert runner.run(other, write_other, log=lambda _: None).skipped
    assert not (workdir / STAMPS / "first.lock").exists()

    def fails(tmp: Path) -> str:
        raise RuntimeError("nothing written")

    with pytest.raises(RuntimeError):
        runner.run(runner.Stage(name="first", workdir=tmp_path / "empty" / "new", outputs=("first.txt",)), fails)
    assert not (tmp_path / "empty").exists()


# --- read-only folders and full disks -------------------------------------------------------


@contextmanager
def mounted(target: Path, *how: str) -> Iterator[Path]:
    """``mount HOW TARGET`` for the block (needs root, as the tests run here); skips without it."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *how, str(target)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here, so no real read-only folder or full disk: {done.stderr.strip()}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(target)], check=True)


@contextmanager
def read_only_view(folder: Path, target: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount at ``target``, as a read-only disk shows it."""
    with mounted(target, "--bind", str(folder)):
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        yield target


def state(folder: Path) -> list:
    """Every file and folder below ``folder`` with its size and modification time."""
    return [
        [p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.rglob("*"))
    ]


# A stage on a read-only dataset: an up-to-date check succeeds; anything that must write ends with
# one line naming what it could not write.
READ_ONLY_RUNS = [
    (["manifests", *PLAN], None),
    (["export", "--format", "ilsvrc"], None),
    (["manifests", *PLAN, "--force"], ".stages/manifests.lock"),
    (["export", "--format", "wds"], ".stages/export-wds.lock"),
    (["dedupe"], ".stages/dedupe.lock"),
    (["card"], ".stages/card.lock"),
    (["validate"], ".stages/validate.lock"),
]


@pytest.mark.slow
def test_a_read_only_dataset_answers_up_to_date_and_refuses_writes_in_one_line(built, tmp_path):  # noqa: F811
    workdir = dataset(built, tmp_path)
    assert run_cli("export", *where(workdir), "--format", "ilsvrc").returncode == 0
    before = state(workdir)
    with read_only_view(workdir.parent, tmp_path / "read-only") as data:
        view = data / workdir.name
        for args, refused in READ_ONLY_RUNS:
            done = run_cli(*args, *where(view))
            if refused is None:
                assert done.returncode == 0 and "up to date" in done.stderr, (args, done.stderr)
            else:
                assert done.returncode == 1, (args, done.stderr)
                assert one_error_line(done) == f"error: cannot write to {view / refused}: read-only file system"
    assert state(workdir) == before


@pytest.mark.slow
def test_an_export_on_a_full_disk_fails_in_one_line_and_keeps_the_previous_export(built, tmp_path):  # noqa: F811
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=2m", "tmpfs") as disk:
        workdir = disk / built.name
        shutil.copytree(built, workdir)
        assert run_cli("export", *where(workdir), "--format", "ilsvrc").returncode == 0
        folder = Layout(workdir).export("ilsvrc")
        previous = files(folder)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (free - 16 * 1024))  # less room than one more export takes

        done = run_cli("export", *where(workdir), "--format", "ilsvrc", "--force")
        assert done.returncode == 1
        assert one_error_line(done) == f"error: cannot write to {workdir}: no space left on device"
        assert files(folder) == previous and leftovers(workdir) == []

        filler.unlink()
        assert run_cli("export", *where(workdir), "--format", "ilsvrc", "--force").returncode == 0
        assert files(folder) == previous


def test_validate_writes_its_report_under_the_stage_lock(built, tmp_path):  # noqa: F811
    workdir = dataset(built, tmp_path)
    report = Layout(workdir).report("validate")
    with runner.lock(workdir, "validate"):
        done = run_cli("validate", *where(workdir), "--no-decode")
    assert done.returncode == 1
    assert one_error_line(done) == f"error: another run of stage validate is writing to {workdir}"
    assert not report.exists()
    assert run_cli("validate", *where(workdir), "--no-decode").returncode == 0 and report.exists()
