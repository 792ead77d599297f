"""The local image host over real HTTP on loopback: pictures and their near copies, every
fault and format, files, the request log, the command line and the demo catalogue."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import http.client
import io
import json
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

import aiohttp
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from scipy import ndimage
from wordnet_facts import REPO

from pipeline.boxes import clip, iou_matrix, problem
from pipeline.imagehost import ImageHost, Request, make_app, pictures
from pipeline.imagehost.demo import FAULTS, SHARES, catalogue, split

IMAGENETTE = [
    "n01440764",
    "n02102040",
    "n02979186",
    "n03000684",
    "n03028079",
    "n03394916",
    "n03417042",
    "n03425413",
    "n03445777",
    "n03888257",
]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "photo.png").write_bytes(_png(Image.new("RGB", (4, 3), "red")))
    (folder.parent / "secret.txt").write_text("not yours\n")
    with ImageHost(folder) as running:
        yield running


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.body))


def get(host: ImageHost, path: str) -> Answer:
    return get_at(host.port, path)


def get_at(port: int, path: str) -> Answer:
    """One GET sent exactly as written (no redirects followed, no path clean-up)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def fetch_with_aiohttp(url: str, **session_options) -> bytes:
    async def fetch() -> bytes:
        async with aiohttp.ClientSession(**session_options) as session:
            async with session.get(url) as response:
                return await response.read()

    return asyncio.run(fetch())


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _phash(body: bytes) -> imagehash.ImageHash:
    return imagehash.phash(Image.open(io.BytesIO(body)))


# pictures


def test_picture_is_a_500x375_jpeg_of_about_110_kb(host):
    answer = get(host, "/picture/n01440764/1.jpg")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/jpeg"
    image = answer.image()
    image.load()
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (500, 375))
    assert 80_000 < len(answer.body) < 150_000


def test_picture_size_can_be_asked_for(host):
    assert get(host, "/picture/n01440764/1.jpg?w=320&h=200").image().size == (320, 200)


@pytest.mark.parametrize("query", ["?w=big", "?w=0", "?h=99999", "?copy=0", "?copy=-1"])
def test_bad_picture_query_is_refused(host, query):
    assert get(host, f"/picture/n01440764/1.jpg{query}").status == 400


def test_pictures_are_deterministic_and_variants_differ(host):
    first, again = get(host, "/picture/n02102040/7.jpg"), get(host, "/picture/n02102040/7.jpg")
    assert first.body == again.body
    assert get(host, "/picture/n02102040/8.jpg").body != first.body


def _colour_histogram(body: bytes) -> np.ndarray:
    levels = np.asarray(Image.open(io.BytesIO(body)).convert("RGB").resize((50, 38))) // 64
    counts = np.bincount((levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2]).ravel(), minlength=64)
    return counts / counts.sum()


def test_classes_look_different_enough_to_learn(host):
    """Nearest class centroid on colour histograms already tells the ten demo classes apart."""

    def features(wnid: str, variants: range) -> np.ndarray:
        return np.array([_colour_histogram(get(host, f"/picture/{wnid}/{n}.jpg").body) for n in variants])

    centroids = np.array([features(wnid, range(3)).mean(axis=0) for wnid in IMAGENETTE])
    right = sum(
        int(np.argmin(((centroids - f) ** 2).sum(axis=1)) == label)
        for label, wnid in enumerate(IMAGENETTE)
        for f in features(wnid, range(50, 54))
    )
    assert right >= 0.9 * 4 * len(IMAGENETTE)


@pytest.mark.parametrize("wnid,n", [("n01440764", 3), ("n03028079", 11), ("n03888257", 25)])
def test_copies_are_near_in_phash_but_not_the_same_bytes(host, wnid, n):
    original = get(host, f"/picture/{wnid}/{n}.jpg").body
    copies = [get(host, f"/picture/{wnid}/{n}.jpg?copy={k}").body for k in (1, 2, 3)]
    for copy in copies:
        assert copy != original
        assert _phash(copy) - _phash(original) <= 6
        width, height = Image.open(io.BytesIO(copy)).size
        assert 480 <= width < 500 and 360 <= height < 375  # cropped by a few pixels each side
    assert len(set(copies)) == 3
    assert _phash(get(host, f"/picture/{wnid}/{n + 1}.jpg").body) - _phash(original) > 6


