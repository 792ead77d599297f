"""The in-house labelling page (annotation.serve), driven by a real headless Chromium through
Playwright: ticking by click and keyboard, the stored answers, who gets which HIT, progress,
and hostile synset text shown as text. Checks that need no browser use plain HTTP."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from conftest import run_cli, write_images, write_synsets
from PIL import Image
from wordnet_facts import REPO

from annotation.results import OURS, read_results
from annotation.serve import WORKER_COOKIE, LabellingServer, latest_round
from pipeline import schemas, store
from pipeline.errors import InputError
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout
from pipeline.tables import write_table

pytestmark = pytest.mark.slow  # a real browser drives the page

CYPRINID, TENCH, EVIL = "n01439121", "n01440764", "n09999999"
EVIL_GLOSS = "<script>window.pwned=1</script> a thing & more"
EVIL_LEMMA = '"><img src=x onerror="window.pwned=2">'
# Grids in position order; hits.parquet lists their rows in another order.
GRIDS = {
    f"r1-{TENCH}-0000": ["tench-0", "tench-1", "cyprinid-0", "tench-2", "tench-3", "tench-9", "tench-4"],
    f"r1-{TENCH}-0001": ["tench-5", "tench-6", "tench-7", "tench-8"],
    f"r1-{EVIL}-0000": ["evil-0", "evil-1", "evil-2", "evil-3"],
}
FIRST, SECOND, HOSTILE = GRIDS
KINDS = {"tench-9": "positive", "cyprinid-0": "negative"}
ASSIGNMENTS = {FIRST: 2, SECOND: 2, HOSTILE: 1}


def make_round(workdir: Path) -> Path:
    """Three synsets (one hostile), an image store of two shards and round 1's three HITs."""
    synsets = write_synsets(workdir, [CYPRINID, TENCH, EVIL])
    table = pd.read_parquet(synsets).set_index("wnid")
    table.loc[CYPRINID, "name"] = "cyprinid"
    table.loc[TENCH, "name"] = "tench"
    table.at[TENCH, "lemmas"] = ["tench", "Tinca tinca"]
    table.loc[TENCH, "gloss"] = "freshwater dace-like game fish"
    table.at[TENCH, "parents"] = [CYPRINID]
    table.loc[EVIL, "name"] = EVIL_LEMMA
    table.at[EVIL, "lemmas"] = [EVIL_LEMMA, "evil thing"]
    table.loc[EVIL, "gloss"] = EVIL_GLOSS
    table.at[EVIL, "parents"] = ["n00002684"]  # not in the table: shown by wnid
    table = table.reset_index()
    write_table({c: table[c].tolist() for c in schemas.SYNSETS.names}, synsets, schemas.SYNSETS)

    images = [
        (i, {"tench": TENCH, "cyprinid": CYPRINID, "evil": EVIL}[i.split("-")[0]], picture_jpeg(i, 0, 96, 72))
        for grid in GRIDS.values()
        for i in grid
    ]
    write_images(workdir, images[:6], shard=0)
    write_images(workdir, images[6:], shard=1)

    rows = [(hit_id, position, image_id) for hit_id, grid in GRIDS.items() for position, image_id in enumerate(grid)]
    rows.reverse()
    columns = {
        "hit_id": [h for h, _, _ in rows],
        "round": [1] * len(rows),
        "wnid": [h.split("-")[1] for h, _, _ in rows],
        "position": [p for _, p, _ in rows],
        "image_id": [i for _, _, i in rows],
        "kind": [KINDS.get(i, "candidate") for _, _, i in rows],
        "assignments": [ASSIGNMENTS[h] for h, _, _ in rows],
        "url": [f"http://127.0.0.1:8650/image/{i}.jpg" for _, _, i in rows],
    }
    write_table(columns, Layout(workdir).hits(1), schemas.HITS)
    return workdir


@pytest.fixture
def workdir(tmp_path) -> Path:
    return make_round(tmp_path / "set")


@pytest.fixture
def server(workdir):
    with LabellingServer(workdir, 1, port=0) as server:
        yield server


@pytest.fixture
def new_page(browser):
    """Pages of their own browser contexts (own cookies: one per worker); each records its
    dialogs, and its script errors and console errors (a Content-Security-Policy refusal among them)."""
    contexts = []

    def make(width: int = 1000, height: int = 800):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(5000)
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
        return page

    yield make
    for context in contexts:
        context.close()


def sign_in(page, server: LabellingServer, worker: str) -> None:
    page.goto(server.url("/"))
    page.fill("input[name=worker]", worker)
    page.click("button[type=submit]")
    page.wait_for_url(server.url("/hit"))


def shown_hit(page) -> str | None:
    """The HIT on the page, or None on another page (the done page)."""
    action = page.get_attribute("#hit", "action") if page.locator("#hit").count() else None
    return action.removeprefix("/hit/") if action else None


def wait_for_hit(page, hit_id: str) -> None:
    page.wait_for_selector(f'form#hit[action="/hit/{hit_id}"]')


def active_image(page) -> str:
    return page.evaluate("document.activeElement.value")


def post_answer(server: LabellingServer, worker: str | None, hit_id: str, body, **kw) -> requests.Response:
    cookies = {WORKER_COOKIE: worker} if worker else {}
    return requests.post(server.url(f"/hit/{quote(hit_id, safe='')}"), json=body, cookies=cookies, timeout=10, **kw)


def hit_for(server: LabellingServer, worker: str) -> str | None:
    text = requests.get(server.url("/hit"), cookies={WORKER_COOKIE: worker}, timeout=10).text
    found = re.search(r'<form id="hit" method="post" action="/hit/([^"]+)"', text)
    return found.group(1) if found else None


def results(server: LabellingServer) -> list[dict]:
    return [json.loads(line) for line in server.results.read_text().splitlines()]


