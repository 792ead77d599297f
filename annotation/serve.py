"""``annotate-serve``: our own crowd labelling page, the in-house alternative to MTurk.

Serves one round's HITs (``annotation/round-<n>/hits.parquet``) to workers who name
themselves on ``/`` (a cookie keeps the name). ``/hit`` shows a worker the HIT they hold, or
holds for them the first HIT, in (round, wnid, hit_id) order, that they have not answered and
that has a free assignment; the images come from the image store, in grid order, and nothing
on the page tells a control from a candidate. Answers go to ``results-local.jsonl`` beside
hits.parquet, one JSON object a line in the format ``annotate-import`` reads
(``annotation.results``), never more for a HIT than it wants; ``/progress`` and
``/progress.json`` count them per synset.

``--task draw|quality|coverage`` serves a box round's tasks instead (``annotation/box-rounds/
round-<n>/<task>/tasks.parquet``, Su, Deng and Fei-Fei's HCOMP 2012 tasks), each a HIT of one
image, with the same slots, holds and refusals: draw one box (``"box": [xmin, ymin, xmax,
ymax]`` in pixels of the stored image, our convention, or null when nothing is left to box),
or say yes or no (``"answer"``) about the box judged or the boxes shown. A box task is named
to workers by a token, since its id marks gold tasks.

The page is for a team on a trusted network: worker ids are self-declared, and the holds and
the assignment count stop accidental over-answering, not a hostile worker. Requests naming
another host than the page's own (DNS rebinding) are refused.

Routes: ``/``, ``POST /worker``, ``/hit``, ``POST /hit/<hit_id or token>`` (JSON ``{"ticked":
[image ids], "seconds": s}``; box tasks ``{"box": [...] or null, "seconds": s}`` or
``{"answer": true|false, "seconds": s}``), ``/image/<image_id>.jpg``, ``/static/<file>``,
``/progress[.json]``. Pages are templates in ``page/`` whose values are all HTML-escaped; the
scripts build no HTML.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from importlib import resources
from pathlib import Path
from string import Template

from aiohttp import web

from pipeline import boxes, runner, schemas, settings
from pipeline.background import BackgroundServer
from pipeline.errors import FULL, InputError, PipelineError
from pipeline.layout import Layout
from pipeline.store import StoreIndex, read_images, require_shards
from pipeline.tables import read_table

from .formats import describe, read_words
from .results import OURS
from .tasks import image_url

__all__ = ["LabellingServer", "serve", "HELP", "add_arguments", "run", "TASKS"]

HELP = (
    "serve a round's HITs (or a box round's tasks) on our own labelling page: annotation/round-<n>/"
    "results-local.jsonl (annotation/box-rounds/round-<n>/<task>/results-local.jsonl)"
)
DEFAULT_PORT = 8650
DEFAULT_HOLD_MINUTES = 30.0  # how long a HIT shown to a worker is kept for their answer
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
WORKER_COOKIE = "synsetforge_worker"
WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
HEADERS = {
    # Defence in depth behind the escaping: no inline script, no third-party anything.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {
    "style.css": "text/css",
    "hit.js": "text/javascript",
    "box.js": "text/javascript",
    "send.js": "text/javascript",
}
CLASSIFY = "classify"
TASKS = (CLASSIFY, "draw", "quality", "coverage")  # classification HITs, then the box tasks
BOX_TASKS = TASKS[1:]
RESULTS_LOCAL = "results-local.jsonl"


@dataclass(frozen=True)
class Hit:
    """What one assignment answers: a grid of images about one synset (classification), or
    one image of a box task (a HIT of one image, as MTurk would post it)."""

    id: str
    wnid: str
    assignments: int
    images: tuple[str, ...]  # image ids in grid order

    @property
    def handle(self) -> str:
        """How the page names the HIT to workers: in its URL and in what it tells them."""
        return self.id


@dataclass(frozen=True)
class BoxTask(Hit):
    """A draw, quality or coverage task (Su, Deng and Fei-Fei, HCOMP 2012) of one image; boxes
    in our convention (pipeline.boxes), pixels of the stored image."""

    task: str
    judged: tuple[int, int, int, int] | None  # quality: the box judged
    shown: tuple[tuple[int, int, int, int], ...]  # draw, coverage: the boxes accepted so far
    width: int
    height: int
    token: str  # the handle: a box task's id tells a gold task (``-gold-``) from the others

    @property
    def handle(self) -> str:
        return self.token


def load_hits(path: Path, round_: int) -> list[Hit]:
    """The round's HITs in the order workers get them; every way the rows of one HIT can
    disagree is an InputError naming the row."""
    rows = read_table(
        path, schemas.HITS, columns=["hit_id", "round", "wnid", "position", "image_id", "assignments"]
    ).to_pylist()
    if not rows:
        raise InputError("no HITs", file=path)
    grids: dict[str, dict] = {}
    for number, row in enumerate(rows):
        _check_row(path, number, row, round_)
        grid = grids.setdefault(row["hit_id"], {"wnid": row["wnid"], "assignments": row["assignments"], "images": {}})
        if (grid["wnid"], grid["assignments"]) != (row["wnid"], row["assignments"]):
            raise InputError(
                "rows of one HIT disagree on wnid or assignments",
                file=path,
                row=number,
                field="hit_id",
                value=row["hit_id"],
            )
        if row["position"] in grid["images"]:
            raise InputError(
                "two images at one position of a HIT", file=path, row=number, field="position", value=row["position"]
            )
        grid["images"][row["position"]] = row["image_id"]
    hits = [
        Hit(hit_id, g["wnid"], g["assignments"], tuple(g["images"][p] for p in sorted(g["images"])))
        for hit_id, g in grids.items()
    ]
    return sorted(hits, key=lambda h: (h.wnid, h.id))  # one round per file: (round, wnid, hit_id)


def _check_row(path: Path, number: int, row: dict, round_: int) -> None:
    if row["round"] != round_:
        raise InputError(
            f"a task of another round in round-{round_}", file=path, row=number, field="round", value=row["round"]
        )
    if row["assignments"] < 1:
        raise InputError("must be at least 1", file=path, row=number, field="assignments", value=row["assignments"])


def load_box_tasks(path: Path, round_: int, task: str) -> list[BoxTask]:
    """Box round ``round_``'s ``task`` tasks in the order workers get them (wnid, task_id);
    a task of another round or kind, a repeated task id, or a box that is not one of its image
    (a quality task without its judged box) is an InputError naming the row. Each task's
    token is keyed by the table's digest: the same across restarts, unknown to the workers."""
    rows = read_table(path, schemas.BOX_TASKS).to_pylist()
    if not rows:
        raise InputError("no tasks", file=path)
    key = hashlib.sha256(path.read_bytes()).digest()
    tasks: dict[str, BoxTask] = {}
    for number, row in enumerate(rows):
        _check_row(path, number, row, round_)
        if row["task"] != task:
            raise InputError(f"not a {task} task", file=path, row=number, field="task", value=row["task"])
        if row["task_id"] in tasks:
            raise InputError("a task id twice", file=path, row=number, field="task_id", value=row["task_id"])
        if row["width"] < 1 or row["height"] < 1:
            raise InputError("an image of no pixels", file=path, row=number, field="width", value=row["width"])
        judged = tuple(row[c] for c in boxes.COLUMNS)
        if task == "quality":
            _check_box(path, number, "xmin", judged, row)
        for box in row["shown"]:
            _check_box(path, number, "shown", box, row)
        tasks[row["task_id"]] = BoxTask(
            row["task_id"],
            row["wnid"],
            row["assignments"],
            (row["image_id"],),
            task,
            judged if task == "quality" else None,
            tuple(tuple(box) for box in row["shown"]),
            row["width"],
            row["height"],
            hashlib.blake2b(row["task_id"].encode(), key=key, digest_size=12).hexdigest(),
        )
    return sorted(tasks.values(), key=lambda t: (t.wnid, t.id))


