"""Run shard jobs: in this process, on local worker processes (one per core), or on Ray.

Every executor runs the same ``shard`` code on the same jobs, so the outputs do not depend
on which one ran them. Local workers live for the whole run and pull shards from a queue,
so each starts its next shard while the last one's slowest URLs finish; they report
progress through a queue (batched, a few times a second). Ray runs a task per shard, which
reports when it ends; its input and outputs travel as bytes, so a cluster needs no shared
folder.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue as queues
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

from pipeline.distributed import ray_module
from pipeline.errors import PipelineError
from pipeline.files import atomic_write_bytes
from pipeline.progress import progress

from .shard import ShardJob, calm_collector, download_shard, download_shards, finished

EXECUTORS = ("local", "ray")
REPORT_EVERY = 0.25  # seconds between a worker's progress messages


class Bar:
    """URLs done, ok %, images/s, MB/s and ETA for the whole run."""

    def __init__(self, total: int):
        self.bar = progress(total=total, desc="download", unit="url", smoothing=0.1)
        self.ok = self.bytes = 0
        self.start = time.monotonic()

    def __call__(self, done: int, ok: int, nbytes: int) -> None:
        self.ok += ok
        self.bytes += nbytes
        elapsed = max(time.monotonic() - self.start, 1e-6)
        self.bar.set_postfix_str(
            f"ok {100 * self.ok / max(self.bar.n + done, 1):.0f}%, {self.ok / elapsed:.0f} img/s, "
            f"{self.bytes / elapsed / 1e6:.1f} MB/s",
            refresh=False,
        )
        self.bar.update(done)

    def close(self) -> None:
        self.bar.close()


def run(jobs: list[ShardJob], executor: str = "local", processes: int | None = None, total: int = 0) -> list[dict]:
    """Run ``jobs``; returns their stats records in job order."""
    bar = Bar(total)
    try:
        if executor == "ray":
            results = _run_ray(jobs, bar)
        elif (processes or os.cpu_count() or 1) == 1 or len(jobs) <= 1:
            results = {}
            pending = iter(jobs)
            download_shards(lambda: next(pending, None), bar, lambda stats: results.__setitem__(stats["shard"], stats))
        else:
            results = _run_processes(jobs, processes or os.cpu_count(), bar)
        return [results[job.number] for job in jobs]
    finally:
        bar.close()


class _Reporter:
    """A worker's progress callback: sums locally, sends to the parent now and then."""

    def __init__(self, channel):
        self.channel = channel
        self.pending = [0, 0, 0]
        self.last = time.monotonic()

    def __call__(self, done: int, ok: int, nbytes: int) -> None:
        self.pending[0] += done
        self.pending[1] += ok
        self.pending[2] += nbytes
        if time.monotonic() - self.last > REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending[0]:
            self.channel.put(("progress", tuple(self.pending)))
        self.pending = [0, 0, 0]
        self.last = time.monotonic()


def _die_with_parent() -> None:
    """End this worker the moment the stage that started it ends, however it ends: a stage
    killed with SIGKILL runs no cleanup, and an orphan would go on fetching and writing cache
    files. The fork server, not the stage, is a worker's parent process (so no
    PR_SET_PDEATHSIG), but the stage holds the write end of the pipe behind
    ``parent_process().sentinel``, which therefore reads as ready when the stage is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # no cleanup: the stage's rerun discards what was half-written

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker(jobs, channel) -> None:
    """A local worker process: shards from ``jobs`` until a None, results and progress to ``channel``."""
    _die_with_parent()
    reporter = _Reporter(channel)

    def done(stats: dict) -> None:
        reporter.flush()
        channel.put(("done", stats))

    calm_collector()
    try:
        download_shards(jobs.get, reporter, done)
    except BaseException as e:
        channel.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        raise


def _run_processes(jobs: list[ShardJob], processes: int, bar: Bar) -> dict[int, dict]:
    # A fork server, started clean (no inherited threads, locks or event loops), imports the
    # download code once and forks each worker from itself: one import (0.35 s of CPU) for
    # all workers instead of one each.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.download.shard"])
    queue, channel = context.Queue(), context.Queue()
    workers = [
        context.Process(target=_worker, args=(queue, channel), daemon=True, name=f"download-{n}")
        for n in range(min(processes, len(jobs)))
    ]
    for job in jobs:
        queue.put(job)
    for _ in workers:
        queue.put(None)
    results: dict[int, dict] = {}
    try:
        for worker in workers:
            worker.start()
        while len(results) < len(jobs):
            try:
                kind, payload = channel.get(timeout=0.5)
            except queues.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise PipelineError(
                        f"download worker {dead[0].name} died (exit {dead[0].exitcode}); "
                        "rerun to resume from the finished shards"
                    ) from None
                continue
            if kind == "progress":
                bar(*payload)
            elif kind == "done":
                results[payload["shard"]] = payload
            else:
                raise PipelineError(f"a download worker failed: {payload}")
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    return results


def _run_ray(jobs: list[ShardJob], bar: Bar) -> dict[int, dict]:
    """A task per unfinished shard. The input shard travels with the task and the outputs come
    back as bytes, written here (stats last), so no node needs this machine's data folder."""
    ray = ray_module()
    task = ray.remote(max_retries=3, retry_exceptions=False, num_cpus=1)(shard_on_node)
    results: dict[int, dict] = {}
    refs = {}
    for job in jobs:
        stats = finished(job)
        if stats is not None:
            results[job.number] = stats
            bar(stats["candidates"], 0, 0)
        else:
            refs[task.remote(job, job.candidates.read_bytes())] = job
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
        for ref in ready:
            job = refs.pop(ref)
            try:
                stats, files = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise PipelineError(f"Ray task for shard {job.number:05d} ({job.candidates}) failed: {e}") from None
            for kind, path in job.outputs().items():  # the stats record, last, marks the shard finished
                atomic_write_bytes(path, files[kind])
            results[job.number] = stats
            bar(stats["candidates"], stats["ok"], stats["bytes_received"])
    return results


def shard_on_node(job: ShardJob, candidates: bytes) -> tuple[dict, dict[str, bytes]]:
    """One shard in a folder of the node that runs it: (stats, {images, ledger, stats: bytes})."""
    with tempfile.TemporaryDirectory(prefix="synsetforge-shard-") as tmp:
        local = replace(job, candidates=Path(tmp) / job.candidates.name, out=Path(tmp) / "out")
        local.candidates.write_bytes(candidates)
        stats = download_shard(local)
        return stats, {kind: path.read_bytes() for kind, path in local.outputs().items()}
