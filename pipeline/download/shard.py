"""One unit of work: one candidates shard in, one image shard + one ledger shard + one stats
record out (img2dataset's design).

The three files are written under temporary names and renamed, the stats record last, so a
shard is finished exactly when its stats record exists and names the input it was made
from. A worker killed at any moment leaves no file a reader or a rerun would trust.
"""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from pipeline import schemas
from pipeline.files import atomic_write_text
from pipeline.tables import read_table, write_table

from . import status
from .fetch import Fetched, Fetcher, Network
from .images import Normalise, Rejected, Stored, normalise
from .safety import host_of

CANDIDATE_COLUMNS = ["candidate_id", "wnid", "url", "source", "rank", "license"]
ROW_GROUP = 128  # images per Parquet row group: readers can stream a shard

# progress(urls_done, ok, bytes_received): called often, must be cheap.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Settings:
    """Everything that decides a shard's content; the stage fingerprints it."""

    network: Network = field(default_factory=Network)
    normalise: Normalise = field(default_factory=Normalise)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    """How hard one worker pushes; changes speed, never the result."""

    concurrency: int = 128     # requests in flight in this worker
    per_host: int = 16         # connections to one host from this worker
    decode_threads: int = 2    # Pillow releases the GIL while decoding


@dataclass(frozen=True)
class ShardJob:
    number: int
    candidates: Path   # the input shard
    input_digest: str  # sha256 of the input shard's bytes
    out: Path          # holds images/, ledger/ and stats/
    settings: Settings
    limits: Limits = field(default_factory=Limits)

    def path(self, kind: str) -> Path:
        suffix = "json" if kind == "stats" else "parquet"
        return self.out / kind / f"shard-{self.number:05d}.{suffix}"


def finished(job: ShardJob) -> dict | None:
    """The stats record of a finished shard made from this very input, or None."""
    try:
        stats = json.loads(job.path("stats").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if stats.get("input_digest") != job.input_digest:
        return None
    if not (job.path("images").exists() and job.path("ledger").exists()):
        return None
    return stats


def download_shard(job: ShardJob, progress: Progress | None = None) -> dict:
    """Download one shard unless it is finished; returns its stats record."""
    done = finished(job)
    if done is not None:
        return done
    start = time.monotonic()
    candidates = read_table(job.candidates, schemas.CANDIDATES, columns=CANDIDATE_COLUMNS).to_pylist()
    outcomes = asyncio.run(_download(candidates, job, progress or (lambda *a: None)))

    images = {name: [] for name in schemas.IMAGES.names}
    ledger = {name: [] for name in schemas.LEDGER.names}
    for candidate, (fetched, stored, elapsed) in zip(candidates, outcomes):
        _add_ledger_row(ledger, candidate, fetched, elapsed)
        if stored is not None:
            _add_image_row(images, candidate, stored)
    write_table(images, job.path("images"), schemas.IMAGES, row_group_size=ROW_GROUP)
    write_table(ledger, job.path("ledger"), schemas.LEDGER)
    stats = _stats(job, candidates, ledger, images, time.monotonic() - start)
    atomic_write_text(job.path("stats"), json.dumps(stats, indent=1) + "\n")
    return stats


async def _download(candidates: list[dict], job: ShardJob, progress: Progress) -> list[tuple]:
    """Fetch and normalise every candidate; one (Fetched, Stored | None, elapsed_ms) each, in order."""
    outcomes: list[tuple] = [None] * len(candidates)
    todo = iter(enumerate(candidates))  # shared by the workers: asyncio never preempts a next()
    rule = job.settings.normalise
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(job.limits.decode_threads, thread_name_prefix="decode") as decoders:
        async with Fetcher(job.settings.network, job.limits.concurrency, job.limits.per_host) as fetcher:

            async def worker() -> None:
                for i, candidate in todo:
                    start = time.monotonic()
                    fetched = await fetcher.fetch(candidate["url"])
                    stored = None
                    if fetched.status == status.OK:
                        try:
                            stored = await loop.run_in_executor(decoders, normalise, fetched.body, rule)
                        except Rejected as rejected:
                            fetched.status, fetched.error = rejected.status, str(rejected)
                        fetched.body = None
                    outcomes[i] = (fetched, stored, int((time.monotonic() - start) * 1000))
                    progress(1, stored is not None, fetched.nbytes)

            await asyncio.gather(*(worker() for _ in range(min(job.limits.concurrency, len(candidates)))))
    return outcomes


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
        "phash": stored.phash,
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


def _stats(job: ShardJob, candidates: list[dict], ledger: dict[str, list], images: dict[str, list],
           seconds: float) -> dict:
    statuses: dict[str, int] = {}
    for s in ledger["status"]:
        statuses[s] = statuses.get(s, 0) + 1
    return {
        "shard": job.number,
        "input": job.candidates.name,
        "input_digest": job.input_digest,
        "candidates": len(candidates),
        "ok": len(images["image_id"]),
        "statuses": dict(sorted(statuses.items())),
        "bytes_received": sum(ledger["bytes"]),
        "bytes_stored": sum(len(b) for b in images["image"]),
        "seconds": round(seconds, 3),
    }
