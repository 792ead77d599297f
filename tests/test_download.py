"""The download stage against the project's image host over loopback: every fault ends in
its ledger status, every image is stored upright, RGB and verified, and totals add up."""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from pathlib import Path

import pytest
from conftest import rows, run_cli
from PIL import Image

from pipeline import schemas, store
from pipeline.hashing import hashes_of_bytes
from pipeline.imagehost import ImageHost
from pipeline.layout import Layout
from pipeline.schemas import candidate_id
from pipeline.tables import read_report, write_table

TENCH = "n01440764"
# path on the host -> the ledger status it must end in
EXPECTED = {
    "/picture/n01440764/1.jpg": "ok",
    "/picture/n02102040/2.jpg?w=800&h=600": "ok",
    "/fault/404/a": "http_error",
    "/fault/flaky/a": "ok",
    "/fault/ratelimit/a?after=1": "ok",
    "/fault/slow/a?seconds=30": "timeout",
    "/fault/reset/a": "connection_error",
    "/fault/truncated/a": "decode_error",
    "/fault/html/a": "not_an_image",
    "/fault/empty/a": "not_an_image",
    "/fault/wrongtype/a": "ok",
    "/fault/huge/a?mb=64": "too_large",
    "/fault/huge-chunked/a?mb=64": "too_large",
    "/fault/bomb/a": "decompression_bomb",
    "/fault/redirect/3/a": "ok",
    "/fault/redirect/7/a": "too_many_redirects",
    "/fault/loop/a": "too_many_redirects",
    "/fault/private/a": "blocked_address",
    "/fault/offsite/a": "bad_url",
    **{
        f"/format/{kind}/a": "ok"
        for kind in (
            "cmyk",
            "palette",
            "palette-alpha",
            "rgba",
            "gray",
            "gray16",
            "exif-rotated",
            "png",
            "webp",
            "gif",
            "bmp",
            "tiff",
        )
    },
    "/format/tiny/a": "too_small",
}
NOT_ON_HOST = {
    "ftp://127.0.0.1/x.jpg": "bad_url",
    "http://224.0.0.1/x.jpg": "blocked_address",
    "http:///x.jpg": "bad_url",
}
FAST = ("--timeout", "3", "--retries", "2", "--max-mb", "8", "--processes", "1", "--host-rate", "0")


@pytest.fixture(scope="module")
def host():
    with ImageHost() as running:
        yield running


def write_candidates(
    workdir: Path, urls: list[str], shard_size: int = 1000, wnid: str = TENCH, metadata: dict | None = None
) -> None:
    """Candidates parts as the candidates stage writes them, for ``urls`` of one class."""
    for number, start in enumerate(range(0, len(urls), shard_size)):
        chunk = urls[start : start + shard_size]
        columns = {name: [None] * len(chunk) for name in schemas.CANDIDATES.names}
        columns.update(
            candidate_id=[candidate_id(wnid, u) for u in chunk],
            wnid=[wnid] * len(chunk),
            url=chunk,
            source=["urllist"] * len(chunk),
            rank=list(range(start, start + len(chunk))),
        )
        write_table(columns, Layout(workdir).candidate_part(number), schemas.CANDIDATES, metadata=metadata)


def download(pipeline, workdir: Path, *args):
    return pipeline("download", "--data", workdir.parent, "--subset", workdir.name, *args)


def table(workdir: Path, kind: str) -> list[dict]:
    """Every row of the download's ``images`` or ``ledger`` shards."""
    built = Layout(workdir)
    shards = store.shards(built.images) if kind == "images" else built.ledger_shards()
    return [r for p in shards for r in rows(p)]


def report(workdir: Path) -> dict:
    return read_report(Layout(workdir).report("download"), schemas.DOWNLOAD_REPORT)


@pytest.fixture(scope="module")
def faults(host, tmp_path_factory):
    """One download of every fault and format, shared by the tests below."""
    from pipeline.cli import main

    workdir = tmp_path_factory.mktemp("data") / "faults"
    urls = [host.url(p) for p in EXPECTED] + list(NOT_ON_HOST)
    write_candidates(workdir, urls, shard_size=16)
    assert main(["download", "--data", str(workdir.parent), "--subset", "faults", "--allow-private-hosts", *FAST]) == 0
    ledger = {r["url"]: r for r in table(workdir, "ledger")}
    images = {r["url"]: r for r in table(workdir, "images")}
    return workdir, ledger, images