def _check_box(path: Path, number: int, field: str, box: tuple, row: dict) -> None:
    why = "missing" if None in box else boxes.problem(box, row["width"], row["height"])
    if why:
        raise InputError(f"not a box of the image: {why}", file=path, row=number, field=field, value=list(box))


def check_sizes(tasks: list[BoxTask], folder: Path, tasks_path: Path) -> None:
    """Each task's width and height are its stored image's: the page turns the worker's mouse
    into pixels of the image the browser loads, and the answer is checked against the task's."""
    table = read_images(folder, ["image_id", "width", "height"])
    sizes = dict(zip(table["image_id"].to_pylist(), zip(table["width"].to_pylist(), table["height"].to_pylist())))
    for task in tasks:
        stored = sizes.get(task.images[0])
        if stored != (task.width, task.height):
            raise InputError(
                f"the task's image is {task.width}x{task.height}, the stored image {stored[0]}x{stored[1]}",
                file=tasks_path,
                field="width",
                value=task.id,
            )


def hit_images(folder: Path, wanted: set[str], hits_path: Path) -> StoreIndex:
    """Where the HITs' images are in the image store, found once at start from the image_id
    columns alone; each image's bytes are then read on request from its row group only."""
    index = StoreIndex(require_shards(folder, "the page serves the HITs' images from the store"), wanted)
    missing = sorted(wanted - index.where.keys())
    if missing:
        raise InputError(
            f"{len(missing)} images of the HITs are not in the image store ({folder}), e.g.",
            file=hits_path,
            field="image_id",
            value=missing[0],
        )
    return index


