"""Where the fetching stages meet the real services, and where the HITs meet MTurk: the
operator's contact in every User-Agent (Wikimedia's User-Agent policy), Commons' standard
thumbnail width, ImageNet's URL list with its Latin-1 lines and spaces, and the mturk format's
image URLs and template. All over real HTTP on 127.0.0.1, through the real stages."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from api_servers import FakeApi, FakeCommons, FakeFlickr, FakeOpenverse, serving
from conftest import run_cli, write_synsets
from PIL import Image
from test_annotation import make_store
from test_download import write_candidates

from annotation import box_formats
from pipeline import schemas, user_agent
from pipeline.layout import Layout
from pipeline.store import read_images
from pipeline.tables import read_report

TENCH = "n01440764"
CONTACT = "data-team@example.org"
DOWNLOAD = ("--timeout", "5", "--retries", "0", "--processes", "1", "--host-rate", "0", "--allow-private-hosts")


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


class FakeDemoHost(FakeApi):
    """The demo image host's catalogue (``POST /demo/catalogue``), recording requests."""

    path = "/demo/catalogue"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        return app

    def answer(self, request: web.Request) -> web.StreamResponse:
        item = {"wnid": TENCH, "path": "/picture/1.jpg", "kind": "true", "title": "t", "creator": "c", "license": "l"}
        return web.json_response({"candidates": [item]})


class FakeWebServer(FakeApi):
    """An old web server: serves one JPEG at each raw (percent-encoded) path of ``files``, as
    the client sent it; anything else, robots.txt included, is a 404."""

    path = "/{tail:.*}"

    def __init__(self, files: dict[str, bytes]):
        super().__init__()
        self.files = files
        self.raw_paths: list[str] = []

    def answer(self, request: web.Request) -> web.StreamResponse:
        self.raw_paths.append(request.raw_path)
        body = self.files.get(request.raw_path)
        return web.Response(body=body, content_type="image/jpeg") if body else web.Response(status=404)


def candidates(pipeline, workdir: Path, *args):
    return pipeline("candidates", "--data", workdir.parent, "--subset", workdir.name, *args)


def download(pipeline, workdir: Path, *args):
    return pipeline("download", "--data", workdir.parent, "--subset", workdir.name, *DOWNLOAD, *args)


@pytest.fixture
def fish(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("SYNSETFORGE_CONTACT", raising=False)
    workdir = tmp_path / "data" / "fish"
    write_synsets(workdir, [TENCH], queries={TENCH: ["tench"]})
    return workdir


# --- the contact in the User-Agent ----------------------------------------------------------------


@pytest.mark.parametrize(
    "source, fake_api", [("commons", FakeCommons), ("openverse", FakeOpenverse), ("flickr", FakeFlickr)]
)
def test_every_search_api_request_carries_the_contact(pipeline, fish, monkeypatch, source, fake_api):
    monkeypatch.setenv("FLICKR_API_KEY", "good-key")
    fake = fake_api(total=10)
    with serving(fake) as api:
        out = candidates(pipeline, fish, "--source", source, "--api", api, "--per-query", "5", "--contact", CONTACT)
    assert out.status == 0, out.err
    assert fake.requests and {r.headers["User-Agent"] for r in fake.requests} == {user_agent(CONTACT)}
    assert user_agent(CONTACT).startswith(f"synsetforge/0.1.0 ({CONTACT}; +https://")
    assert "no CONTACT" not in out.err


@pytest.mark.slow
def test_openverse_token_requests_carry_the_contact_too(pipeline, fish, monkeypatch):
    monkeypatch.setenv("OPENVERSE_CLIENT_ID", "app")
    monkeypatch.setenv("OPENVERSE_CLIENT_SECRET", "secret")
    fake = FakeOpenverse(total=10, clients={"app": "secret"})
    with serving(fake) as api:
        out = candidates(
            pipeline, fish, "--source", "openverse", "--api", api, "--per-query", "5", "--contact", CONTACT
        )
    assert out.status == 0, out.err
    sent = fake.token_requests + fake.requests
    assert fake.token_requests and {r.headers["User-Agent"] for r in sent} == {user_agent(CONTACT)}


def test_the_contact_comes_from_the_environment_too(pipeline, fish, monkeypatch):
    monkeypatch.setenv("SYNSETFORGE_CONTACT", "https://example.org/who-runs-this")
    demo = FakeDemoHost()
    with serving(demo) as api:
        out = candidates(pipeline, fish, "--source", "demo", "--api", api)
    assert out.status == 0, out.err
    assert [r.headers["User-Agent"] for r in demo.requests] == [user_agent("https://example.org/who-runs-this")]


def test_commons_without_a_contact_warns_in_one_line_and_asks_a_standard_width(pipeline, fish):
    fake = FakeCommons(total=10)
    with serving(fake) as api:
        out = candidates(pipeline, fish, "--source", "commons", "--api", api, "--per-query", "5")
    assert out.status == 0, out.err
    warnings = [line for line in out.err.splitlines() if "no CONTACT" in line]
    assert len(warnings) == 1 and "User-Agent policy" in warnings[0] and "CONTACT=" in warnings[0]
    assert {r.headers["User-Agent"] for r in fake.requests} == {user_agent()}
    # Wikimedia's standard widths, not 640: what the fake serves is what was asked for.
    asked = {int(r.params["iiurlwidth"]) for r in fake.requests}
    assert asked == {500} and asked <= set(FakeCommons.THUMB_STEPS)
    found = [r for p in Layout(fish).candidate_parts() for r in _rows(p)]
    assert found and all(r["width"] in (400, 500) for r in found)
    assert all("/500px-" in r["url"] for r in found if r["width"] == 500)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["candidates", "download"])