# true boxes

# One class of each shape kind and of each texture (the texture's draws come before the shapes').
EVERY_LOOK = [f"n{n:08d}" for n in (4, 1, 3, 10, 6, 0, 12, 16, 5, 9, 33)]


def test_shapes_cover_every_kind_and_texture():
    looks = [pictures.style_of(wnid) for wnid in EVERY_LOOK]
    assert {s.shape for s in looks} == set(pictures.SHAPES) and {s.texture for s in looks} == set(pictures.TEXTURES)


def test_instance_masks_leave_the_pictures_as_they_were():
    """Pixels digested before the true boxes were added: tests and benchmarks name pictures by
    URL, so a picture's pixels (any size, near copies too) must never change."""
    digest = hashlib.sha256()
    for wnid in EVERY_LOOK:
        for n in range(3):
            digest.update(pictures.render(wnid, n).tobytes())
            digest.update(pictures.render(wnid, n, 250, 188).tobytes())
            copy, quality = pictures.near_copy(pictures.render(wnid, n), 2, (wnid, n, 500, 375))
            digest.update(copy.tobytes() + bytes([quality]))
    assert digest.hexdigest() == "f99bb253f705d1d4f706316644607e67a209f0a67df021ccaee0199478323b29"


def _ink(body: bytes, wnid: str) -> np.ndarray:
    """Pixels of the class's ink colour (any of its shades) in a served picture, grain smoothed out."""
    pixels = ndimage.uniform_filter(np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.float32), (3, 3, 1))
    ink = pictures.style_of(wnid).ink
    along = ink / np.linalg.norm(ink)
    shade = np.clip(pixels @ along, 0.7 * np.linalg.norm(ink), 1.2 * np.linalg.norm(ink))
    return np.linalg.norm(pixels - shade[..., None] * along, axis=2) < 35


def _strips(box, depth: int = 8) -> list[tuple[slice, slice]]:
    """The four bands ``depth`` pixels wide just inside each edge of ``box``, as (rows, columns)."""
    x0, y0, x1, y1 = box
    rows, columns = slice(y0, y1), slice(x0, x1)
    return [
        (rows, slice(x0, x0 + depth)),
        (rows, slice(x1 - depth, x1)),
        (slice(y0, y0 + depth), columns),
        (slice(y1 - depth, y1), columns),
    ]


def _truth(host, path: str) -> dict:
    answer = get(host, path)
    assert answer.status == 200 and answer.headers.get_content_type() == "application/json"
    return json.loads(answer.body)


def test_true_boxes_are_tight_around_the_ink_of_the_served_pictures(host):
    """Each true box reaches the shape's ink on all four sides, the boxes hold nearly all the ink
    of the picture, and a box grown past the visible part leaves ink behind on some side."""
    boxes = grown_tight = 0
    for wnid in EVERY_LOOK:
        for n in range(4):
            ink = _ink(get(host, f"/picture/{wnid}/{n}.jpg").body, wnid)
            truth = _truth(host, f"/truth/{wnid}/{n}.json")
            assert (truth["width"], truth["height"]) == (500, 375) and truth["boxes"]
            inside = np.zeros_like(ink)
            for box in truth["boxes"]:
                assert problem(tuple(box), 500, 375) is None, box
                assert all(ink[strip].any() for strip in _strips(box)), (wnid, n, box)
                grown = clip((box[0] - 8, box[1] - 8, box[2] + 8, box[3] + 8), 500, 375)
                grown_tight += all(ink[strip].any() for strip in _strips(grown))
                inside[box[1] : box[3], box[0] : box[2]] = True
                boxes += 1
            assert (ink & ~inside).sum() <= 0.04 * ink.sum(), (wnid, n)
    assert boxes > 100 and grown_tight < boxes / 2