class Answers:
    """``results-local.jsonl``: who answered which HIT, read at start so a restart goes on
    where the last run stopped (and counts what each HIT has), and appended one whole line
    per answer. ``key`` is the field naming the HIT answered (``hit_id``; ``task_id`` for box
    tasks)."""

    def __init__(self, path: Path, hit_ids: list[str], key: str = "hit_id"):
        self.path = path
        self.workers: dict[str, set[str]] = {h: set() for h in hit_ids}
        self.lock = threading.Lock()  # one writer at a time: lines never interleave
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError("not a JSON line", file=path, line=number) from None
                if not isinstance(record, dict) or record.get("format") != OURS:
                    raise InputError(f"not a {OURS} line", file=path, line=number, field="format")
                if record.get(key) in self.workers and record.get("status") != "Rejected":
                    self.workers[record[key]].add(str(record.get("worker_id")))

    def check_writable(self) -> None:
        """Refuse to start a page whose answers could not be saved; opening for append, or a
        nameless file beside it, changes nothing on disk."""
        try:
            if self.path.exists():
                open(self.path, "ab").close()
            else:
                tempfile.TemporaryFile(dir=self.path.parent).close()
        except OSError as e:
            raise PipelineError(f"cannot write answers to {self.path}: {e.strerror or e}") from None

    def append(self, record: dict) -> None:
        """One write of a whole line, flushed and synced before the worker hears "saved": a crash
        loses at most the answer in flight, never leaves half a line."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self.lock, open(self.path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


class Slots:
    """Which worker may answer which HIT. A HIT has ``assignments`` slots; an answer (saved or
    being saved) fills one for good, a hold keeps one for a worker for ``hold`` seconds. A
    worker holds one HIT at a time and answers a HIT once. Every method runs on the event loop
    and awaits nothing, so a check and the claim it allows are one step: two submits cannot
    both take the last slot. Holds live in memory; the answers, read back at start, are what
    bound the count across restarts."""

    def __init__(self, hits: list[Hit], answers: Answers, hold: float):
        self.hits = hits
        self.answered = answers.workers
        self.hold = hold
        self.holds: dict[str, dict[str, float]] = {h.id: {} for h in hits}  # hit -> worker -> until

    def free(self, hit: Hit, worker: str, now: float) -> int:
        """Slots of ``hit`` neither answered nor held by another worker."""
        answered = self.answered[hit.id]
        held = sum(w != worker and w not in answered and until > now for w, until in self.holds[hit.id].items())
        return hit.assignments - len(answered) - held

    def holding(self, hit: Hit, worker: str, now: float) -> bool:
        return self.holds[hit.id].get(worker, 0.0) > now

    def open_to(self, worker: str) -> list[Hit]:
        """HITs the worker may answer now: not answered by them, held by them or with a free slot;
        the one they hold first."""
        now = time.monotonic()
        hits = [
            h
            for h in self.hits
            if worker not in self.answered[h.id] and (self.holding(h, worker, now) or self.free(h, worker, now) > 0)
        ]
        return sorted(hits, key=lambda h: not self.holding(h, worker, now))

    def take(self, hit: Hit, worker: str) -> None:
        """Hold ``hit`` for the worker from now on, letting go of any other HIT they held."""
        for holds in self.holds.values():
            holds.pop(worker, None)
        self.holds[hit.id][worker] = time.monotonic() + self.hold

    def claim(self, hit: Hit, worker: str) -> None:
        """Fill a slot with the worker's answer, or raise 409 saying why it is not counted."""
        now = time.monotonic()
        answered = self.answered[hit.id]
        if worker in answered:
            raise web.HTTPConflict(text=f"you have already answered HIT {hit.handle}")
        if not self.holding(hit, worker, now) and self.free(hit, worker, now) < 1:
            lapsed = worker in self.holds[hit.id]
            why = f" (your hold on it ran out after {self.hold / 60:g} minutes)" if lapsed else ""
            raise web.HTTPConflict(
                text=f"HIT {hit.handle} already has the {hit.assignments} answers it wants, given or held "
                f"by other workers{why}: your answer was not counted"
            )
        answered.add(worker)

    def release(self, hit: Hit, worker: str) -> None:
        """The answer was not saved: free its slot, and hold the HIT for the worker to retry."""
        self.answered[hit.id].discard(worker)
        self.take(hit, worker)

    def settle(self, hit: Hit, worker: str) -> None:
        """The answer is saved: the worker's hold on the HIT has done its work."""
        self.holds[hit.id].pop(worker, None)


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=text)