@pytest.mark.parametrize("where", ["option", "environment"])
def test_a_contact_that_reaches_no_one_is_one_line_naming_the_option(fish, stage, where):
    bad = "call me maybe"
    args = [stage, "--data", fish.parent, "--subset", fish.name]
    done = run_cli(*args, "--contact", bad) if where == "option" else run_cli(*args, env={"SYNSETFORGE_CONTACT": bad})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--contact" in lines[0] and repr(bad) in lines[0], done.stderr
    assert not Layout(fish).candidates.exists()


# --- ImageNet's URL list: Latin-1 lines and spaces, through candidates and download -------------------


def test_latin1_lines_and_spaces_reach_the_server_as_the_crawler_wrote_them(pipeline, fish, tmp_path):
    picture = jpeg()
    server = FakeWebServer({"/caf%E9%20au%20lait.jpg": picture, "/tea%20time.jpg": picture})
    with serving(server) as base:
        listed = tmp_path / "fall11_urls.txt"
        listed.write_bytes(
            f"{TENCH}_1\t{base}/caf\xe9 au lait.jpg\n".encode("latin-1")  # not UTF-8
            + f"{TENCH}_2\t{base}/tea time.jpg\r\n".encode()
            + f"{TENCH}_3\t{base}/plain.jpg\n".encode()
        )
        out = candidates(pipeline, fish, "--source", "urllist", "--urls", listed)
        assert out.status == 0, out.err
        report = read_report(Layout(fish).report("candidates"), schemas.CANDIDATES_REPORT)["list"]
        assert (report["latin1"], report["spaces_encoded"], report["malformed"]) == (1, 2, 0)
        assert "1 not UTF-8 (read as Latin-1), 2 URLs with spaces (encoded as %20)" in out.err
        urls = sorted(r["url"] for p in Layout(fish).candidate_parts() for r in _rows(p))
        assert urls == sorted(f"{base}{p}" for p in ("/caf%E9%20au%20lait.jpg", "/tea%20time.jpg", "/plain.jpg"))

        done = download(pipeline, fish, "--contact", CONTACT)
    assert done.status == 0, done.err
    assert "no CONTACT" not in done.err
    ledger = {r["url"].rsplit("/", 1)[1]: r["status"] for p in Layout(fish).ledger_shards() for r in _rows(p)}
    assert ledger == {"caf%E9%20au%20lait.jpg": "ok", "tea%20time.jpg": "ok", "plain.jpg": "http_error"}
    # The bytes of the list, not a UTF-8 re-encoding of the decoded text (caf%C3%A9).
    assert "/caf%E9%20au%20lait.jpg" in server.raw_paths and "/robots.txt" in server.raw_paths
    # Every request, robots.txt's too, names the operator.
    assert server.requests and {r.headers["User-Agent"] for r in server.requests} == {user_agent(CONTACT)}
    images = read_images(Layout(fish).images, ["image"]).column("image").to_pylist()
    assert len(images) == 2 and all(Image.open(io.BytesIO(b)).size == (64, 48) for b in images)