def test_a_worker_ticks_by_click_and_keyboard_and_the_answer_is_stored(server, new_page):
    page = new_page()
    sign_in(page, server, "alice")
    assert shown_hit(page) == FIRST
    assert page.text_content("#lemmas") == "tench, Tinca tinca"
    assert page.text_content("#gloss") == "freshwater dace-like game fish"
    assert page.text_content("#parent") == "cyprinid"
    assert page.get_attribute("#wikipedia", "href") == "https://en.wikipedia.org/w/index.php?search=tench"
    grid = GRIDS[FIRST]
    assert page.eval_on_selector_all("input[name=ticked]", "boxes => boxes.map(b => b.value)") == grid
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=5000)
    html = page.content()
    assert not any(word in html for word in ("positive", "negative", "candidate"))  # controls look like the rest
    for key in ("Arrow keys", "Space", "Enter"):
        assert key in page.text_content(".keys")

    # Keyboard: the focus starts on the first image; down moves a row of the responsive grid.
    assert active_image(page) == grid[0]
    columns = page.evaluate("""() => { const tops = Array.from(document.querySelectorAll('.tile'), t => t.offsetTop);
                                       return tops.filter(t => t === tops[0]).length; }""")
    assert 1 < columns < len(grid)
    page.keyboard.press("ArrowDown")
    assert active_image(page) == grid[columns]
    page.keyboard.press("Space")
    page.keyboard.press("Space")  # ticked, then unticked
    page.keyboard.press("ArrowUp")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert active_image(page) == grid[3]
    page.keyboard.press("Space")
    # Clicks: one tick, and one image ticked then unticked.
    tiles = page.locator("label.tile")
    tiles.nth(1).click()
    tiles.nth(5).click()
    tiles.nth(5).click()
    assert page.eval_on_selector_all("input:checked", "boxes => boxes.map(b => b.value)") == [grid[1], grid[3]]

    page.keyboard.press("Enter")
    wait_for_hit(page, SECOND)
    [line] = results(server)
    assert set(line) == {
        "format",
        "hit_id",
        "assignment_id",
        "worker_id",
        "status",
        "ticked",
        "shown",
        "submitted_at",
        "seconds",
    }
    assert line["format"] == "synsetforge-results/1" and line["status"] == "Submitted"
    assert (line["hit_id"], line["worker_id"]) == (FIRST, "alice")
    assert line["ticked"] == [grid[1], grid[3]] and line["shown"] == grid
    assert re.fullmatch(r"[0-9a-f]{32}", line["assignment_id"])
    submitted = datetime.fromisoformat(line["submitted_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - submitted).total_seconds()) < 60
    assert 0 < line["seconds"] < 60
    assert page.dialogs == []


def test_a_hit_goes_to_other_workers_until_it_has_its_answers(server, new_page):
    alice, bob, carol = new_page(), new_page(), new_page()
    sign_in(alice, server, "alice")
    sign_in(bob, server, "bob")
    assert shown_hit(alice) == shown_hit(bob) == FIRST
    alice.click("button[type=submit]")  # nothing ticked is an answer too
    wait_for_hit(alice, SECOND)
    bob.reload()
    assert shown_hit(bob) == FIRST
    alice.reload()
    assert shown_hit(alice) == SECOND  # not the HIT alice answered
    bob.click("label.tile >> nth=0")
    bob.keyboard.press("Enter")
    wait_for_hit(bob, SECOND)
    sign_in(carol, server, "carol")
    assert shown_hit(carol) == HOSTILE  # FIRST has the two answers it wants, SECOND's two are held
    assert [(r["worker_id"], r["hit_id"], r["ticked"]) for r in results(server)] == [
        ("alice", FIRST, []),
        ("bob", FIRST, [GRIDS[FIRST][0]]),
    ]

    carol.goto(server.url("/progress"))
    cells = {w: carol.locator(f'tr[data-wnid="{w}"] td').all_text_contents() for w in (TENCH, EVIL)}
    assert cells == {TENCH: [TENCH, "tench", "2", "1", "2 / 4", "2"], EVIL: [EVIL, EVIL_LEMMA, "1", "0", "0 / 1", "0"]}
    progress = requests.get(server.url("/progress.json"), timeout=10).json()
    tench = next(s for s in progress["synsets"] if s["wnid"] == TENCH)
    assert {k: tench[k] for k in ("hits", "complete", "answers", "wanted", "workers")} == {
        "hits": 2,
        "complete": 1,
        "answers": 2,
        "wanted": 4,
        "workers": 2,
    }
    assert progress["total"] == {"hits": 3, "complete": 1, "answers": 2, "wanted": 5, "workers": 2}


def test_hostile_synset_text_is_shown_as_text_and_nothing_runs(server, new_page):
    page = new_page()
    sign_in(page, server, "mallory")
    for hit_id in (FIRST, SECOND):  # the page's own cookie, without clicking through
        response = page.request.post(server.url(f"/hit/{hit_id}"), data={"ticked": [], "seconds": 1.0})
        assert response.ok
    page.reload()
    assert shown_hit(page) == HOSTILE
    assert page.text_content("#gloss") == EVIL_GLOSS
    assert page.text_content("#lemmas") == f"{EVIL_LEMMA}, evil thing"
    assert page.text_content("#parent") == "n00002684"
    wikipedia = "https://en.wikipedia.org/w/index.php?search=" + quote(EVIL_LEMMA)
    assert page.get_attribute("#wikipedia", "href") == wikipedia
    assert EVIL_LEMMA in page.title()
    assert page.locator('img[src="x"]').count() == 0 and page.locator("main script").count() == 0

    page.goto(server.url("/progress"))
    assert page.text_content(f'tr[data-wnid="{EVIL}"] td:nth-child(2)') == EVIL_LEMMA
    page.goto(server.url("/hit"))
    page.keyboard.press("Enter")
    page.wait_for_selector("text=no HIT is left for you")
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.dialogs == []


def test_bad_submissions_are_refused(server, workdir):
    first, second = GRIDS[FIRST], GRIDS[SECOND]
    good = {"ticked": [first[2]], "seconds": 3.5}
    assert post_answer(server, "alice", "r1-n00000000-0000", good).status_code == 400
    assert post_answer(server, "alice", FIRST, {"ticked": [second[0]], "seconds": 1}).status_code == 400
    assert post_answer(server, "alice", FIRST, {"ticked": first[0], "seconds": 1}).status_code == 400
    assert post_answer(server, "alice", FIRST, {"ticked": [], "seconds": -1}).status_code == 400
    assert post_answer(server, None, FIRST, good).status_code == 400
    as_form = requests.post(
        server.url(f"/hit/{FIRST}"),
        data={"ticked": first[0], "seconds": "1"},
        cookies={WORKER_COOKIE: "alice"},
        timeout=10,
    )
    assert as_form.status_code == 400  # a form from another site cannot answer
    assert not server.results.exists()

    assert post_answer(server, "alice", FIRST, good).status_code == 200
    again = post_answer(server, "alice", FIRST, {"ticked": [], "seconds": 1})
    assert again.status_code == 409
    assert [(r["worker_id"], r["ticked"], r["seconds"]) for r in results(server)] == [("alice", [first[2]], 3.5)]
    assert server.results == Layout(workdir).local_answers(1)
    hits = pd.read_parquet(Layout(workdir).hits(1))
    votes, _ = read_results(server.results, hits)  # what annotate-import makes of the line
    assert votes[votes.answer].image_id.tolist() == [first[2]] and len(votes) == len(first)

    hostile = requests.post(server.url("/worker"), data={"worker": "<b>x</b>"}, allow_redirects=False, timeout=10)
    assert hostile.status_code == 400 and "&lt;b&gt;x&lt;/b&gt;" in hostile.text and "<b>x" not in hostile.text
    signed = requests.post(server.url("/worker"), data={"worker": "bob"}, allow_redirects=False, timeout=10)
    assert signed.status_code == 303 and signed.cookies[WORKER_COOKIE] == "bob"

    picture = requests.get(server.url(f"/image/{first[0]}.jpg"), timeout=10)
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/jpeg"
    assert picture.content == picture_jpeg(first[0], 0, 96, 72) and "max-age" in picture.headers["Cache-Control"]
    assert requests.get(server.url("/image/not-shown.jpg"), timeout=10).status_code == 404
    assert "script-src 'self'" in requests.get(server.url("/"), timeout=10).headers["Content-Security-Policy"]


def test_a_restart_goes_on_from_the_results_file(workdir):
    with LabellingServer(workdir, 1, port=0) as server:
        for worker in ("alice", "bob"):
            assert post_answer(server, worker, FIRST, {"ticked": [], "seconds": 2}).ok
    with LabellingServer(workdir, 1, port=0) as server:
        assert hit_for(server, "alice") == SECOND
        assert post_answer(server, "alice", FIRST, {"ticked": [], "seconds": 2}).status_code == 409
        late = post_answer(server, "carol", FIRST, {"ticked": [], "seconds": 2})  # the answers before count
        assert late.status_code == 409 and "already has the 2 answers it wants" in late.text
        for hit_id in (SECOND, HOSTILE):
            assert post_answer(server, "alice", hit_id, {"ticked": [], "seconds": 2}).ok
        assert hit_for(server, "alice") is None
        assert "no HIT is left for you" in requests.get(server.url("/hit"), cookies={WORKER_COOKIE: "alice"}).text
        assert hit_for(server, "bob") == SECOND  # HOSTILE has its one answer
        assert hit_for(server, "carol") is None  # SECOND: alice's answer and bob's hold
        assert requests.get(server.url("/progress.json"), timeout=10).json()["total"]["answers"] == 4
    assert len(server.results.read_text().splitlines()) == 4


def test_the_latest_round_is_served_by_default(workdir, tmp_path):
    layout = Layout(workdir)
    assert latest_round(workdir) == 1
    for round_ in (2, 10):
        layout.round(round_).mkdir()
        shutil.copy(layout.hits(1), layout.hits(round_))
    assert layout.rounds() == [1, 2, 10] and latest_round(workdir) == 10  # by number, not by name
    with pytest.raises(InputError, match="annotate-export"):
        latest_round(tmp_path / "empty")


def test_missing_or_malformed_inputs_name_the_file(workdir):
    layout = Layout(workdir)
    hits, synsets = layout.hits(1), layout.synsets

    def refusal() -> str:
        with pytest.raises(InputError) as caught:
            LabellingServer(workdir, 1, port=0)
        return str(caught.value)

    with pytest.raises(InputError, match="round-2/hits.parquet"):
        LabellingServer(workdir, 2, port=0)

    shutil.move(synsets, synsets.with_suffix(".bak"))
    assert str(synsets) in refusal()
    shutil.move(synsets.with_suffix(".bak"), synsets)

    original = pq.read_table(hits)
    pq.write_table(original.set_column(1, "round", pa.array(["1"] * original.num_rows)), hits)
    assert str(hits) in refusal() and "round" in refusal()
    hits.write_bytes(b"not parquet")
    assert str(hits) in refusal()
    pq.write_table(original.set_column(2, "wnid", pa.array(["n00000001"] * original.num_rows)), hits)
    assert "n00000001" in refusal()
    pq.write_table(original, hits)

    store.shard_path(layout.images, 1).unlink()
    assert "not in the image store" in refusal()
    write_images(workdir, [("evil-3", EVIL, picture_jpeg("evil-3", 0, 96, 72))], shard=1)
    assert "not in the image store" in refusal()  # still missing others

    results = layout.local_answers(1)
    make_round(workdir)
    results.write_text('{"format": "synsetforge-results/1", "hit_id": "x", "worker_id": "a"}\n{"half": \n')
    assert f"{results}:2" in refusal()


# Who answers what: a HIT's assignment count and the holds.


def answer_at_once(server: LabellingServer, hit_id: str, workers: list[str]) -> list[int]:
    """Every worker submits ``hit_id`` at the same moment, without holding it; their statuses."""
    start = threading.Barrier(len(workers))

    def submit(worker: str) -> int:
        start.wait()
        return post_answer(server, worker, hit_id, {"ticked": [], "seconds": 1}).status_code

    with ThreadPoolExecutor(len(workers)) as pool:
        return list(pool.map(submit, workers))


def test_a_hit_takes_no_more_answers_than_it_wants(server):
    statuses = [post_answer(server, f"w{n}", FIRST, {"ticked": [], "seconds": 1}) for n in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 409, 409, 409, 409]
    assert (
        statuses[2].text == f"HIT {FIRST} already has the 2 answers it wants, given or held by other workers: "
        "your answer was not counted"
    )
    assert [(r["hit_id"], r["worker_id"]) for r in results(server)] == [(FIRST, "w0"), (FIRST, "w1")]
    assert hit_for(server, "w2") == SECOND


def test_simultaneous_submits_cannot_both_take_the_last_slot(server):
    workers = [f"w{n}" for n in range(8)]
    assert sorted(answer_at_once(server, HOSTILE, workers)) == [200] + [409] * 7
    assert sorted(answer_at_once(server, FIRST, workers)) == [200] * 2 + [409] * 6
    answered = [r["hit_id"] for r in results(server)]
    assert answered.count(HOSTILE) == 1 and answered.count(FIRST) == 2


def test_a_shown_hit_is_held_for_its_worker_until_the_hold_runs_out(workdir):
    hold = 2.0  # seconds
    with LabellingServer(workdir, 1, port=0, hold_minutes=hold / 60) as server:
        assert hit_for(server, "alice") == hit_for(server, "bob") == FIRST
        assert hit_for(server, "carol") == SECOND  # FIRST's two slots are held
        assert hit_for(server, "alice") == FIRST  # a reload shows the HIT held
        refused = post_answer(server, "carol", FIRST, {"ticked": [], "seconds": 1})
        assert refused.status_code == 409 and "held by other workers" in refused.text
        time.sleep(hold + 0.3)
        assert hit_for(server, "dave") == FIRST  # the holds ran out
        assert post_answer(server, "bob", FIRST, {"ticked": [], "seconds": 1}).ok  # a slot still free
        lapsed = post_answer(server, "alice", FIRST, {"ticked": [], "seconds": 1})
        assert lapsed.status_code == 409 and "your hold on it ran out" in lapsed.text
        assert post_answer(server, "dave", FIRST, {"ticked": [], "seconds": 1}).ok  # held for dave
        assert [r["worker_id"] for r in results(server)] == ["bob", "dave"]


def test_the_page_tells_a_worker_whose_answer_came_too_late(workdir, new_page):
    with LabellingServer(workdir, 1, port=0, hold_minutes=1 / 60) as server:
        page = new_page()
        sign_in(page, server, "alice")
        assert shown_hit(page) == FIRST
        page.click("label.tile >> nth=0")
        time.sleep(1.3)
        for worker in ("bob", "carol"):
            assert hit_for(server, worker) == FIRST
            assert post_answer(server, worker, FIRST, {"ticked": [], "seconds": 1}).ok
        page.keyboard.press("Enter")
        page.wait_for_selector("#status a")
        assert "already has the 2 answers it wants" in page.text_content("#status")
        assert "your answer was not counted" in page.text_content("#status")
        page.click("#status a")
        wait_for_hit(page, SECOND)
        assert [r["worker_id"] for r in results(server)] == ["bob", "carol"]


# Who may ask: the Host header.


def test_only_requests_naming_the_page_itself_are_answered(server):
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert requests.get(server.url("/hit"), headers={"Host": host}, timeout=10).status_code == 200, host
    for host in (f"evil.example:{port}", "localhost:1", f"127.0.0.1.evil.example:{port}"):
        refused = requests.get(server.url("/progress.json"), headers={"Host": host}, timeout=10)
        assert refused.status_code == 421 and refused.text == f"refused: Host {host!r} is not this page's address"
    evil = {"Host": f"evil.example:{port}"}
    assert post_answer(server, "alice", FIRST, {"ticked": [], "seconds": 1}, headers=evil).status_code == 421
    assert not server.results.exists()


# The command line, as a user runs it.


def serve_command(workdir: Path, *options: str) -> list[str]:
    data = ["--data", str(workdir.parent), "--subset", workdir.name]
    return [sys.executable, "-m", "pipeline", "annotate-serve", *data, *options]


class Serving:
    """``annotate-serve`` as a separate process on a free port, up once it says where; leaving
    stops it with Ctrl-C and keeps its exit status and stderr."""

    def __init__(self, workdir: Path, *options: str, preexec_fn=None):
        self.command = serve_command(workdir, "--port", "0", *options)
        self.preexec_fn = preexec_fn

    def _before_exec(self) -> None:
        # A shell without job control starts background jobs with Ctrl-C ignored, which Python
        # keeps: pytest run that way would hand the page a SIGINT it cannot hear.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if self.preexec_fn is not None:
            self.preexec_fn()

    def __enter__(self):
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self._before_exec,
        )
        line = self.process.stdout.readline()
        found = re.search(r" on (http://\S+)/;", line)
        if not found:
            self.process.kill()
            pytest.fail(f"annotate-serve did not start: {line}{self.process.communicate()[1]}")
        self.base = found.group(1)
        return self

    def url(self, path: str = "/") -> str:
        return self.base + path

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGINT)
        self.stderr = self.process.communicate(timeout=20)[1]
        self.status = self.process.returncode


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    return line


