"""One unit of work: one candidates shard in, one image shard + one ledger shard + one stats
record out (img2dataset's design).

The three files are written under temporary names and renamed, the stats record last, so a
shard is finished exactly when its stats record exists and names the input it was made
from. A worker killed at any moment leaves no file a reader or a rerun would trust.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from pipeline import USER_AGENT, schemas, store
from pipeline.files import atomic_write_json
from pipeline.hashing import Hashes, hashes_of_pixels
from pipeline.layout import SHARD, Layout
from pipeline.tables import read_table, write_table

from . import status
from .fetch import Fetched, Fetcher, Network
from .images import Normalise, Rejected, Stored, normalise
from .politeness import Politeness
from .safety import host_of

CANDIDATE_COLUMNS = ["candidate_id", "wnid", "url", "source", "rank", "license"]
STATS = "stats"  # the folder of the stats records, beside images/ and ledger/
WAITERS = 4  # worker coroutines per connection
M_ARENA_MAX = -8  # glibc's mallopt parameter
GC_THRESHOLD = 7_000  # allocations between the cycle collector's young passes (Python's default: 700)

# progress(urls_done, ok, bytes_received): called often, must be cheap.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class DownloadSettings:
    """Everything that decides a shard's content; the stage fingerprints it."""

    network: Network = field(default_factory=Network)
    normalise: Normalise = field(default_factory=Normalise)
    politeness: Politeness = field(default_factory=Politeness)

    def as_dict(self) -> dict:
        # The image table's columns are part of a shard's content: a schema change must not
        # reuse shards cached under the old one.
        return {**asdict(self), "images_columns": schemas.IMAGES.names}


@dataclass(frozen=True)
class Limits:
    """How hard one worker pushes, and who it says it is; changes speed, never the result."""

    concurrency: int = 128  # requests in flight in this worker
    per_host: int = 16  # connections to one host from this worker
    host_rate: float = 5.0  # requests a second to one host from this worker (0: unpaced)
    host_burst: float = 10.0  # requests to one host that may go at once
    decode_threads: int = 2  # Pillow releases the GIL while decoding
    user_agent: str = USER_AGENT  # with the operator's contact (pipeline.user_agent)


@dataclass(frozen=True)
class ShardJob:
    number: int
    candidates: Path  # the input shard
    input_digest: str  # sha256 of the input shard's bytes
    out: Path  # holds images/, ledger/ and stats/, named as in a dataset folder (``Layout``)
    settings: DownloadSettings
    limits: Limits = field(default_factory=Limits)

    @property
    def images(self) -> Path:
        return store.shard_path(Layout(self.out).images, self.number)

    @property
    def ledger(self) -> Path:
        return Layout(self.out).ledger_shard(self.number)

    @property
    def stats(self) -> Path:
        return self.out / STATS / Path(SHARD.format(number=self.number)).with_suffix(".json")

    def outputs(self) -> dict[str, Path]:
        """The shard's files by kind, the stats record last: it is written last."""
        return {"images": self.images, "ledger": self.ledger, "stats": self.stats}