class Labelling:
    """One round of classification HITs as the page serves them: the HITs, what workers read
    about their synsets, the images, the answers so far and who holds which HIT. InputError
    for a missing or malformed input file, PipelineError when the answers could not be saved.

    Subclasses serve other tasks by saying where the tasks and answers are (``locate``), how
    to read the tasks (``load``), how a task's page looks (``page``) and what an answer holds
    (``fields``); slots, holds, saving and progress are these."""

    task = CLASSIFY
    key = "hit_id"  # the field of an answer line naming the HIT
    script = "hit.js"
    shape = '{"ticked": [image ids], "seconds": s}'  # the JSON an answer is posted as

    def __init__(self, workdir: Path, round_: int, hold_minutes: float = DEFAULT_HOLD_MINUTES):
        layout = Layout(workdir)
        self.round = round_
        tasks_path, answers_path = self.locate(layout)
        self.hits = self.load(tasks_path)
        self.by_id = {h.id: h for h in self.hits}
        self.by_handle = {h.handle: h for h in self.hits}
        synsets = read_table(layout.synsets, schemas.SYNSETS, columns=["wnid", "name", "lemmas", "gloss", "parents"])
        self.names = dict(zip(synsets["wnid"].to_pylist(), synsets["name"].to_pylist()))
        unknown = sorted({h.wnid for h in self.hits} - self.names.keys())
        if unknown:
            raise InputError(
                "HITs for a synset not in synsets.parquet", file=tasks_path, field="wnid", value=unknown[0]
            )
        self.about = describe(synsets.to_pandas(), read_words(layout.words))
        self.images = hit_images(layout.images, {i for h in self.hits for i in h.images}, tasks_path)
        self.answers = Answers(answers_path, list(self.by_id), self.key)
        self.answers.check_writable()
        self.slots = Slots(self.hits, self.answers, hold_minutes * 60)
        self.results_name = str(self.answers.path.relative_to(layout.root))  # workers need not see our paths

    @property
    def title(self) -> str:
        return f"Round {self.round}"

    def locate(self, layout: Layout) -> tuple[Path, Path]:
        """The tasks' table and the answers file."""
        return layout.hits(self.round), layout.local_answers(self.round)

    def load(self, path: Path) -> list[Hit]:
        return load_hits(path, self.round)

    def page(self, hit: Hit, left: int) -> Html:
        """The body of the page that asks ``hit``; ``left``: the HITs open to the worker."""
        about = self.about[hit.wnid]
        tiles = Html(
            "\n".join(
                render("tile.html", image_id=image_id, src=image_url("/image", image_id), number=n)
                for n, image_id in enumerate(hit.images, start=1)
            )
        )
        return render(
            "hit.html",
            lemmas=about["words"] or self.names[hit.wnid],
            gloss=about["gloss"],
            parent=about["parent"] or "nothing more general",
            wikipedia=about["wikipedia"],
            action=f"/hit/{hit.handle}",
            tiles=tiles,
            hit_id=hit.id,
            left=left,
        )

    def fields(self, hit: Hit, body: dict) -> dict:
        """What an answer line holds beside who answered what, from the posted JSON ``body``;
        HTTPBadRequest saying what is wrong with it."""
        ticked = body.get("ticked")
        if not isinstance(ticked, list) or not all(isinstance(i, str) for i in ticked):
            raise _bad("ticked: must be a list of image ids")
        strangers = [i for i in ticked if i not in hit.images]
        if strangers:
            raise _bad(f"image {strangers[0]!r} is not in HIT {hit.handle}")
        return {"ticked": [i for i in dict.fromkeys(hit.images) if i in ticked], "shown": list(hit.images)}

    async def submit(self, hit: Hit, worker: str, fields: dict, seconds: float) -> dict:
        """Record an answer, or raise 409 when it is not counted (see Slots.claim); the
        slot is claimed on the event loop, the write goes to a thread. OSError when the write
        fails, the slot then free again and held for the worker."""
        self.slots.claim(hit, worker)
        record = {
            "format": OURS,
            self.key: hit.id,
            "assignment_id": uuid.uuid4().hex,
            "worker_id": worker,
            "status": "Submitted",
            **fields,
            "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "seconds": round(seconds, 3),
        }
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.answers.append, record)
        except BaseException:
            self.slots.release(hit, worker)
            raise
        self.slots.settle(hit, worker)
        return record

    def progress(self) -> dict:
        """Per synset and in all: HITs, complete HITs, answers and answers wanted, distinct workers."""
        per_synset: dict[str, dict] = {}
        for hit in self.hits:
            workers = self.answers.workers[hit.id]
            row = per_synset.setdefault(
                hit.wnid,
                {
                    "wnid": hit.wnid,
                    "name": self.names[hit.wnid],
                    "hits": 0,
                    "complete": 0,
                    "answers": 0,
                    "wanted": 0,
                    "workers": set(),
                },
            )
            row["hits"] += 1
            row["complete"] += len(workers) >= hit.assignments
            row["answers"] += len(workers)
            row["wanted"] += hit.assignments
            row["workers"] |= workers
        rows = list(per_synset.values())
        total = {key: sum(r[key] for r in rows) for key in ("hits", "complete", "answers", "wanted")}
        total["workers"] = len(set().union(*(r["workers"] for r in rows)))
        for row in rows:
            row["workers"] = len(row["workers"])
        return {
            "round": self.round,
            "task": self.task,
            "synsets": rows,
            "total": total,
            "results": self.results_name,
        }