def test_true_boxes_are_the_visible_parts_of_the_shapes():
    """A shape's box is its outline's box cut to the picture, smaller where later shapes cover
    it, and no box at all for a shape too little of which shows."""
    shrunk = dropped = 0
    for wnid in EVERY_LOOK:
        for n in range(4):
            mask = pictures.instance_mask(wnid, n)
            _, boxes = pictures.true_boxes(wnid, n)
            shown = dict(enumerate(np.bincount(mask.ravel())))
            kept = [k for k in range(1, mask.max() + 1) if shown.get(k, 0) >= pictures.MIN_VISIBLE * mask.size]
            dropped += mask.max() - len(kept)
            assert len(boxes) == len(kept)
            _, _, shapes = pictures._scene(wnid, n, 500, 375)
            for k, box in zip(kept, boxes):
                alone = Image.new("L", (500, 375), 0)
                pictures._paint(ImageDraw.Draw(alone), shapes[k - 1], 1)
                x0, y0, x1, y1 = Image.fromarray(np.asarray(alone) * 255).getbbox()
                assert x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1
                shrunk += tuple(box) != (x0, y0, x1, y1)
    assert shrunk > 10 and dropped > 0


def test_true_boxes_follow_the_picture_size_and_near_copies(host):
    full = _truth(host, "/truth/n00000004/1.json")
    half = _truth(host, "/truth/n00000004/1.json?w=250&h=188")
    assert (half["width"], half["height"]) == (250, 188)
    doubled = np.array(half["boxes"]) * 2
    overlap = iou_matrix(doubled, full["boxes"])
    assert len(half["boxes"]) == len(full["boxes"]) and (overlap.max(axis=0) > 0.85).all()
    assert np.median(np.abs(doubled[overlap.argmax(axis=0)] - full["boxes"])) <= 2
    for k in (1, 2, 3):
        copy = _truth(host, f"/truth/n00000004/1.json?copy={k}")
        assert (copy["width"], copy["height"]) == get(host, f"/picture/n00000004/1.jpg?copy={k}").image().size
        left = full["width"] - copy["width"]  # the crop takes under 1% of each side
        shifts = np.array(full["boxes"]) - np.array(copy["boxes"])
        assert len(copy["boxes"]) == len(full["boxes"]) and (shifts >= 0).all() and (shifts <= left).all()
        assert all(problem(tuple(box), copy["width"], copy["height"]) is None for box in copy["boxes"])


@pytest.mark.parametrize("query", ["?w=0", "?h=big", "?copy=0"])
def test_bad_truth_query_is_refused(host, query):
    assert get(host, f"/truth/n00000004/1.json{query}").status == 400


# faults


@pytest.mark.parametrize(
    "path,status,content_type",
    [
        ("/fault/404/a", 404, "text/plain"),
        ("/fault/html/a", 200, "text/html"),
        ("/fault/empty/a", 200, "image/jpeg"),
        ("/fault/wrongtype/a", 200, "text/html"),
        ("/fault/truncated/a", 200, "image/jpeg"),
        ("/fault/bomb/a", 200, "image/png"),
        ("/no/such/route", 404, "text/plain"),
    ],
)
def test_fault_status_and_type(host, path, status, content_type):
    answer = get(host, path)
    assert answer.status == status
    assert answer.headers.get_content_type() == content_type


def test_html_placeholder_and_empty_bodies(host):
    assert b"<html>" in get(host, "/fault/html/b").body
    assert get(host, "/fault/empty/b").body == b""


def test_wrongtype_is_a_valid_jpeg_labelled_html(host):
    assert get(host, "/fault/wrongtype/b").image().format == "JPEG"


def test_flaky_fails_once_per_path_then_serves_a_picture(host):
    assert get(host, "/fault/flaky/c").status == 500
    second = get(host, "/fault/flaky/c")
    assert second.status == 200 and second.image().format == "JPEG"
    assert get(host, "/fault/flaky/d").status == 500


def test_ratelimit_asks_for_a_wait_once(host):
    first = get(host, "/fault/ratelimit/c")
    assert (first.status, first.headers["Retry-After"]) == (429, "1")
    assert get(host, "/fault/ratelimit/c").status == 200
    assert get(host, "/fault/ratelimit/d?after=7").headers["Retry-After"] == "7"