def finished(job: ShardJob) -> dict | None:
    """The stats record of a finished shard made from this very input, or None."""
    try:
        stats = json.loads(job.stats.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if stats.get("input_digest") != job.input_digest:
        return None
    if not (job.images.exists() and job.ledger.exists()):
        return None
    return stats


def download_shard(job: ShardJob, progress: Progress | None = None) -> dict:
    """Download one shard unless it is finished; returns its stats record."""
    results: list[dict] = []
    download_shards(iter([job, None]).__next__, progress, results.append)
    return results[0]


def download_shards(
    next_job: Callable[[], ShardJob | None], progress: Progress | None, done: Callable[[dict], None]
) -> None:
    """Download shards one after another in one event loop, ``next_job()`` giving each (None
    when there are no more; it may block) and ``done(stats)`` taking each finished one. The next shard
    starts as soon as the last URL of the current one is handed out, so a shard's slowest
    URLs (retry waits, timeouts) never leave the worker idle. All jobs share one settings."""
    _lean_allocators()
    asyncio.run(_download(next_job, progress or (lambda *a: None), done))


def _lean_allocators() -> None:
    """Images pass through several threads as short-lived buffers of about 100 KB; glibc's
    arena per thread and Arrow's caching allocator would keep hundreds of MB of them (a
    third of the peak, measured on bench/download_vs_img2dataset.py). Use two arenas and
    Arrow's system allocator."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc
        pass


def calm_collector() -> None:
    """For a worker process, before it downloads. Python's cycle collector ran every 700
    allocations and, as a shard's outcomes piled up, walked every object of the process again
    and again: 9% of the event loop's time (py-spy). What exists now (imports, settings) is
    collected once and frozen out of its sight, and it runs ten times less often; a download
    makes few cycles (freed by reference counts), so memory stays as it was. Not for a
    process that goes on to other work: frozen objects are never collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


class _Shard:
    """A shard in progress: its candidates, the URLs not yet handed out, the outcomes so far.

    Images are written as they arrive, a row group at a time, so memory holds only the
    images of the row group being filled, however long a slow URL keeps the shard open; the
    rows of a shard are therefore in arrival order (its ledger is in candidate order)."""

    def __init__(self, job: ShardJob):
        self.job = job
        self.start = time.monotonic()
        self.candidates = read_table(job.candidates, schemas.CANDIDATES, columns=CANDIDATE_COLUMNS).to_pylist()
        self.todo = iter(enumerate(self.candidates))
        self.outcomes: list[tuple | None] = [None] * len(self.candidates)  # (Fetched, elapsed_ms)
        self.left = len(self.candidates)
        self.images = _pending_images()
        self.ok = self.bytes_stored = 0
        self.writer = store.ShardWriter(job.images)  # opens its file on the writer thread, its only user

    def complete(self, i: int, fetched: Fetched, stored: Stored | None, elapsed_ms: int) -> dict[str, list] | None:
        """Record candidate ``i``'s outcome; returns a row group of images to write, if one is full."""
        self.outcomes[i] = (fetched, elapsed_ms)
        self.left -= 1
        if stored is not None:
            _add_image_row(self.images, self.candidates[i], stored)
            self.ok += 1
            self.bytes_stored += len(stored.data)
        if len(self.images["image_id"]) >= store.ROW_GROUP or (self.left == 0 and self.images["image_id"]):
            rows, self.images = self.images, _pending_images()
            return rows
        return None

    def write_images(self, rows: dict[str, list]) -> None:
        """Hash a row group's images together (``hashes_of_pixels``), then write it."""
        hashes = hashes_of_pixels(rows.pop("grey"))
        for k, name in enumerate(Hashes._fields):
            rows[name] = [h[k] for h in hashes]
        self.writer.write(rows)


def _pending_images() -> dict[str, list]:
    """Image rows in the making (``store.empty_rows``), the hashes' input (``grey``) in place of
    the hashes: a row group's hashes are computed together when it is written."""
    rows = {name: values for name, values in store.empty_rows().items() if name not in Hashes._fields}
    rows["grey"] = []
    return rows


class _Feed:
    """Hands out (shard, index, candidate) across shards, loading the next shard when needed."""

    def __init__(
        self, next_job: Callable[[], ShardJob | None], done: Callable[[dict], None], finish: Callable[[_Shard], None]
    ):
        self.next_job, self.done, self.finish = next_job, done, finish
        self.current: _Shard | None = None
        self.exhausted = False
        self.lock = asyncio.Lock()

    async def next(self) -> tuple[_Shard, int, dict] | None:
        async with self.lock:  # one worker loads the next shard while the others wait
            while True:
                if self.current is not None:
                    item = next(self.current.todo, None)
                    if item is not None:
                        return (self.current, *item)
                    self.current = None
                if self.exhausted:
                    return None
                job = await asyncio.get_running_loop().run_in_executor(None, self.next_job)
                if job is None:
                    self.exhausted = True
                    return None
                stats = finished(job)
                if stats is not None:
                    self.done(stats)
                    continue
                self.current = _Shard(job)
                if not self.current.candidates:
                    self.finish(self.current)


async def _download(next_job: Callable[[], ShardJob | None], progress: Progress, done: Callable[[dict], None]) -> None:
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, next_job)  # its settings open the session
    if first is None:
        return
    jobs = itertools.chain([first], iter(next_job, None))
    rule, limits = first.settings.normalise, first.limits
    writes: list[asyncio.Future] = []  # on one writer thread, so in the order submitted
    with (
        ThreadPoolExecutor(limits.decode_threads, thread_name_prefix="decode") as decoders,
        ThreadPoolExecutor(1, thread_name_prefix="write") as writer,
    ):

        def finish(shard: _Shard) -> None:
            write = loop.run_in_executor(writer, _finish, shard)
            write.add_done_callback(lambda f: f.exception() is None and done(f.result()))
            writes.append(write)

        feed = _Feed(lambda: next(jobs, None), done, finish)
        async with Fetcher(
            first.settings.network,
            first.settings.politeness,
            limits.concurrency,
            limits.per_host,
            limits.host_rate,
            limits.host_burst,
            limits.user_agent,
        ) as fetcher:

            async def worker() -> None:
                while (item := await feed.next()) is not None:
                    shard, i, candidate = item
                    start = time.monotonic()
                    fetched = await fetcher.fetch(candidate["url"])
                    stored = None
                    if fetched.status == status.OK:
                        try:
                            stored = await loop.run_in_executor(decoders, normalise, fetched.body, rule)
                        except Rejected as rejected:
                            fetched.status, fetched.error = rejected.status, str(rejected)
                        fetched.body = None
                    rows = shard.complete(i, fetched, stored, int((time.monotonic() - start) * 1000))
                    progress(1, stored is not None, fetched.nbytes)
                    if rows is not None:
                        writes.append(loop.run_in_executor(writer, shard.write_images, rows))
                    if shard.left == 0:
                        finish(shard)

            # More workers than connections: one waiting for a paced host's turn holds no
            # connection, and the connector's limit still caps the requests in flight.
            await asyncio.gather(*(worker() for _ in range(limits.concurrency * WAITERS)))
        for write in writes:
            await write  # raises a writer's error here