class BoxLabelling(Labelling):
    """One box round's draw, quality or coverage tasks (``annotation/box-rounds/round-<n>/<task>/
    tasks.parquet``), answered into ``results-local.jsonl`` beside it: a draw answer is the
    worker's box in pixels of the stored image, our convention (``"box": [xmin, ymin, xmax,
    ymax]``, null when no instance is left to box), a quality or coverage answer is yes or no
    (``"answer": true|false``)."""

    key = "task_id"
    script = "box.js"
    DISPLAY = (800, 600)  # the largest size an image is shown at, CSS pixels
    MAX_ZOOM = 4.0

    def __init__(self, workdir: Path, round_: int, task: str, hold_minutes: float = DEFAULT_HOLD_MINUTES):
        if task not in BOX_TASKS:
            raise ValueError(f"not a box task: {task!r}")
        self.task = task
        self.shape = (
            '{"box": [xmin, ymin, xmax, ymax] or null, "seconds": s}'
            if task == "draw"
            else '{"answer": true or false, "seconds": s}'
        )
        super().__init__(workdir, round_, hold_minutes)
        layout = Layout(workdir)
        check_sizes(self.hits, layout.images, layout.box_tasks(round_, task))

    @property
    def title(self) -> str:
        return f"Box round {self.round}, {self.task}"

    def locate(self, layout: Layout) -> tuple[Path, Path]:
        return layout.box_tasks(self.round, self.task), layout.box_round(self.round, self.task) / RESULTS_LOCAL

    def load(self, path: Path) -> list[Hit]:
        return load_box_tasks(path, self.round, self.task)

    def question(self, task: BoxTask) -> tuple[str, str]:
        """What the worker is asked, and how to answer it."""
        name = self.names[task.wnid]
        if task.task == "draw":
            return (
                f"Draw a tight box around ONE {name} that has no box yet",
                f"Press the mouse at one corner of a {name}, drag to the opposite corner and let go: the box's "
                f"edges should touch the {name}'s outermost visible pixels. Drag a corner or an edge to adjust "
                "the box, or its inside to move it. Dashed boxes are done already: box another one. If every "
                f"{name} in the image has a box, or there is none, answer \u201cNothing left to box\u201d.",
            )
        if task.task == "quality":
            return (
                f"Is the red box a tight box around ONE {name}?",
                f"Yes when the box holds one whole {name} (all of it that is visible) and its edges touch it "
                f"on all four sides. No when it is loose, cuts off part of the {name}, holds several of them, "
                f"or holds no {name}.",
            )
        return (
            f"Does every {name} in the image have a box?",
            f"Yes when each {name} you can see has a box of its own (dashed), or there is no {name} at all. "
            f"No when at least one {name} has no box.",
        )

    def page(self, hit: Hit, left: int) -> Html:
        assert isinstance(hit, BoxTask)
        about = self.about[hit.wnid]
        question, how = self.question(hit)
        zoom = min(self.DISPLAY[0] / hit.width, self.DISPLAY[1] / hit.height, self.MAX_ZOOM)
        controls = render("box-draw.html") if hit.task == "draw" else render("box-judge.html")
        return render(
            "box.html",
            question=question,
            how=how,
            lemmas=about["words"] or self.names[hit.wnid],
            gloss=about["gloss"],
            parent=about["parent"] or "nothing more general",
            wikipedia=about["wikipedia"],
            action=f"/hit/{hit.handle}",
            task=hit.task,
            width=hit.width,
            height=hit.height,
            shown=json.dumps([list(b) for b in hit.shown] if hit.task != "quality" else []),
            judged=json.dumps(list(hit.judged) if hit.judged else None),
            src=image_url("/image", hit.images[0]),
            display_width=round(hit.width * zoom),
            display_height=round(hit.height * zoom),
            zoom=f"{zoom * 100:.0f}",
            controls=controls,
            handle=hit.handle,
            left=left,
        )

    def fields(self, hit: Hit, body: dict) -> dict:
        assert isinstance(hit, BoxTask)
        if hit.task != "draw":
            if not isinstance(body.get("answer"), bool):
                raise _bad("answer: must be true (yes) or false (no)")
            return {"answer": body["answer"]}
        box = body.get("box", ())
        if box is None:
            return {"box": None}
        why = boxes.problem(box, hit.width, hit.height) if isinstance(box, list) else "must be a list or null"
        if why:
            raise _bad(f"box: {why} (pixels of the stored image: xmin, ymin, xmax, ymax, far edges exclusive)")
        return {"box": [int(v) for v in box]}