def test_truncated_body_matches_its_length_but_does_not_decode(host):
    answer = get(host, "/fault/truncated/c")
    assert int(answer.headers["Content-Length"]) == len(answer.body) > 1000
    with pytest.raises(OSError):
        answer.image().load()


def test_bomb_declares_30000_square_in_a_small_body(host):
    answer = get(host, "/fault/bomb/c")
    assert answer.body.startswith(b"\x89PNG\r\n\x1a\n") and len(answer.body) < 1_000_000
    width, height, depth, colour = struct.unpack(">IIBB", answer.body[16:26])
    assert (width, height, depth, colour) == (30_000, 30_000, 8, 0)
    with pytest.raises(Image.DecompressionBombError):
        answer.image()


def test_redirect_chain_counts_down_to_a_picture(host):
    path, hops = "/fault/redirect/3/e", 0
    while (answer := get(host, path)).status == 302:
        path, hops = answer.headers["Location"], hops + 1
    assert (hops, path, answer.status) == (3, "/fault/redirect/0/e", 200)
    assert answer.image().format == "JPEG"


def test_aiohttp_follows_a_short_chain_and_gives_up_on_a_long_one(host):
    assert fetch_with_aiohttp(host.url("/fault/redirect/3/f"))[:3] == b"\xff\xd8\xff"
    with pytest.raises(aiohttp.TooManyRedirects):

        async def follow_seven() -> None:
            async with aiohttp.ClientSession() as session:
                await session.get(host.url("/fault/redirect/7/f"), max_redirects=5)

        asyncio.run(follow_seven())


@pytest.mark.parametrize(
    "path,location",
    [
        ("/fault/loop/g?x=1", "/fault/loop/g?x=1"),
        ("/fault/private/g", "http://169.254.169.254/latest/meta-data/g"),
        ("/fault/offsite/g", "ftp://127.0.0.1/g"),
    ],
)
def test_redirects_to_places_a_downloader_must_not_go(host, path, location):
    answer = get(host, path)
    assert (answer.status, answer.headers["Location"]) == (302, location)


def test_reset_promises_a_picture_and_hangs_up_halfway(host):
    with pytest.raises(aiohttp.ClientPayloadError):
        fetch_with_aiohttp(host.url("/fault/reset/h"))


def test_slow_trickles_past_a_total_timeout(host):
    with pytest.raises(asyncio.TimeoutError):
        fetch_with_aiohttp(host.url("/fault/slow/h?seconds=5"), timeout=aiohttp.ClientTimeout(total=0.5))
    answer = get(host, "/fault/slow/i?seconds=0.2")
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    assert answer.image().format == "JPEG"


@pytest.mark.parametrize("route", ["huge", "huge-chunked"])
def test_huge_streams_megabytes_after_a_jpeg_header(host, route):
    answer = get(host, f"/fault/{route}/j?mb=2")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/jpeg"
    assert len(answer.body) == 2 << 20 and answer.body.startswith(b"\xff\xd8\xff")
    if route == "huge":
        assert answer.headers["Content-Length"] == str(2 << 20)
    else:
        assert "Content-Length" not in answer.headers and answer.headers["Transfer-Encoding"] == "chunked"


# formats


@pytest.mark.parametrize(
    "kind,format,mode,size",
    [
        ("cmyk", "JPEG", "CMYK", (500, 375)),
        ("palette", "PNG", "P", (500, 375)),
        ("palette-alpha", "PNG", "P", (500, 375)),
        ("rgba", "PNG", "RGBA", (500, 375)),
        ("gray", "JPEG", "L", (500, 375)),
        ("gray16", "PNG", "I;16", (500, 375)),
        ("exif-rotated", "JPEG", "RGB", (500, 375)),
        ("png", "PNG", "RGB", (500, 375)),
        ("webp", "WEBP", "RGB", (500, 375)),
        ("gif", "GIF", "P", (500, 375)),
        ("tiny", "JPEG", "RGB", (16, 12)),
        ("bmp", "BMP", "RGB", (500, 375)),
        ("tiff", "TIFF", "RGB", (500, 375)),
    ],
)
def test_formats(host, kind, format, mode, size):
    answer = get(host, f"/format/{kind}/k")
    image = answer.image()
    image.load()
    assert (answer.status, answer.headers["Content-Type"]) == (200, Image.MIME[format])
    assert (image.format, image.mode, image.size) == (format, mode, size)


