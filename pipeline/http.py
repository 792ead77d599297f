"""The rules every request of the stages that fetch follows: the candidates' search APIs and the
download's image servers retry, back off and keep their pace the same way, defined here once.

- ``retryable``: which answers are worth another try (429 and 5xx); every other one is final.
- ``retry_after``: the wait a server asks for in ``Retry-After`` (RFC 9110, section 10.2.3).
- ``backoff_delay``: how long to wait before a retry when the server did not say: exponential, with
  jitter so that clients that failed together do not retry together.
- ``Pacer``: a token bucket per key (a host, an API), the pace of requests to it; a server that
  says "too many" slows it down and pauses it.
- ``retrying``: the retry loop: tries a request until its outcome is final or the tries run out,
  waiting between two tries what the server asked for or what ``backoff_delay`` says. Each
  client's attempt decides what is worth a retry (a ``Retry``) and what is final.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def retryable(status: int) -> bool:
    """A 429 (too many requests) or a 5xx (the server failed): the same request may succeed later."""
    return status == 429 or status >= 500


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date; None without one."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no hint
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(base: float, retry: int) -> float:
    """The wait before retry number ``retry`` (0 for the first): ``base`` doubled each time,
    times a random factor in [0.5, 1.5)."""
    return base * 2**retry * (0.5 + random.random())


class _Bucket:
    def __init__(self, rate: float, burst: float):
        self.rate = self.ceiling = rate
        self.burst = burst
        self.tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self.paused_until = 0.0
        self.queue: collections.deque[asyncio.Future] = collections.deque()  # waiters, in turn


class Pacer:
    """A token bucket per key: ``rate`` requests a second with bursts of ``burst`` (a burst of 1
    spaces requests evenly, ``1/rate`` apart). A rate of 0 or less paces nothing and costs nothing."""

    def __init__(self, rate: float, burst: float = 1.0):
        self.rate, self.burst = rate, max(1.0, burst)
        self.buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str) -> _Bucket:
        if key not in self.buckets:
            self.buckets[key] = _Bucket(self.rate, self.burst)
        return self.buckets[key]

    async def wait(self, key: str) -> None:
        """Return when a request to ``key`` may be sent. Waiters on one key take turns in the
        order they asked, and only the first in line sleeps; its slot is computed from the
        key's rate and pause as they are when its turn comes, not when it asked, so a
        slow-down or a recovery applies at once to every request still waiting."""
        if self.rate <= 0:
            return
        bucket = self._bucket(key)
        turn = asyncio.get_running_loop().create_future()
        bucket.queue.append(turn)
        try:
            if len(bucket.queue) > 1:
                await turn
            while True:
                now = time.monotonic()
                slot = max(bucket.tat, now - (bucket.burst - 1) / bucket.rate, bucket.paused_until)
                if slot <= now:
                    bucket.tat = slot + 1 / bucket.rate
                    return
                await asyncio.sleep(slot - now)
        finally:
            bucket.queue.remove(turn)
            if bucket.queue and not bucket.queue[0].done():
                bucket.queue[0].set_result(None)

    def pause(self, key: str, seconds: float) -> None:
        """Send nothing to ``key`` for ``seconds`` (the server said so, or a retry backs off)."""
        if self.rate <= 0:
            return
        bucket = self._bucket(key)
        bucket.paused_until = max(bucket.paused_until, time.monotonic() + seconds)
        bucket.tat = max(bucket.tat, bucket.paused_until)

    def slow_down(self, key: str, pause: float | None) -> None:
        """The server said too many (429, 503): halve the rate, send nothing for ``pause``
        seconds (None: one interval at the new rate)."""
        if self.rate <= 0:
            return
        bucket = self._bucket(key)
        now = time.monotonic()
        if now >= bucket.paused_until:  # answers to one burst arrive together: halve once for them
            bucket.rate = max(bucket.ceiling / 64, bucket.rate / 2)
        self.pause(key, pause if pause is not None else 1 / bucket.rate)

    def recover(self, key: str) -> None:
        """An answer that was not a slow-down: win back a little of the rate."""
        bucket = self.buckets.get(key)
        if bucket is not None and bucket.rate < bucket.ceiling:
            bucket.rate = min(bucket.ceiling, bucket.rate + bucket.ceiling / 20)

    def cap(self, key: str, rate: float) -> None:
        """Never more than ``rate`` requests a second to ``key`` (a robots.txt Crawl-delay)."""
        if self.rate > 0 and rate > 0:
            bucket = self._bucket(key)
            bucket.ceiling = min(bucket.ceiling, rate)
            bucket.rate = min(bucket.rate, bucket.ceiling)
            bucket.burst = 1.0


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt's outcome worth another try: why it failed, and the wait the server asked
    for (``Retry-After``; None: back off)."""

    reason: str = ""
    after: float | None = None


async def retrying(
    attempt: Callable[[], Awaitable[T | Retry]],
    *,
    retries: int,
    backoff: float,
    pacer: Pacer | None = None,
    key: str = "",
) -> T | Retry:
    """Await ``attempt()`` until it returns something other than a ``Retry``, at most
    ``retries`` + 1 times: that outcome, or the last ``Retry`` when every try asked for another.

    Before retry number ``n`` (0 for the first) it waits the ``Retry``'s ``after``, else
    ``backoff_delay(backoff, n)``: it sleeps, or, given a ``pacer`` that paces, pauses ``key``
    in it, so that every request to the key waits too (the attempt's own ``pacer.wait`` then
    serves the wait). What is final (a status, a wait too long to honour) and how a server's
    "too many" slows the pace are the attempt's to decide."""
    for n in range(retries):
        outcome = await attempt()
        if not isinstance(outcome, Retry):
            return outcome
        wait = outcome.after if outcome.after is not None else backoff_delay(backoff, n)
        if pacer is not None and pacer.rate > 0:
            pacer.pause(key, wait)
        else:
            await asyncio.sleep(wait)
    return await attempt()