class Html(str):
    """Markup made from one of our templates: inserted into another template as it is."""


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("page", name).read_text(encoding="utf-8"))


def render(template: str, /, **values: object) -> Html:
    """Template ``page/<template>`` with every value HTML-escaped, unless it is already Html."""
    return Html(
        _template(template).substitute(
            {k: v if isinstance(v, Html) else escape(str(v), quote=True) for k, v in values.items()}
        )
    )


def _page(title: str, body: Html, worker: str | None, status: int = 200, script: str = "hit.js") -> web.Response:
    who = f"worker {worker}" if worker else "no worker id yet"
    text = render("page.html", title=title, body=body, who=who, script=script)
    return web.Response(text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


LABELLING = web.AppKey("labelling", Labelling)
routes = web.RouteTableDef()


def _worker(request: web.Request) -> str | None:
    worker = request.cookies.get(WORKER_COOKIE, "")
    return worker if WORKER_ID.fullmatch(worker) else None


@routes.get("/")
async def ask_worker(request: web.Request) -> web.Response:
    worker = _worker(request)
    return _page("Worker id", render("worker.html", worker=worker or "", error=""), worker)


@routes.post("/worker")
async def set_worker(request: web.Request) -> web.Response:
    worker = str((await request.post()).get("worker", "")).strip()
    if not WORKER_ID.fullmatch(worker):
        error = "Not a worker id: use 1 to 64 letters, digits and _ . @ - (starting with a letter or digit)."
        return _page("Worker id", render("worker.html", worker=worker, error=error), _worker(request), status=400)
    response = web.Response(status=303, headers={"Location": "/hit"})
    response.set_cookie(WORKER_COOKIE, worker, max_age=365 * 86400, httponly=True, samesite="Strict", path="/")
    return response


@routes.get("/hit")
async def next_hit(request: web.Request) -> web.Response:
    worker = _worker(request)
    if worker is None:
        raise web.HTTPSeeOther("/")
    labelling = request.app[LABELLING]
    open_hits = labelling.slots.open_to(worker)
    if not open_hits:
        return _page("Done", render("done.html"), worker)
    hit = open_hits[0]
    labelling.slots.take(hit, worker)
    about = labelling.about[hit.wnid]
    return _page(
        about["words"] or labelling.names[hit.wnid],
        labelling.page(hit, len(open_hits)),
        worker,
        script=labelling.script,
    )


@routes.post("/hit/{hit_id}")
async def answer(request: web.Request) -> web.Response:
    labelling = request.app[LABELLING]
    hit = labelling.by_handle.get(request.match_info["hit_id"])
    if hit is None:
        raise _bad(f"no HIT {request.match_info['hit_id']!r} in {labelling.title.lower()}")
    worker = _worker(request)
    if worker is None:
        raise _bad("no worker id: open / and give one first")
    send_json = f"send JSON (application/json): {labelling.shape}"
    if request.content_type != "application/json":  # which a cross-site form cannot send
        raise _bad(send_json)
    try:
        body = await request.json()
    except ValueError:
        raise _bad(send_json) from None
    if not isinstance(body, dict):
        raise _bad(send_json)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise _bad("seconds: must be a number of seconds, not negative")
    fields = labelling.fields(hit, body)
    try:
        record = await labelling.submit(hit, worker, fields, float(seconds))
    except OSError as e:
        print(
            f"error: the answer of worker {worker} to HIT {hit.id} was NOT saved, the page asks them to submit "
            f"again: cannot write {labelling.answers.path}: {e.strerror or e}",
            file=sys.stderr,
            flush=True,
        )
        refusal = web.HTTPInsufficientStorage if e.errno in FULL else web.HTTPServiceUnavailable
        raise refusal(
            text=f"Your answer was NOT saved: the server cannot write its answers file ({e.strerror or e}). "
            "Your answer is still on this page: tell whoever runs this page, then submit again."
        ) from None
    return web.json_response({"assignment_id": record["assignment_id"], "next": "/hit"})


@routes.get("/image/{image_id}.jpg")
async def image(request: web.Request) -> web.Response:
    store = request.app[LABELLING].images
    image_id = request.match_info["image_id"]
    if image_id not in store:
        raise web.HTTPNotFound(text="not an image of this round's HITs")
    try:
        data = await asyncio.get_running_loop().run_in_executor(None, store.bytes_of, image_id)
    except InputError as e:  # a damaged shard: say which, once per request, without a traceback
        print(f"error: image {image_id} not served: {e}", file=sys.stderr, flush=True)
        raise web.HTTPInternalServerError(text=f"image {image_id} is damaged in the image store") from None
    # An image id names one set of bytes for good: browsers may keep it.
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=31536000, immutable"}
    )