def test_format_details(host):
    assert "transparency" in get(host, "/format/palette-alpha/k").image().info
    assert get(host, "/format/gif/k").image().n_frames == 3
    rotated = get(host, "/format/exif-rotated/k").image()
    assert rotated.getexif()[0x0112] == 6
    assert ImageOps.exif_transpose(rotated).size == (375, 500)
    assert get(host, "/format/sketch/k").status == 404


# files


def test_files_come_from_the_folder_with_their_type(host):
    notes = get(host, "/files/notes.txt")
    assert (notes.status, notes.body, notes.headers.get_content_type()) == (200, b"hello\n", "text/plain")
    photo = get(host, "/files/photo.png")
    assert photo.headers["Content-Type"] == "image/png" and photo.image().size == (4, 3)
    assert get(host, "/files/missing.jpg").status == 404


@pytest.mark.parametrize("path", ["/files/../secret.txt", "/files/..%2Fsecret.txt", "/files/%2Fetc%2Fpasswd"])
def test_files_refuse_names_outside_the_folder(host, path):
    answer = get(host, path)
    assert answer.status == 403 and b"not yours" not in answer.body


def test_host_without_folder_serves_no_files():
    with ImageHost() as bare:
        assert get(bare, "/files/notes.txt").status == 404


# the log, the host's life cycle, the command line


def test_log_records_every_request_in_order(host):
    connection = http.client.HTTPConnection(host.host, host.port, timeout=10)
    connection.request("GET", "/fault/404/log-me?q=1", headers={"User-Agent": "tester/1"})
    connection.getresponse().read()
    connection.close()
    get(host, "/picture/n01440764/1.jpg?w=40&h=30")
    [entry] = host.requests_to("/fault/404/log-me")
    assert isinstance(entry, Request)
    assert (entry.method, entry.path) == ("GET", "/fault/404/log-me?q=1")
    assert entry.headers["User-Agent"] == "tester/1"
    assert host.log[-1].path == "/picture/n01440764/1.jpg?w=40&h=30"
    times = [r.time for r in host.log]
    assert times == sorted(times)


def test_make_app_appends_to_the_given_log():
    from aiohttp.test_utils import TestClient, TestServer

    entries: list = []

    async def ask() -> int:
        async with TestClient(TestServer(make_app(log=entries))) as client:
            return (await client.get("/fault/404/x")).status

    assert asyncio.run(ask()) == 404
    assert [r.path for r in entries] == ["/fault/404/x"]


def test_a_taken_port_raises_and_leaks_nothing(host):
    threads = threading.active_count()
    with pytest.raises(OSError):
        ImageHost(port=host.port).__enter__()
    assert threading.active_count() == threads


def test_stopping_leaves_no_thread_behind():
    threads = threading.active_count()
    with ImageHost() as running:
        get(running, "/picture/n01440764/2.jpg")
        get(running, "/fault/flaky/z")
    assert threading.active_count() == threads


def test_command_line_prints_its_address_and_serves(host):
    command = [sys.executable, "-m", "pipeline.imagehost", "--port", "0"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as server:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(server.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=20), "no address line within 20 s"
            line = server.stdout.readline().strip()
            assert line.startswith("image host on http://127.0.0.1:")
            elsewhere = get_at(int(line.rsplit(":", 1)[1]), "/picture/n03417042/5.jpg")
            assert elsewhere.body == get(host, "/picture/n03417042/5.jpg").body  # same bytes in any process
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=10) == 0
        finally:
            if server.poll() is None:
                server.kill()


FETCH = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read(); sys.exit(3)"  # 3: fetched