def _finish(shard: _Shard) -> dict:
    """The shard's last files, the stats record last: it marks the shard finished."""
    job = shard.job
    shard.writer.close()
    ledger = {name: [] for name in schemas.LEDGER.names}
    for candidate, (fetched, elapsed_ms) in zip(shard.candidates, shard.outcomes):
        _add_ledger_row(ledger, candidate, fetched, elapsed_ms)
    write_table(ledger, job.ledger, schemas.LEDGER)
    stats = {
        "shard": job.number,
        "input": job.candidates.name,
        "input_digest": job.input_digest,
        "candidates": len(shard.candidates),
        "ok": shard.ok,
        "statuses": dict(sorted(Counter(ledger["status"]).items())),
        "bytes_received": sum(ledger["bytes"]),
        "bytes_stored": shard.bytes_stored,
        "seconds": round(time.monotonic() - shard.start, 3),
    }
    atomic_write_json(job.stats, stats)
    return stats


def _add_ledger_row(ledger: dict[str, list], candidate: dict, fetched: Fetched, elapsed_ms: int) -> None:
    row = {
        "candidate_id": candidate["candidate_id"],
        "wnid": candidate["wnid"],
        "url": candidate["url"],
        "host": host_of(candidate["url"]),
        "status": fetched.status,
        "http_status": fetched.http_status,
        "error": fetched.error,
        "bytes": fetched.nbytes,
        "attempts": fetched.attempts,
        "elapsed_ms": elapsed_ms,
    }
    for name, value in row.items():
        ledger[name].append(value)


def _add_image_row(images: dict[str, list], candidate: dict, stored: Stored) -> None:
    row = {
        "image_id": candidate["candidate_id"],
        "wnid": candidate["wnid"],
        "image": stored.data,
        "sha256": stored.sha256,
        "width": stored.width,
        "height": stored.height,
        "format": stored.format,
        "grey": stored.grey,
        "original_width": stored.original_width,
        "original_height": stored.original_height,
        "original_format": stored.original_format,
        "source": candidate["source"],
        "url": candidate["url"],
        "rank": candidate["rank"],
        "license": candidate["license"],
    }
    for name, value in row.items():
        images[name].append(value)