def test_every_fault_ends_in_its_status(host, faults):
    workdir, ledger, _ = faults
    expected = {host.url(p): s for p, s in EXPECTED.items()} | NOT_ON_HOST
    assert {url: r["status"] for url, r in ledger.items()} == expected
    stats = report(workdir)
    assert stats["candidates"] == len(expected) == sum(stats["statuses"].values())
    assert stats["ok"] == sum(s == "ok" for s in expected.values()) == len(table(workdir, "images"))
    built = Layout(workdir)
    assert stats["shards"] == 3 and sorted(built.ledger.iterdir()) == [built.ledger_shard(n) for n in range(3)]
    assert (
        sorted(built.images.iterdir())
        == store.shards(built.images)
        == [store.shard_path(built.images, n) for n in range(3)]
    )
    stamp = json.loads((workdir / ".stages" / "download.json").read_text())
    assert stats["settings"] == stamp["settings"] and stats["settings"]["network"]["allow_private_hosts"] is True
    assert time.strptime(stats["finished_at"], "%Y-%m-%dT%H:%M:%S%z")


def test_retries_attempts_and_http_status(host, faults):
    _, ledger, _ = faults

    def row(path):
        return ledger[host.url(path)]

    assert (row("/fault/404/a")["http_status"], row("/fault/404/a")["attempts"]) == (404, 1)
    assert row("/fault/flaky/a")["attempts"] == 2 and row("/fault/flaky/a")["http_status"] == 200
    assert row("/fault/reset/a")["attempts"] == 3  # two retries
    assert row("/fault/redirect/3/a")["attempts"] == 4
    assert row("/fault/redirect/7/a")["attempts"] == 6 and row("/fault/loop/a")["attempts"] == 6
    assert row("/fault/huge/a?mb=64")["bytes"] == 0  # refused on Content-Length
    assert 8 * 2**20 < row("/fault/huge-chunked/a?mb=64")["bytes"] < 9 * 2**20
    assert "169.254.169.254" in row("/fault/private/a")["error"]
    hits = host.requests_to("/fault/ratelimit/a")
    assert len(hits) == 2 and hits[1].time - hits[0].time >= 1.0  # Retry-After: 1 honoured
    assert len(host.requests_to("/fault/404/a")) == 1  # a 404 is never retried
    assert all(r["elapsed_ms"] >= 0 and r["host"] in ("127.0.0.1", "224.0.0.1", "") for r in ledger.values())


def test_stored_images_are_verified_rgb(host, faults):
    _, _, images = faults
    for url, image in images.items():
        decoded = Image.open(io.BytesIO(image["image"]))
        decoded.load()
        assert decoded.format == image["format"] == "JPEG" and decoded.mode == "RGB", url
        assert decoded.size == (image["width"], image["height"]), url
        assert max(decoded.size) <= 500
        assert hashlib.sha256(image["image"]).hexdigest() == image["sha256"]
        hashes = hashes_of_bytes(image["image"])._asdict()  # the hashing rule, on the stored bytes
        assert hashes == {name: image[name] for name in hashes}, url
        assert image["image_id"] == candidate_id(TENCH, url) and image["wnid"] == TENCH
    rotated = images[host.url("/format/exif-rotated/a")]
    assert (rotated["width"], rotated["height"]) == (375, 500)
    large = images[host.url("/picture/n02102040/2.jpg?w=800&h=600")]
    assert (large["width"], large["height"], large["original_width"], large["original_height"]) == (500, 375, 800, 600)
    assert images[host.url("/format/gray16/a")]["original_format"] == "PNG"
    assert images[host.url("/fault/wrongtype/a")]["original_format"] == "JPEG"


def test_an_upright_rgb_jpeg_within_size_is_kept_byte_for_byte(host, faults):
    import urllib.request

    _, _, images = faults
    url = host.url("/picture/n01440764/1.jpg")
    with urllib.request.urlopen(url) as response:
        original = response.read()
    assert images[url]["image"] == original


def test_private_addresses_are_refused_without_a_request(host, pipeline, tmp_path):
    workdir = tmp_path / "private"
    paths = ["/picture/n01440764/77.jpg", "/fault/redirect/2/private-test"]
    write_candidates(workdir, [host.url(p) for p in paths])
    out = download(pipeline, workdir, *FAST)
    assert out.status == 0, out.err
    assert {r["status"] for r in table(workdir, "ledger")} == {"blocked_address"}
    assert not host.requests_to("/picture/n01440764/77.jpg") and not host.requests_to("/fault/redirect/2/private-test")
    assert "download: 1 of 1 class has no image: n01440764 (0)\n" in out.err
    assert "candidates ok (0.0%) in 1 shard; 1 of 1 class has no image -> " in out.err
    assert "2 URLs lead to private or loopback addresses" in out.err and "--allow-private-hosts" in out.err