def test_the_download_of_commons_candidates_warns_without_a_contact(pipeline, fish):
    server = FakeWebServer({"/a.jpg": jpeg()})
    with serving(server) as base:
        write_candidates(fish, [f"{base}/a.jpg"], metadata={"subset": fish.name, "source": "commons"})
        done = download(pipeline, fish)
    assert done.status == 0, done.err
    warnings = [line for line in done.err.splitlines() if "no CONTACT" in line]
    assert len(warnings) == 1 and "upload.wikimedia.org" in warnings[0]
    assert {r.headers["User-Agent"] for r in server.requests} == {user_agent()}


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


# --- MTurk: https image URLs, placeholders only where MTurk should fill them -------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("mturk") / "set"
    make_store(workdir, per_class=12)
    return workdir


def export(pipeline, workdir: Path, *args):
    return pipeline("annotate-export", "--data", workdir.parent, "--subset", workdir.name, "--force", *args)


@pytest.mark.parametrize(
    "base, why",
    [
        (None, "is not https"),  # the default: annotate-serve's http://127.0.0.1:8650/image
        ("http://cdn.example/img", "is not https"),
        ("https://127.0.0.1:8650/image", "loopback or private address"),
        ("https://[::1]/image", "loopback or private address"),
        ("https://192.168.1.20/image", "loopback or private address"),
        ("https://localhost/image", "localhost"),
    ],
)
@pytest.mark.parametrize("task", ["classify", "draw"])
def test_mturk_refuses_image_urls_workers_cannot_load(pipeline, store, base, why, task):
    args = ("--task", task, "--formats", "mturk,jsonl") + (("--image-base-url", base) if base else ())
    out = export(pipeline, store, *args)
    assert out.status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: IMAGE_BASE_URL 'http") and why in lines[0], out.err
    assert "MTURK_ALLOW_HTTP=1" in lines[0] and "HIT_FORMATS" in lines[0]
    assert not Layout(store).round(1).exists() and not Layout(store).box_round(1, "draw").exists()


@pytest.mark.slow
def test_the_refusal_is_a_one_line_exit_2_from_the_command_line(store):
    done = run_cli("annotate-export", "--data", store.parent, "--subset", store.name, "--formats", "mturk")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: IMAGE_BASE_URL 'http://127.0.0.1:8650/image': is not https")


@pytest.mark.parametrize(
    "args",
    [
        ("--image-base-url", "https://cdn.example/img"),
        ("--formats", "labelstudio,jsonl"),  # no MTurk: the local labelling page's URL is fine
        ("--allow-http",),  # trying the sandbox from the machine that serves the images
    ],
)
def test_mturk_takes_an_https_url_and_the_rest_as_told(pipeline, store, args):
    out = export(pipeline, store, *args)
    assert out.status == 0, out.err
    assert Layout(store).hits(1).exists()


def test_the_default_formats_leave_mturk_out_where_workers_could_not_see_the_images(pipeline, store):
    out = export(pipeline, store)
    assert out.status == 0, out.err
    assert "annotate-export: no mturk HITs: IMAGE_BASE_URL 'http://127.0.0.1:8650/image': is not https" in out.err
    folder = Layout(store).round(1)
    assert not (folder / "mturk").exists() and (folder / "labelstudio").exists()
    assert (folder / "tasks.jsonl").exists() or (folder / "jsonl").exists()


def placeholders(template: str) -> list[str]:
    """Every ``${...}`` MTurk would fill in, whatever is between the braces."""
    return re.findall(r"\$\{([^}]*)\}", template)


def test_mturk_templates_hold_no_placeholder_but_the_batch_columns(pipeline, store):
    assert export(pipeline, store, "--image-base-url", "https://cdn.example/img", "--formats", "mturk").status == 0
    folder = Layout(store).round(1) / "mturk"
    template = (folder / "question.html").read_text()
    batch = list(csv.DictReader(io.StringIO((folder / "batch.csv").read_text())))
    header = set(batch[0])
    assert set(placeholders(template)) == header
    comments = re.findall(r"<!--(.*?)-->", template, re.S)
    assert comments and not any("${" in c for c in comments)
    # As MTurk renders it for a row: nothing left to fill in, anywhere.
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: batch[0][m.group(1)], template)
    assert "${" not in rendered
    for task in ("draw", "quality", "coverage"):
        box = box_formats.question(task)
        assert set(placeholders(box)) <= set(box_formats.MTURK_FIELDS), task
        assert not any("${" in c for c in re.findall(r"<!--(.*?)-->", box, re.S)), task