@routes.get("/static/{name}")
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.Response(
        body=resources.files(__package__).joinpath("page", name).read_bytes(),
        content_type=STATIC[name],
        headers={"Cache-Control": "no-cache"},
    )


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.Response:
    """No icon, said once: not a 404 in every worker's console on every page."""
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


@routes.get("/progress")
async def progress_page(request: web.Request) -> web.Response:
    progress = request.app[LABELLING].progress()
    rows = Html("\n".join(render("progress-row.html", **row) for row in progress["synsets"]))
    total = render("progress-row.html", wnid="", name="all synsets", **progress["total"])
    what = request.app[LABELLING].title
    body = render("progress.html", what=what, rows=rows, total=total, results=progress["results"])
    return _page(f"{what} progress", body, _worker(request))


@routes.get("/progress.json")
async def progress_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[LABELLING].progress(), headers={"Cache-Control": "no-store"})


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@functools.lru_cache(maxsize=16)
def own_hosts(bound: str, local: tuple | None) -> frozenset[str]:
    """The Host headers the page answers to: its loopback names, the address it was told to
    listen on, and the address and name of this machine that the connection came in on
    (what a colleague types when the page listens on 0.0.0.0), each with the port."""
    if not local:
        return frozenset()
    address, port = local[0], local[1]
    names = {*LOCAL_NAMES, _bracketed(bound), _bracketed(address), socket.gethostname()}
    hosts = {f"{name}:{port}".lower() for name in names}
    return frozenset(hosts | ({name.lower() for name in names} if port == 80 else set()))


