"""The download stage's executors give the same result: in-process, local worker processes,
Ray (a local instance), and a run killed with SIGKILL then rerun."""

from __future__ import annotations

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
