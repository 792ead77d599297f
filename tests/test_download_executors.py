"""The download stage's executors give the same result: in-process, local worker processes,
Ray (a local instance), and a run killed with SIGKILL then rerun."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from test_download import table, write_candidates

from pipeline.imagehost import ImageHost
from pipeline.layout import Layout

PATHS = [f"/picture/n0144076{i % 10}/{i}.jpg" for i in range(40)] + [
    "/fault/404/e",
    "/fault/truncated/e",
    "/fault/html/e",
    "/format/tiny/e",
    "/fault/redirect/2/e",
]
FLAGS = ("--allow-private-hosts", "--timeout", "5", "--retries", "1", "--host-rate", "0")


@pytest.fixture(scope="module")
def host():
    with ImageHost() as running:
        yield running


def result(workdir: Path) -> tuple[list, list]:
    """What must not depend on the executor: each candidate's status, each image's bytes."""
    ledger = sorted((r["candidate_id"], r["status"], r["http_status"]) for r in table(workdir, "ledger"))
    images = sorted((r["image_id"], r["sha256"], r["phash"], r["width"], r["height"]) for r in table(workdir, "images"))
    return ledger, images


@pytest.fixture(scope="module")
def inline(host, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("inline") / "x"
    write_candidates(workdir, [host.url(p) for p in PATHS], shard_size=10)
    done = run_cli("download", "--data", workdir.parent, "--subset", "x", "--processes", "1", *FLAGS)
    assert done.returncode == 0, done.stderr
    return result(workdir)


@pytest.mark.slow
def test_local_worker_processes_match_in_process(host, inline, tmp_path):
    workdir = tmp_path / "x"
    write_candidates(workdir, [host.url(p) for p in PATHS], shard_size=10)
    done = run_cli("download", "--data", tmp_path, "--subset", "x", "--processes", "2", *FLAGS)
    assert done.returncode == 0, done.stderr
    assert result(workdir) == inline
    assert len(inline[1]) == 41 and len(inline[0]) == len(PATHS)


@pytest.mark.slow
def test_ray_tasks_match_in_process(host, inline, tmp_path):
    pytest.importorskip("ray", reason="Ray is in the dev extra; without it EXECUTOR=ray cannot be tested")
    workdir = tmp_path / "x"
    write_candidates(workdir, [host.url(p) for p in PATHS], shard_size=10)
    ray_env = {"RAY_ADDRESS": "", "RAY_DEDUP_LOGS": "0"}
    done = run_cli("download", "--data", tmp_path, "--subset", "x", "--executor", "ray", *FLAGS, env=ray_env)
    assert done.returncode == 0, done.stderr
    assert result(workdir) == inline

    # Shards come back from the tasks as bytes; a rerun keeps the finished ones, redoes the rest.
    shards = sorted((workdir / ".cache" / "download").glob("*/stats/*.json"))
    assert len(shards) > 1
    kept = {p: p.stat().st_mtime_ns for p in shards[1:]}
    shards[0].unlink()
    (workdir / ".stages" / "download.json").unlink()
    done = run_cli("download", "--data", tmp_path, "--subset", "x", "--executor", "ray", *FLAGS, env=ray_env)
    assert done.returncode == 0, done.stderr
    assert result(workdir) == inline
    assert shards[0].exists() and {p: p.stat().st_mtime_ns for p in kept} == kept


@pytest.mark.slow
def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(host, tmp_path):
    # Slow bodies (one second each) make every shard last long enough to be killed inside.
    urls = [host.url(p) for p in PATHS] + [host.url(f"/fault/slow/k{i}?seconds=1") for i in range(8)]
    straight, killed = tmp_path / "straight" / "x", tmp_path / "killed" / "x"
    for workdir in (straight, killed):
        write_candidates(workdir, urls, shard_size=6)
    assert run_cli("download", "--data", straight.parent, "--subset", "x", "--processes", "2", *FLAGS).returncode == 0

    command = [
        sys.executable,
        "-m",
        "pipeline",
        "download",
        "--data",
        str(killed.parent),
        "--subset",
        "x",
        "--processes",
        "2",
        *FLAGS,
    ]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL, start_new_session=True)
    stats = killed / ".cache" / "download"
    deadline = time.monotonic() + 60
    while not list(stats.glob("*/stats/*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the stage and its workers, mid-run
    process.wait()
    finished = len(list(stats.glob("*/stats/*.json")))
    assert 1 <= finished < 9, "the kill should land between the first and the last shard"
    assert not Layout(killed).images.exists()  # outputs appear only when every shard is done

    rerun = run_cli("download", "--data", killed.parent, "--subset", "x", "--processes", "2", *FLAGS)
    assert not list(stats.glob("*/*/.*.tmp"))  # what the killed run was writing is gone
    assert rerun.returncode == 0, rerun.stderr
    assert f"{finished} of 9 shards already finished, resuming" in rerun.stderr
    assert result(killed) == result(straight)
    ids = [r["image_id"] for r in table(killed, "images")]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_the_demo_download_and_dedupe_on_ray_equal_the_local_run(host, tmp_path):
    """make demo's first stages (the demo host's catalogue: faults, copies, other classes'
    pictures) with EXECUTOR=ray against the local executor: the same ledger, images and clusters."""
    pytest.importorskip("ray", reason="Ray is in the dev extra; without it EXECUTOR=ray cannot be tested")
    import pyarrow.parquet as pq

    outcomes = {}
    for executor in ("local", "ray"):
        data = tmp_path / executor
        for stage in (
            ["synsets"],
            ["candidates", "--api", host.url("")],
            ["download", "--allow-private-hosts", "--host-rate", "0", "--processes", "2"],
            ["dedupe", "--processes", "2"],
        ):
            done = (
                run_cli(*stage, "--data", data, "--subset", "demo", "--executor", executor, env={"RAY_ADDRESS": ""})
                if stage[0] in ("download", "dedupe")
                else run_cli(*stage, "--data", data, "--subset", "demo")
            )
            assert done.returncode == 0, done.stderr[-2000:]
        clusters = pq.read_table(Layout(data / "demo").clusters).sort_by("image_id").to_pylist()
        outcomes[executor] = (result(data / "demo"), clusters)
    assert outcomes["ray"] == outcomes["local"]
    (ledger, images), clusters = outcomes["local"]
    assert len(images) > 500 and {status for _, status, _ in ledger} > {"ok"}
    assert {c["reason"] for c in clusters} > {"unique", "representative"}


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` now (its children, theirs...), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for a reaper has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_workers_end_with_a_stage_killed_by_sigkill(host, tmp_path):
    """SIGKILL reaches the stage alone (as the OOM killer's does); its workers must not go on
    fetching and writing cache files as orphans."""
    workdir = tmp_path / "x"
    write_candidates(workdir, [host.url(f"/fault/slow/orphan{i}?seconds=6") for i in range(4)], shard_size=2)
    command = [sys.executable, "-m", "pipeline", "download", "--data", str(tmp_path), "--subset", "x"]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [*command, "--processes", "2", *FLAGS, "--timeout", "30"],
            cwd=REPO,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while len(host.requests_to("/fault/slow/orphan")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(host.requests_to("/fault/slow/orphan")) == 4, (tmp_path / "stderr").read_text()
        below = descendants(process.pid)
        assert len(below) >= 2
        process.kill()
        process.wait()
        killed = time.monotonic()
        deadline = killed + 3  # well before the slow answers end
        while any(running(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in below if running(pid)], "processes of the killed stage still run"
        cache = workdir / ".cache" / "download"
        left = files_of(cache)
        # By then the slow answers have ended: an orphan would have written its shard.
        time.sleep(max(0.0, killed + 7 - time.monotonic()))
        assert files_of(cache) == left and not list(cache.glob("*/stats/*.json"))
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of a failed run
            os.killpg(process.pid, signal.SIGKILL)