def test_candidates_metadata_never_lowers_the_guard(host, pipeline, tmp_path):
    """Parts that say they come from the demo host are fetched under the user's flags, like any other."""
    workdir = tmp_path / "demo"
    port = str(host.port)
    write_candidates(workdir, [host.url("/picture/n01440764/78.jpg")], metadata={"source": "demo", "demo_port": port})
    out = download(pipeline, workdir, *FAST)
    assert out.status == 0, out.err
    assert [r["status"] for r in table(workdir, "ledger")] == ["blocked_address"]
    assert not host.requests_to("/picture/n01440764/78.jpg")


def test_resize_keep_original_and_rerun(host, pipeline, tmp_path):
    workdir = tmp_path / "sizes"
    write_candidates(workdir, [host.url(f"/picture/n01440764/{i}.jpg") for i in range(6)] + [host.url("/format/png/k")])
    out = download(pipeline, workdir, "--allow-private-hosts", "--max-side", "200", *FAST)
    assert out.status == 0, out.err
    assert {(r["width"], r["height"]) for r in table(workdir, "images")} == {(200, 150)}
    before = len(host.log)
    again = download(pipeline, workdir, "--allow-private-hosts", "--max-side", "200", *FAST)
    assert again.status == 0 and "up to date" in again.err and len(host.log) == before

    out = download(pipeline, workdir, "--allow-private-hosts", "--keep-original", *FAST)
    assert out.status == 0, out.err
    kept = {r["url"]: r for r in table(workdir, "images")}
    assert kept[host.url("/format/png/k")]["format"] == "PNG"
    assert kept[host.url("/picture/n01440764/0.jpg")]["width"] == 500


def test_missing_candidates_is_a_clear_error(pipeline, tmp_path):
    out = download(pipeline, tmp_path / "nothing")
    assert out.status == 2 and "no candidate shards" in out.err and "make candidates" in out.err
    assert not (tmp_path / "nothing").exists()


def test_make_download_collects_candidates_first_and_passes_its_variables(host, tmp_path):
    import subprocess

    from conftest import REPO, write_synsets

    write_synsets(tmp_path / "x", [TENCH])
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{TENCH}_{i}\t{host.url(f'/picture/{TENCH}/{i}.jpg')}\n" for i in range(5)))
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "download",
            f"DATA={tmp_path}",
            "SUBSET=x",
            "SOURCE=urllist",
            f"URLS={urls}",
            "MAX_SIDE=200",
            "RESPECT_ROBOTS=0",
            "HOST_RATE=0",
            "ALLOW_PRIVATE_HOSTS=1",
            "PROCESSES=1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "candidates: 5 candidates from urllist" in done.stderr
    assert {(r["width"], r["height"]) for r in table(tmp_path / "x", "images")} == {(200, 150)}
    rules = report(tmp_path / "x")["politeness"]
    assert rules["respect_robots"] is False and rules["respect_optouts"] is True and rules["host_rate"] == 0
    assert "robots.txt IGNORED" in done.stderr