def host_check(bound: str):
    """Refuse a request whose Host is not one of the page's own: a page on 127.0.0.1 that
    answered any name could be read and written by a site whose name resolves to 127.0.0.1
    (DNS rebinding)."""

    @web.middleware
    async def check(request: web.Request, handler):
        host = request.headers.get("Host", "")
        local = request.transport.get_extra_info("sockname") if request.transport else None
        if host.lower() not in own_hosts(bound, local):
            raise web.HTTPMisdirectedRequest(text=f"refused: Host {host!r} is not this page's address")
        return await handler(request)

    return check


def make_app(labelling: Labelling, host: str = "127.0.0.1") -> web.Application:
    app = web.Application(middlewares=[host_check(host)])
    app[LABELLING] = labelling
    app.add_routes(routes)
    app.on_response_prepare.append(_secure)
    return app


class LabellingServer(BackgroundServer):
    """The labelling page of round ``round`` of ``workdir`` (``task``: classification HITs, or
    box round ``round``'s draw, quality or coverage tasks), run on a background thread with its
    own event loop (as pipeline.imagehost.ImageHost), so tests can drive it from a browser.

    The inputs are read, and checked, when it is made; ``with`` starts it (port 0 picks a free
    port, then ``.port`` holds it) and stops it on leaving.
    """

    name = "labelling"

    def __init__(
        self,
        workdir: Path,
        round: int,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        hold_minutes: float = DEFAULT_HOLD_MINUTES,
        task: str = CLASSIFY,
    ):
        if task == CLASSIFY:
            self.labelling = Labelling(Path(workdir), round, hold_minutes)
        else:
            self.labelling = BoxLabelling(Path(workdir), round, task, hold_minutes)
        self.host = host
        self.port = port

    @property
    def results(self) -> Path:
        return self.labelling.answers.path

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def make_app(self) -> web.Application:
        return make_app(self.labelling, self.host)


def serve(
    workdir: Path,
    round: int,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    hold_minutes: float = DEFAULT_HOLD_MINUTES,
    task: str = CLASSIFY,
) -> None:
    """Serve the page until Ctrl-C, holding the stage's lock: a second page on the same data
    would hand out the same slots. Answers already written stay written."""
    with contextlib.ExitStack() as stack:
        lock = runner.lock(workdir, "annotate-serve")
        try:
            stack.enter_context(lock)
        except OSError as e:
            raise PipelineError(f"cannot take the stage lock {lock.path}: {e.strerror or e}") from None
        server = LabellingServer(workdir, round, host, port, hold_minutes, task)
        try:
            stack.enter_context(server)
        except OSError as e:
            why = "address in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
            raise PipelineError(f"cannot listen on {host}:{port}: {why}") from None
        print(
            f"labelling page for {server.labelling.title.lower()} on {server.url('/')}; answers go to "
            f"{server.results}; Ctrl-C stops it",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def latest_round(workdir: Path) -> int:
    layout = Layout(workdir)
    rounds = layout.rounds()
    if not rounds:
        raise InputError("no exported rounds: run `make annotate-export` first", file=layout.annotation)
    return rounds[-1]


def latest_box_round(workdir: Path, task: str) -> int:
    layout = Layout(workdir)
    rounds = [
        int(p.parent.parent.name.removeprefix("round-")) for p in layout.box_task_tables() if p.parent.name == task
    ]
    if not rounds:
        raise InputError(
            f"no exported box rounds of {task} tasks: run `make annotate-export TASK={task}` first",
            file=layout.annotation,
        )
    return max(rounds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--round",
        type=settings.integer(1),
        default=None,
        help="annotation round, or box round with --task (make: ROUND, default the latest)",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default=CLASSIFY,
        help="classify: the round's HITs (ticking images); draw, quality, coverage: the box round's tasks of "
        "that kind (make: TASK, default classify)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 lets other machines in (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=settings.integer(0, 65535),
        default=DEFAULT_PORT,
        help=f"0 picks a free port (make: PORT, default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--reservation-minutes",
        type=settings.number(0, 7 * 24 * 60, above=True),
        default=DEFAULT_HOLD_MINUTES,
        help="how long a HIT shown to a worker stays theirs to answer; its slot is then free for others "
        f"(default {DEFAULT_HOLD_MINUTES:g})",
    )


def run(args: argparse.Namespace) -> None:
    if args.round is not None:
        round_ = args.round
    elif args.task == CLASSIFY:
        round_ = latest_round(args.workdir)
    else:
        round_ = latest_box_round(args.workdir, args.task)
    serve(args.workdir, round_, args.host, args.port, args.reservation_minutes, args.task)
