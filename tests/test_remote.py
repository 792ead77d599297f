"""DATA as a filesystem URL: the stages' outputs land in S3 (moto's S3 server on loopback,
spoken to by s3fs as any bucket would be), and a second machine (a fresh mirror) picks the
subset up from the bucket with every finished stage skipped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from pipeline import layout, store
from pipeline.imagehost import ImageHost
from pipeline.layout import Layout

pytestmark = pytest.mark.slow  # a local S3 server (moto) and real stage processes

BUCKET = "datasets"
DOWNLOAD = ["download", "--allow-private-hosts", "--host-rate", "0"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; yields the environment a CLI run needs."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[dev])")
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e .[dev])")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
        "TQDM_DISABLE": "1",
    }
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint)
    fs.mkdir(BUCKET)
    yield env, fs
    server.stop()


def test_stages_write_to_s3_and_a_fresh_mirror_resumes_from_it(s3, tmp_path):
    env, fs = s3
    data = f"s3://{BUCKET}/run1"
    first = {**env, "DATA_CACHE": str(tmp_path / "machine-a")}
    with ImageHost() as host:
        for stage in (["synsets"], ["candidates", "--api", host.url("")], DOWNLOAD, ["dedupe"]):
            done = run_cli(*stage, "--data", data, "--subset", "demo", env=first)
            assert done.returncode == 0, done.stderr[-2000:]

    index = json.loads(fs.cat_file(f"{BUCKET}/run1/demo/.synsetforge-index.json"))
    mirror = tmp_path / "machine-a" / "s3" / BUCKET / "run1" / "demo"
    relative = Layout(Path())
    for rel in (
        relative.synsets.as_posix(),
        relative.clusters.as_posix(),
        ".stages/download.json",
        ".stages/dedupe.json",
    ):
        assert rel in index
        assert fs.cat_file(f"{BUCKET}/run1/demo/{rel}") == (mirror / rel).read_bytes()
    shards = [rel for rel in index if rel.startswith(f"{layout.IMAGES}/")]
    assert shards and all(fs.exists(f"{BUCKET}/run1/demo/{rel}") for rel in shards)
    assert not [rel for rel in index if ".tmp-" in rel or rel.endswith(".lock") or rel.startswith(".cache/")]

    second = {**env, "DATA_CACHE": str(tmp_path / "machine-b")}
    for stage in (DOWNLOAD, ["dedupe"]):  # the image host is gone: nothing may be fetched again
        again = run_cli(*stage, "--data", data, "--subset", "demo", env=second)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "up to date" in again.stderr  # the pulled stamps and files match: nothing reruns
    copy = tmp_path / "machine-b" / "s3" / BUCKET / "run1" / "demo"
    for rel, (size, mtime_ns) in index.items():
        assert (copy / rel).stat().st_size == size and (copy / rel).stat().st_mtime_ns == mtime_ns
        assert (copy / rel).read_bytes() == (mirror / rel).read_bytes()

    rerun = run_cli("dedupe", "--data", data, "--subset", "demo", "--radius", "4", env=second)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    changed = json.loads(fs.cat_file(f"{BUCKET}/run1/demo/.synsetforge-index.json"))
    assert changed[".stages/dedupe.json"] != index[".stages/dedupe.json"]
    first_shard = store.location(store.shard_path(relative.images, 0))
    assert changed[first_shard] == index[first_shard]


def test_an_unknown_protocol_is_a_clear_error(tmp_path):
    done = run_cli("synsets", "--data", "nosuchfs://bucket/x", "--subset", "demo", env={"DATA_CACHE": str(tmp_path)})
    assert done.returncode != 0
    assert "nosuchfs" in done.stderr and "Traceback" not in done.stderr


def test_a_results_file_in_the_bucket_and_the_makefile_probe(s3, tmp_path):
    """annotate-import RESULTS=s3://... reads a local copy; `make` asks `pipeline.remote exists`
    whether a stage's output is there before running the stage that makes it."""
    env, fs = s3
    fs.pipe_file(f"{BUCKET}/files/results.csv", b"HITId,WorkerId\n")
    probe = [sys.executable, "-m", "pipeline.remote", "exists"]
    base = {**os.environ, **env, "DATA_CACHE": str(tmp_path)}
    assert subprocess.run([*probe, f"s3://{BUCKET}/files/results.csv"], env=base).returncode == 0
    assert subprocess.run([*probe, f"s3://{BUCKET}/files/absent.csv"], env=base).returncode == 1
    copy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.remote import local_copy; print(local_copy(sys.argv[1]).read_bytes())",
            f"s3://{BUCKET}/files/results.csv",
        ],
        env=base,
        capture_output=True,
        text=True,
    )
    assert copy.stdout.strip() == "b'HITId,WorkerId\\n'", copy.stderr
    gone = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.remote import local_copy; local_copy(sys.argv[1])",
            f"s3://{BUCKET}/files/absent.csv",
        ],
        env=base,
        capture_output=True,
        text=True,
    )
    assert gone.returncode != 0 and "cannot read s3://" in gone.stderr