def dataset_files(workdir: Path) -> dict[str, bytes]:
    """Every file of the dataset folder but the stages' lock files, by path: what a refused run must not touch."""
    return {
        str(p.relative_to(workdir)): p.read_bytes()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def one_line_error(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def downloaded(host, pipeline, tmp_path) -> Path:
    """A dataset folder with two candidate parts, downloaded once (images, ledger, cache, report)."""
    workdir = tmp_path / "x"
    write_candidates(workdir, [host.url(f"/picture/n01440764/{i}.jpg") for i in range(4)], shard_size=2)
    out = download(pipeline, workdir, "--allow-private-hosts", *FAST)
    assert out.status == 0, out.err
    assert list((workdir / ".cache" / "download").glob("*/stats/*.json"))
    return workdir


def damage(part: Path, how: str) -> None:
    data = part.read_bytes()
    if how == "empty":
        part.write_bytes(b"")
    elif how == "truncated":
        part.write_bytes(data[: len(data) // 2])
    else:  # the footer intact, the first data page's header overwritten
        part.write_bytes(data[:4] + random.Random(3).randbytes(196) + data[200:])


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupted"])
def test_an_unreadable_candidates_part_is_refused_and_nothing_written(downloaded, how):
    part = Layout(downloaded).candidate_part(1)
    damage(part, how)
    before = dataset_files(downloaded)
    done = run_cli("download", "--data", downloaded.parent, "--subset", "x", "--allow-private-hosts", *FAST)
    assert done.returncode == 2
    assert one_line_error(done).startswith(f"error: {part}: ")
    assert dataset_files(downloaded) == before


@pytest.mark.parametrize(
    "option, value",
    [
        ("--max-side", "-5"),
        ("--min-side", "-1"),
        ("--quality", "0"),
        ("--quality", "101"),
        ("--timeout", "0"),
        ("--retries", "-1"),
        ("--max-mb", "0"),
        ("--processes", "0"),
        ("--concurrency", "0"),
        ("--per-host", "0"),
        ("--robots-timeout", "-1"),
        ("--host-rate", "-1"),
        ("--host-burst", "0.5"),
        ("--min-per-class", "-1"),
        ("--timeout", "nan"),
    ],
)
def test_an_out_of_range_setting_is_refused_and_the_last_run_kept(downloaded, option, value):
    """``--max-side -5`` once stored every image as 1x1 and, the cache keeping only the current
    settings' shards, deleted the last run's."""
    before = dataset_files(downloaded)
    done = run_cli("download", "--data", downloaded.parent, "--subset", "x", "--allow-private-hosts", option, value)
    assert done.returncode == 2
    assert f"argument {option}: " in one_line_error(done)
    assert dataset_files(downloaded) == before


@pytest.mark.parametrize(
    "option, value", [("--port", "65536"), ("--port", "-1"), ("--aliases", "-1"), ("--aliases", "254")]
)
def test_the_image_host_refuses_an_out_of_range_setting(option, value):
    import subprocess
    import sys

    from conftest import REPO

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.imagehost", option, value, "--", "true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""  # never listened
    assert f"argument {option}: {value} is out of range" in one_line_error(done)


NUMERIC_HOSTS = ("127.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1")


@pytest.mark.parametrize("numeric", NUMERIC_HOSTS)
def test_a_host_written_as_a_number_is_the_address_it_names(host, pipeline, tmp_path, numeric):
    """Browsers read 127.1, 2130706433 and 0177.0.0.1 as 127.0.0.1: blocked as loopback, and
    fetched from there when private hosts are allowed."""
    path = f"/picture/n01440764/{100 + NUMERIC_HOSTS.index(numeric)}.jpg"
    url = f"http://{numeric}:{host.port}{path}"
    workdir = tmp_path / "x"
    write_candidates(workdir, [url])
    out = download(pipeline, workdir, *FAST)
    assert out.status == 0, out.err
    [row] = table(workdir, "ledger")
    assert (row["status"], row["host"]) == ("blocked_address", "127.0.0.1"), row["error"]
    assert not host.requests_to(path)
    out = download(pipeline, workdir, "--allow-private-hosts", *FAST)
    assert out.status == 0, out.err
    assert [r["status"] for r in table(workdir, "ledger")] == ["ok"]
    assert [r.address for r in host.requests_to(path)] == ["127.0.0.1"]


def test_a_number_that_is_no_address_is_a_bad_url(pipeline, tmp_path):
    workdir = tmp_path / "x"
    write_candidates(workdir, ["http://256.0.0.1/x.jpg", "http://1.2.3.4.5/x.jpg", "http://4294967296/x.jpg"])
    out = download(pipeline, workdir, *FAST)
    assert out.status == 0, out.err
    assert {r["status"] for r in table(workdir, "ledger")} == {"bad_url"}


def test_ipv6_loopback_is_loopback(pipeline, tmp_path):
    """[::1] is refused as loopback, and allowed by --allow-private-hosts as 127.0.0.1 is."""
    try:
        server = ImageHost(host="::1").__enter__()
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here ({e})")
    try:
        url = f"http://[::1]:{server.port}/picture/n01440764/6.jpg"
        workdir = tmp_path / "x"
        write_candidates(workdir, [url])
        out = download(pipeline, workdir, *FAST)
        assert out.status == 0, out.err
        [row] = table(workdir, "ledger")
        assert row["status"] == "blocked_address" and "private or loopback" in row["error"]
        assert not server.requests_to("/picture/")
        out = download(pipeline, workdir, "--allow-private-hosts", *FAST)
        assert out.status == 0, out.err
        assert [r["status"] for r in table(workdir, "ledger")] == ["ok"]
        assert len(server.requests_to("/picture/n01440764/6.jpg")) == 1
    finally:
        server.__exit__(None, None, None)