def test_out_of_range_numbers_are_refused_before_anything_runs(workdir):
    for option, value in (("--port", "99999"), ("--port", "-1"), ("--reservation-minutes", "0"), ("--round", "0")):
        done = run_cli(*serve_command(workdir, option, value)[3:])
        assert done.returncode == 2, (option, value)
        assert "out of range" in one_line(done.stderr) and option in done.stderr
    assert not (workdir / ".stages").exists() and not Layout(workdir).local_answers(1).exists()


def test_a_port_in_use_is_one_line(workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(*serve_command(workdir, "--port", str(port))[3:])
    assert done.returncode == 1
    assert one_line(done.stderr) == f"error: cannot listen on 127.0.0.1:{port}: address in use"


def test_a_second_page_on_the_same_data_is_refused(workdir):
    with Serving(workdir) as first:
        second = subprocess.run(
            serve_command(workdir, "--port", "0"), cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert one_line(second.stderr) == f"error: another run of stage annotate-serve is writing to {workdir}"
        assert requests.get(first.url("/hit"), cookies={WORKER_COOKIE: "alice"}, timeout=10).ok
    assert first.status == 0 and first.stderr == ""
    with Serving(workdir) as again:  # the lock goes with the page
        assert requests.get(again.url("/progress.json"), timeout=10).ok


# A data folder the page cannot write to.


def _drop_root_override() -> None:
    """Run as root but without the capabilities that ignore file modes (the interpreter lives
    under /root, which user nobody cannot read): a folder of mode 555 is then read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP: gone for the next exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only for a server started with ``preexec_fn=_drop_root_override``
    (and writable again); skips where that cannot be arranged."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o555)
    try:
        written = subprocess.run(
            [sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"], preexec_fn=_drop_root_override
        ).returncode
    except subprocess.SubprocessError as e:
        pytest.skip(f"cannot drop the capabilities that let root write anywhere: {e}")
    if written == 0:
        pytest.skip("a folder of mode 555 is writable for the server here")

    @contextlib.contextmanager
    def made(folder: Path):
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)

    return made


def test_a_page_whose_answers_cannot_be_saved_does_not_start(workdir, read_only):
    round_ = Layout(workdir).round(1)
    with read_only(round_):
        done = subprocess.run(
            serve_command(workdir, "--port", "0"),
            cwd=REPO,
            capture_output=True,
            text=True,
            preexec_fn=_drop_root_override,
            timeout=60,
        )
    assert done.returncode == 1 and done.stdout == ""
    answers = Layout(workdir).local_answers(1)
    assert one_line(done.stderr) == f"error: cannot write answers to {answers}: Permission denied"


def test_an_answer_that_cannot_be_saved_is_refused_and_kept_for_another_try(workdir, read_only, new_page):
    round_ = Layout(workdir).round(1)
    answers = Layout(workdir).local_answers(1)
    with Serving(workdir, preexec_fn=_drop_root_override) as server:
        page = new_page()
        sign_in(page, server, "alice")
        page.click("label.tile >> nth=1")
        page.click("label.tile >> nth=3")
        with read_only(round_):
            refused = post_answer(server, "bob", FIRST, {"ticked": [], "seconds": 1})
            assert refused.status_code == 503 and refused.text.startswith("Your answer was NOT saved: ")
            page.keyboard.press("Enter")
            page.wait_for_selector("#status:has-text('NOT saved')")
            assert "Permission denied" in page.text_content("#status") and page.locator("#status a").count() == 0
            assert shown_hit(page) == FIRST and not answers.exists()
            ticked = page.eval_on_selector_all("input:checked", "boxes => boxes.map(b => b.value)")
            assert ticked == [GRIDS[FIRST][1], GRIDS[FIRST][3]]
        page.keyboard.press("Enter")  # the same ticks, once the folder is writable again
        wait_for_hit(page, SECOND)
    assert [(r["worker_id"], r["ticked"]) for r in map(json.loads, answers.read_text().splitlines())] == [
        ("alice", [GRIDS[FIRST][1], GRIDS[FIRST][3]])
    ]
    assert server.status == 0 and "Traceback" not in server.stderr
    lines = server.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: the answer of worker ") for line in lines)
    assert f"worker bob to HIT {FIRST} was NOT saved" in lines[0] and f"cannot write {answers}" in lines[0]


def test_an_image_damaged_in_the_store_is_an_error_naming_it_and_the_page_goes_on(workdir):
    shard = store.shard_path(Layout(workdir).images, 0)
    data = bytearray(shard.read_bytes())
    middle = len(data) // 2  # inside the image column's pages
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    shard.write_bytes(bytes(data))
    damaged = set(pd.read_parquet(shard, columns=["image_id"]).image_id)
    with LabellingServer(workdir, 1, port=0) as server:
        for grid in GRIDS.values():
            for image_id in grid:
                got = requests.get(server.url(f"/image/{image_id}.jpg"), timeout=10)
                if image_id in damaged:
                    assert got.status_code == 500 and "damaged in the image store" in got.text
                else:
                    assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"


# Box mode: draw, quality and coverage tasks of a box round (Su, Deng and Fei-Fei, HCOMP 2012).

BIG = (500, 375)  # the stored images' size; the page shows them at 800x600
SHOWN = [20, 30, 120, 200]  # a box accepted already
JUDGED = [50, 60, 300, 250]
DRAW_TASKS = [f"b1-draw-big-{n}" for n in range(2)]
GOLD = "b1-quality-gold-g0"


def box_tasks(task: str, specs: list[dict]) -> dict[str, list]:
    """BOX_TASKS columns for ``specs`` (task_id, image_id, and what differs from the defaults)."""
    rows = []
    for spec in specs:
        judged = spec.get("judged", [None] * 4)
        rows.append(
            {
                "round": 1,
                "task": task,
                "wnid": TENCH,
                "kind": "candidate",
                "box_id": spec.get("box_id"),
                **dict(zip(("xmin", "ymin", "xmax", "ymax"), judged)),
                "shown": spec.get("shown", []),
                "width": BIG[0],
                "height": BIG[1],
                "assignments": spec.get("assignments", 1),
                "url": f"http://127.0.0.1:8650/image/{spec['image_id']}.jpg",
                **spec,
            }
        )
    return {name: [row.get(name) for row in rows] for name in schemas.BOX_TASKS.names}


def write_box_tasks(workdir: Path, task: str, specs: list[dict]) -> Path:
    path = Layout(workdir).box_tasks(1, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(box_tasks(task, specs), path, schemas.BOX_TASKS)
    return path


def make_box_round(workdir: Path) -> Path:
    """Round 1's data, two 500x375 JPEGs of tench in a third shard, and box round 1's tasks."""
    make_round(workdir)
    write_images(workdir, [(f"big-{n}", TENCH, picture_jpeg(TENCH, n, *BIG)) for n in range(2)], shard=2)
    write_box_tasks(
        workdir,
        "draw",
        [
            {"task_id": DRAW_TASKS[0], "image_id": "big-0", "shown": [SHOWN]},
            {"task_id": DRAW_TASKS[1], "image_id": "big-1", "assignments": 2},
        ],
    )
    write_box_tasks(
        workdir,
        "quality",
        [
            {"task_id": "b1-quality-box-0", "image_id": "big-0", "box_id": "box-0", "judged": JUDGED},
            {"task_id": "b1-quality-box-1", "image_id": "big-1", "box_id": "box-1", "judged": [0, 0, 500, 375]},
            {"task_id": GOLD, "image_id": "big-1", "box_id": "g0", "judged": [1, 2, 3, 4], "kind": "positive"},
        ],
    )
    write_box_tasks(
        workdir,
        "coverage",
        [
            {"task_id": "b1-coverage-big-0", "image_id": "big-0", "shown": [SHOWN, JUDGED]},
            {"task_id": "b1-coverage-big-1", "image_id": "big-1", "shown": [[0, 0, 500, 375]]},
        ],
    )
    return workdir


@pytest.fixture
def box_workdir(tmp_path) -> Path:
    return make_box_round(tmp_path / "boxes")


def handle(server: LabellingServer, task_id: str) -> str:
    """How the page names a box task to workers."""
    return server.labelling.by_id[task_id].handle


def shown_task(page, server: LabellingServer) -> str | None:
    """The id of the box task on the page, or None on another page."""
    action = page.get_attribute("#box-task", "action") if page.locator("#box-task").count() else None
    return server.labelling.by_handle[action.removeprefix("/hit/")].id if action else None


def wait_for_task(page, server: LabellingServer, task_id: str) -> None:
    page.wait_for_selector(f'form#box-task[action="/hit/{handle(server, task_id)}"]')


def post_task(server: LabellingServer, worker: str, task_id: str, body) -> requests.Response:
    return post_answer(server, worker, handle(server, task_id), body)


def task_for(server: LabellingServer, worker: str) -> str | None:
    text = requests.get(server.url("/hit"), cookies={WORKER_COOKIE: worker}, timeout=10).text
    found = re.search(r'<form id="box-task" method="post" action="/hit/([^"]+)"', text)
    return server.labelling.by_handle[found.group(1)].id if found else None


class Picture:
    """The displayed image: where it is on the screen, and the stored-image pixel edge that a
    mouse at a whole screen pixel stands for (naturalWidth / displayed width, rounded)."""

    def __init__(self, page):
        page.wait_for_function("document.getElementById('picture')?.naturalWidth > 0")  # not there yet: wait
        self.rect = page.eval_on_selector("#picture", "p => p.getBoundingClientRect().toJSON()")
        self.natural = tuple(page.eval_on_selector("#picture", "p => [p.naturalWidth, p.naturalHeight]"))

    def screen(self, dx: float, dy: float) -> tuple[int, int]:
        """The whole screen pixel nearest to ``(dx, dy)`` CSS pixels from the image's corner."""
        return round(self.rect["x"] + dx), round(self.rect["y"] + dy)

    def edge(self, x: int, y: int) -> tuple[int, int]:
        """Stored-image pixels of screen point (x, y), rounded half up as JavaScript's Math.round."""
        scale_x, scale_y = self.natural[0] / self.rect["width"], self.natural[1] / self.rect["height"]
        return math.floor((x - self.rect["x"]) * scale_x + 0.5), math.floor((y - self.rect["y"]) * scale_y + 0.5)

    def box_rect(self, page, selector: str) -> list[float]:
        """Where a box drawn over the image is, in stored-image pixels."""
        r = page.eval_on_selector(selector, "b => b.getBoundingClientRect().toJSON()")
        sx, sy = self.rect["width"] / self.natural[0], self.rect["height"] / self.natural[1]
        return [
            (r["x"] - self.rect["x"]) / sx,
            (r["y"] - self.rect["y"]) / sy,
            (r["x"] + r["width"] - self.rect["x"]) / sx,
            (r["y"] + r["height"] - self.rect["y"]) / sy,
        ]


def imported(server: LabellingServer, workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the box importer reads in the page's answers: draws (a row per box) and yes/no votes."""
    from annotation.box_results import read_box_results  # annotate-import's reader of box answers

    tasks = pd.read_parquet(Layout(workdir).box_tasks(server.labelling.round, server.labelling.task))
    draws, votes, _ = read_box_results(server.results, tasks)
    return draws, votes


def drag(page, start: tuple[int, int], end: tuple[int, int]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def assert_near(got: list[float], want: list[int], within: float = 1.0) -> None:
    assert all(abs(g - w) <= within for g, w in zip(got, want)), (got, want)


def test_a_worker_draws_adjusts_deletes_redraws_and_submits_a_box_in_image_pixels(box_workdir, new_page):
    with LabellingServer(box_workdir, 1, port=0, task="draw") as server:
        page = new_page(1280, 1000)
        sign_in(page, server, "alice")
        assert shown_task(page, server) == DRAW_TASKS[0]
        assert page.text_content("#question") == "Draw a tight box around ONE tench that has no box yet"
        assert page.text_content("#lemmas") == "tench, Tinca tinca"
        assert page.text_content("#gloss") == "freshwater dace-like game fish"
        assert "160%" in page.text_content(".meta") and "500×375" in page.text_content(".meta")
        for key in ("Enter", "Delete", "N"):
            assert key in page.text_content(".keys")
        picture = Picture(page)
        assert picture.natural == BIG and (picture.rect["width"], picture.rect["height"]) == (800, 600)
        assert page.locator(".box.shown").count() == 1
        assert_near(picture.box_rect(page, ".box.shown"), SHOWN)
        assert page.locator(".box.drawn").is_hidden()

        # Press, drag, release: the box spans the two points, each rounded to a pixel edge.
        start, end = picture.screen(101, 53), picture.screen(411, 307)
        drag(page, start, end)
        box = [*picture.edge(*start), *picture.edge(*end)]
        assert box == [63, 33, 257, 192]  # 0.625 stored pixels per screen pixel, rounded, not cut
        assert_near(picture.box_rect(page, ".box.drawn"), box)

        # The bottom-right corner, dragged further out.
        corner = picture.screen(box[2] * 1.6, box[3] * 1.6)
        moved_to = picture.screen(451, 331)
        drag(page, corner, moved_to)
        box[2:] = picture.edge(*moved_to)
        assert box == [63, 33, 282, 207]
        assert_near(picture.box_rect(page, ".box.drawn"), box)

        # Deleted, then drawn again from the bottom-right to the top-left, then moved.
        page.keyboard.press("Delete")
        assert page.locator(".box.drawn").is_hidden()
        page.keyboard.press("Enter")  # no box: nothing is sent
        assert "Draw a box first" in page.text_content("#status")
        start, end = picture.screen(701, 501), picture.screen(203, 157)
        drag(page, start, end)
        box = [*picture.edge(*end), *picture.edge(*start)]
        assert box == [127, 98, 438, 313]
        drag(page, picture.screen(400, 300), picture.screen(437, 279))  # +37, -21 screen pixels
        box = [box[0] + 23, box[1] - 13, box[2] + 23, box[3] - 13]
        assert_near(picture.box_rect(page, ".box.drawn"), box)

        page.keyboard.press("Enter")
        wait_for_task(page, server, DRAW_TASKS[1])
        [line] = results(server)
        assert server.results == Layout(box_workdir).box_round(1, "draw") / "results-local.jsonl"
        assert (line["format"], line["task_id"], line["worker_id"]) == (OURS, DRAW_TASKS[0], "alice")
        assert line["box"] == box == [150, 85, 461, 300]
        assert re.fullmatch(r"[0-9a-f]{32}", line["assignment_id"])
        with Image.open(io.BytesIO(picture_jpeg(TENCH, 0, *BIG))) as stored:  # the box crops the stored image
            assert stored.crop(line["box"]).size == (311, 215)

        # A box dragged past the image's far edges is cut to them; a move cannot push it out.
        picture = Picture(page)
        right, bottom = picture.rect["x"] + picture.rect["width"], picture.rect["y"] + picture.rect["height"]
        start = picture.screen(601, 401)
        drag(page, start, (round(right + 40), round(bottom + 30)))
        drag(page, picture.screen(700, 550), (round(right + 60), round(bottom + 60)))
        assert page.locator(".box.shown").count() == 0
        page.click("#submit-box")
        page.wait_for_selector("text=no HIT is left for you")
        assert results(server)[1]["box"] == [*picture.edge(*start), *BIG] == [376, 251, 500, 375]
        assert page.errors == []
        draws, _ = imported(server, box_workdir)
        assert draws[["task_id", "worker_id", "xmin", "ymin", "xmax", "ymax"]].values.tolist() == [
            [DRAW_TASKS[0], "alice", 150, 85, 461, 300],
            [DRAW_TASKS[1], "alice", 376, 251, 500, 375],
        ]
        assert page.dialogs == []


def test_nothing_left_to_box_stores_null_and_a_second_worker_gets_the_next_slot(box_workdir, new_page):
    with LabellingServer(box_workdir, 1, port=0, task="draw") as server:
        alice, bob = new_page(1280, 1000), new_page(1280, 1000)
        sign_in(alice, server, "alice")
        sign_in(bob, server, "bob")
        assert shown_task(alice, server) == DRAW_TASKS[0]
        assert shown_task(bob, server) == DRAW_TASKS[1]  # the first task's one slot is held for alice
        bob.keyboard.press("n")
        bob.wait_for_selector("text=no HIT is left for you")

        picture = Picture(alice)
        drag(alice, picture.screen(100, 100), picture.screen(300, 300))
        alice.keyboard.press("N")  # a box is drawn: not sent
        assert "delete it first" in alice.text_content("#status")
        alice.click("#delete-box")
        assert alice.locator(".box.drawn").is_hidden()
        alice.click("#nothing-left")
        wait_for_task(alice, server, DRAW_TASKS[1])
        assert [(r["worker_id"], r["task_id"], r["box"]) for r in results(server)] == [
            ("bob", DRAW_TASKS[1], None),
            ("alice", DRAW_TASKS[0], None),
        ]
        draws, _ = imported(server, box_workdir)
        assert draws.xmin.isna().all() and sorted(draws.worker_id) == ["alice", "bob"]  # no box
        progress = requests.get(server.url("/progress.json"), timeout=10).json()
        assert (progress["task"], progress["total"]["answers"], progress["total"]["complete"]) == ("draw", 2, 1)


def test_quality_and_coverage_are_answered_by_keyboard(box_workdir, new_page):
    with LabellingServer(box_workdir, 1, port=0, task="quality") as server:
        page = new_page(1280, 1000)
        sign_in(page, server, "alice")
        assert shown_task(page, server) == "b1-quality-box-0"
        assert page.text_content("#question") == "Is the red box a tight box around ONE tench?"
        picture = Picture(page)
        assert_near(picture.box_rect(page, ".box.judged"), JUDGED)
        assert page.locator(".box.shown").count() == 0
        page.keyboard.press("y")
        wait_for_task(page, server, "b1-quality-box-1")
        page.keyboard.press("n")
        wait_for_task(page, server, GOLD)  # a gold task looks like the others
        assert not any(word in page.content() for word in ("gold", "positive", "b1-quality"))
        page.keyboard.press("Y")
        page.wait_for_selector("text=no HIT is left for you")
        assert [(r["task_id"], r["answer"]) for r in results(server)] == [
            ("b1-quality-box-0", True),
            ("b1-quality-box-1", False),
            (GOLD, True),
        ]
        assert imported(server, box_workdir)[1][["task_id", "answer"]].values.tolist() == [
            ["b1-quality-box-0", True],
            ["b1-quality-box-1", False],
            [GOLD, True],
        ]
    with LabellingServer(box_workdir, 1, port=0, task="coverage") as server:
        page.goto(server.url("/hit"))  # the worker cookie is the page's, whatever its port
        assert shown_task(page, server) == "b1-coverage-big-0"
        assert page.text_content("#question") == "Does every tench in the image have a box?"
        picture = Picture(page)
        assert page.locator(".box.shown").count() == 2
        for n, want in enumerate((SHOWN, JUDGED)):
            assert_near(picture.box_rect(page, f".box.shown >> nth={n}"), want)
        page.keyboard.press("N")
        wait_for_task(page, server, "b1-coverage-big-1")
        page.click("#yes")
        page.wait_for_selector("text=no HIT is left for you")
        assert [(r["task_id"], r["worker_id"], r["answer"]) for r in results(server)] == [
            ("b1-coverage-big-0", "alice", False),
            ("b1-coverage-big-1", "alice", True),
        ]
        assert page.errors == []
        assert all(set(r) >= {"format", "task_id", "assignment_id", "worker_id", "answer"} for r in results(server))
        assert page.dialogs == []


def test_box_answers_are_checked_and_a_restart_counts_them(box_workdir):
    post = {"box": [10, 20, 110, 220], "seconds": 2}
    with LabellingServer(box_workdir, 1, port=0, task="draw") as server:
        for body, why in (
            ({"box": [10.5, 20, 110, 220], "seconds": 1}, "four integers"),
            ({"box": [10, 20, 501, 220], "seconds": 1}, "outside the 500x375 image"),
            ({"box": [110, 20, 10, 220], "seconds": 1}, "no area"),
            ({"box": [True, 20, 110, 220], "seconds": 1}, "four integers"),
            ({"seconds": 1}, "must be a list or null"),
            ({"answer": True, "seconds": 1}, "must be a list or null"),
            ({"ticked": [], "seconds": 1}, "must be a list or null"),
            ([], "send JSON"),
        ):
            refused = post_task(server, "alice", DRAW_TASKS[0], body)
            assert refused.status_code == 400 and why in refused.text, (body, refused.text)
        assert post_answer(server, "alice", FIRST, post).status_code == 400  # not a task of this page
        assert not server.results.exists()
        assert post_task(server, "alice", DRAW_TASKS[0], post).ok
        assert post_task(server, "bob", DRAW_TASKS[0], post).status_code == 409  # one assignment
        assert post_task(server, "bob", DRAW_TASKS[1], {"box": [0, 0, 500, 375], "seconds": 1}).ok
    with LabellingServer(box_workdir, 1, port=0, task="draw") as server:
        assert task_for(server, "alice") == DRAW_TASKS[1]
        assert task_for(server, "bob") is None
        assert post_task(server, "bob", DRAW_TASKS[1], post).status_code == 409
    assert [(r["worker_id"], r["box"]) for r in results(server)] == [("alice", post["box"]), ("bob", [0, 0, 500, 375])]
    with LabellingServer(box_workdir, 1, port=0, task="quality") as server:
        for answer in ("yes", 1, None):
            refused = post_task(server, "alice", "b1-quality-box-0", {"answer": answer, "seconds": 1})
            assert refused.status_code == 400 and "true (yes) or false (no)" in refused.text
        assert post_task(server, "alice", "b1-quality-box-0", {"answer": False, "seconds": 1}).ok
        progress = requests.get(server.url("/progress"), timeout=10).text
        assert "Box round 1, quality: progress" in progress
    assert [r["answer"] for r in results(server)] == [False]


def test_malformed_box_tasks_name_the_file_row_and_field(box_workdir):
    def refusal(task: str = "draw") -> str:
        with pytest.raises(InputError) as caught:
            LabellingServer(box_workdir, 1, port=0, task=task)
        return str(caught.value)

    path = Layout(box_workdir).box_tasks(1, "draw")
    good = {"task_id": DRAW_TASKS[0], "image_id": "big-0"}
    for spec, field, why in (
        ({"round": 2}, "round", "another round"),
        ({"task": "coverage"}, "task", "not a draw task"),
        ({"shown": [[0, 0, 501, 10]]}, "shown", "outside the 500x375 image"),
        ({"shown": [[5, 0, 5, 10]]}, "shown", "no area"),
        ({"assignments": 0}, "assignments", "at least 1"),
        ({"wnid": "n00000001"}, "wnid", "not in synsets.parquet"),
        ({"image_id": "nowhere"}, "image_id", "not in the image store"),
        ({"width": 400}, "width", "the stored image 500x375"),
    ):
        write_box_tasks(box_workdir, "draw", [good, {"task_id": DRAW_TASKS[1], "image_id": "big-1", **spec}])
        message = refusal()
        assert str(path) in message and field in message and why in message, message
    write_box_tasks(box_workdir, "draw", [good, {"task_id": DRAW_TASKS[0], "image_id": "big-1"}])
    assert f"{path}: row 1: task_id" in refusal()
    write_box_tasks(box_workdir, "quality", [{"task_id": "b1-quality-x", "image_id": "big-0", "box_id": "x"}])
    assert "quality/tasks.parquet: row 0: xmin" in refusal("quality") and "missing" in refusal("quality")
    with pytest.raises(InputError, match="round-2/draw/tasks.parquet"):
        LabellingServer(box_workdir, 2, port=0, task="draw")


def test_annotate_serve_task_serves_the_latest_box_round(box_workdir):
    with Serving(box_workdir, "--task", "coverage") as server:
        assert requests.get(server.url("/progress.json"), timeout=10).json()["task"] == "coverage"
        cookies = {WORKER_COOKIE: "alice"}
        page = requests.get(server.url("/hit"), cookies=cookies, timeout=10).text
        assert 'src="/static/box.js"' in page and "b1-coverage" not in page
        token = re.search(r'<form id="box-task" method="post" action="/hit/([0-9a-f]{24})"', page).group(1)
        assert (
            requests.get(server.url("/static/box.js"), timeout=10).headers["Content-Type"].startswith("text/javascript")
        )
        assert requests.get(server.url("/image/big-0.jpg"), timeout=10).content == picture_jpeg(TENCH, 0, *BIG)
        assert post_answer(server, "alice", token, {"answer": True, "seconds": 4.25}).ok
    assert server.status == 0 and server.stderr == ""
    answers = Layout(box_workdir).box_round(1, "coverage") / "results-local.jsonl"
    [line] = [json.loads(line) for line in answers.read_text().splitlines()]
    assert (line["task_id"], line["worker_id"], line["answer"], line["seconds"]) == (
        "b1-coverage-big-0",
        "alice",
        True,
        4.25,
    )
    done = run_cli(*serve_command(box_workdir, "--task", "boxes")[3:])
    assert done.returncode == 2 and "--task" in one_line(done.stderr)
    empty = box_workdir.parent / "empty"
    make_round(empty)
    done = run_cli(*serve_command(empty, "--task", "draw", "--port", "0")[3:])
    assert done.returncode == 2 and "make annotate-export TASK=draw" in one_line(done.stderr)