def serve_while(port: int, *command: str) -> subprocess.CompletedProcess:
    """``python -m pipeline.imagehost --port PORT -- COMMAND``."""
    serve = [sys.executable, "-m", "pipeline.imagehost", "--port", str(port), "--", *command]
    return subprocess.run(serve, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_command_line_serves_while_a_command_runs_then_stops():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = serve_while(port, sys.executable, "-c", FETCH, f"http://127.0.0.1:{port}/picture/n01440764/1.jpg")
    assert done.returncode == 3, done.stderr  # the command's status: it fetched the picture
    assert done.stdout == f"image host on http://127.0.0.1:{port}\n"
    with pytest.raises(ConnectionRefusedError):
        get_at(port, "/picture/n01440764/1.jpg")  # stopped with the command


def test_command_line_on_a_taken_port_runs_the_command_against_the_server_there(host):
    done = serve_while(host.port, sys.executable, "-c", FETCH, host.url("/picture/n01440764/31.jpg"))
    assert done.returncode == 3, done.stderr
    assert f"port {host.port} is taken" in done.stderr and host.requests_to("/picture/n01440764/31.jpg")


# the demo catalogue


def test_catalogue_is_deterministic_and_sized_per_class():
    items = catalogue(IMAGENETTE, per_class=60, seed=3)
    assert items == catalogue(IMAGENETTE, per_class=60, seed=3)
    assert items != catalogue(IMAGENETTE, per_class=60, seed=4)
    assert [item.wnid for item in items] == [wnid for wnid in IMAGENETTE for _ in range(60)]
    for wnid in IMAGENETTE:
        paths = [item.path for item in items if item.wnid == wnid]
        assert len(set(paths)) == len(paths)


def test_catalogue_mix_matches_the_documented_shares():
    items = catalogue(IMAGENETTE, per_class=60)
    counts = collections.Counter(item.kind for item in items)
    assert set(counts) == set(SHARES)
    for kind, share in SHARES.items():
        assert abs(counts[kind] / len(items) - share) < 0.02, kind
    assert sum(split(7, SHARES).values()) == 7 and split(7, SHARES)["true"] == 4


def test_catalogue_kinds_mean_what_they_say():
    items = catalogue(IMAGENETTE, per_class=60)
    true = {item.path for item in items if item.kind == "true"}
    templates = {template.split("{")[0] for template in FAULTS}
    for item in items:
        base, _, query = item.path.partition("?")
        shown = base.split("/")[2]
        if item.kind == "true":
            assert shown == item.wnid and not query
        elif item.kind == "other_class":
            assert shown != item.wnid and shown in IMAGENETTE and item.path not in true
        elif item.kind == "near_copy":
            assert shown == item.wnid and base in true and query.startswith("copy=")
        elif item.kind == "cross_class_copy":
            assert shown != item.wnid and base in true and query.startswith("copy=")
        else:
            assert any(item.path.startswith(prefix) for prefix in templates)


def test_the_host_lists_its_catalogue(host):
    async def ask(body) -> tuple[int, object]:
        async with aiohttp.ClientSession() as session:
            async with session.post(host.url("/demo/catalogue"), json=body) as response:
                return response.status, await (response.json() if response.status == 200 else response.text())

    status, answer = asyncio.run(ask({"wnids": IMAGENETTE[:4], "per_class": 12, "seed": 2}))
    assert status == 200
    assert answer["candidates"] == [item.listing() for item in catalogue(IMAGENETTE[:4], per_class=12, seed=2)]
    assert asyncio.run(ask({"wnids": IMAGENETTE[:2]}))[1]["candidates"][0]["license"] == "cc0 1.0"
    for bad in (
        {"wnids": []},
        {"wnids": ["../x"]},
        {"wnids": IMAGENETTE[:1] * 2},
        {"wnids": IMAGENETTE, "per_class": 0},
    ):
        assert asyncio.run(ask(bad))[0] == 400, bad


def test_catalogue_pictures_are_served(host):
    for item in catalogue(IMAGENETTE[:3], per_class=20, seed=1):
        if item.kind != "fault":
            answer = get(host, item.path)
            assert answer.status == 200 and answer.image().format == "JPEG", item
