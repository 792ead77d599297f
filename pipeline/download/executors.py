"""Run shard jobs: in this process, on local worker processes (one per core), or on Ray.

Every executor runs the same ``shard.download_shard`` on the same jobs, so the outputs do
not depend on which one ran them. Local workers report progress through a queue (batched,
a few times a second); Ray tasks report when their shard ends.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queues
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

from pipeline.errors import PipelineError

from .shard import ShardJob, download_shard

EXECUTORS = ("local", "ray")
REPORT_EVERY = 0.25  # seconds between a worker's progress messages


class Bar:
    """URLs done, ok %, images/s, MB/s and ETA for the whole run."""

    def __init__(self, total: int):
        self.bar = tqdm(total=total, desc="download", unit="url", smoothing=0.1, dynamic_ncols=True, disable=None)
        self.ok = self.bytes = 0
        self.start = time.monotonic()

    def __call__(self, done: int, ok: int, nbytes: int) -> None:
        self.ok += ok
        self.bytes += nbytes
        elapsed = max(time.monotonic() - self.start, 1e-6)
        self.bar.set_postfix_str(
            f"ok {100 * self.ok / max(self.bar.n + done, 1):.0f}%, {self.ok / elapsed:.0f} img/s, "
            f"{self.bytes / elapsed / 1e6:.1f} MB/s", refresh=False)
        self.bar.update(done)

    def close(self) -> None:
        self.bar.close()


def run(jobs: list[ShardJob], executor: str = "local", processes: int | None = None,
        total: int = 0) -> list[dict]:
    """Run ``jobs``; returns their stats records in job order."""
    bar = Bar(total)
    try:
        if executor == "ray":
            return _run_ray(jobs, bar)
        processes = processes or os.cpu_count() or 1
        if processes == 1 or len(jobs) <= 1:
            return [download_shard(job, bar) for job in jobs]
        return _run_processes(jobs, processes, bar)
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
            self.channel.put(tuple(self.pending))
        self.pending = [0, 0, 0]
        self.last = time.monotonic()


_channel = None


def _start_worker(channel) -> None:
    global _channel
    _channel = channel


def _work(job: ShardJob) -> dict:
    reporter = _Reporter(_channel)
    stats = download_shard(job, reporter)
    reporter.flush()
    return stats


def _run_processes(jobs: list[ShardJob], processes: int, bar: Bar) -> list[dict]:
    context = multiprocessing.get_context("spawn")  # no inherited threads, locks or event loops
    channel = context.Queue()
    results: dict[int, dict] = {}
    with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=context,
                             initializer=_start_worker, initargs=(channel,)) as pool:
        pending = {pool.submit(_work, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(channel, bar)
            for future in done:
                job = pending.pop(future)
                try:
                    results[job.number] = future.result()
                except BrokenProcessPool:
                    raise PipelineError(f"a download worker died during shard {job.number:05d} "
                                        f"({job.candidates}); rerun to resume from the finished shards") from None
        _drain(channel, bar)
    return [results[job.number] for job in jobs]


def _drain(channel, bar: Bar) -> None:
    while True:
        try:
            bar(*channel.get_nowait())
        except queues.Empty:
            return


def _run_ray(jobs: list[ShardJob], bar: Bar) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise PipelineError("EXECUTOR=ray needs Ray: pip install 'synsetforge[ray]'") from None
    address = os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    task = ray.remote(max_retries=3, retry_exceptions=False, num_cpus=1)(download_shard)
    refs = {task.remote(job): job for job in jobs}
    results: dict[int, dict] = {}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
        for ref in ready:
            job = refs.pop(ref)
            try:
                stats = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise PipelineError(f"Ray task for shard {job.number:05d} ({job.candidates}) failed: {e}") from None
            results[job.number] = stats
            bar(stats["candidates"], stats["ok"], stats["bytes_received"])
    return [results[job.number] for job in jobs]
