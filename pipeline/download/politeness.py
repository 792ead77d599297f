"""Being a downloader a site owner would not mind: opt-outs, robots.txt, a blocklist, pacing.

- ``optout_signal``: the ``X-Robots-Tag`` directives (noai, noimageai, noindex, noimageindex,
  or a chosen set) addressed to every crawler or to us, and the W3C TDM Reservation Protocol's
  ``tdm-reservation: 1``, read from the answer's headers before its body.
- ``Robots``: each origin's robots.txt, fetched once per worker and run, matched for our
  User-Agent token (RFC 9309: a 4xx robots.txt allows everything; 5xx, 429 and timeouts are
  tried again, then the host's URLs are recorded as ``robots_unavailable``); a Crawl-delay
  lowers the host's rate.
- ``Blocklist``: hosts, with their subdomains, never contacted.
- ``HostPacer``: a token bucket per host, halved on 429 and 503 (and paused for their
  ``Retry-After``), won back slowly with each success.
"""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.robotparser
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from pipeline.errors import InputError

from . import status

AGENT = "synsetforge"  # the product token robots.txt and X-Robots-Tag rules are matched against
DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
# X-Robots-Tag directives that carry a value after a colon, so "name:" is not a crawler's name.
VALUED = ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview")
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB


@dataclass(frozen=True)
class Politeness:
    """The rules that decide which URLs we fetch; part of the download stage's settings."""

    respect_optouts: bool = True
    optout_directives: tuple[str, ...] = DIRECTIVES
    respect_robots: bool = True
    robots_timeout: float = 10.0
    blocklist: tuple[str, ...] = ()


def optout_signal(headers: Mapping, directives: Iterable[str]) -> str | None:
    """The opt-out in ``headers`` (a multidict) that applies to us, in words, or None."""
    wanted = {d.lower() for d in directives}
    if headers.get("tdm-reservation", "").strip() == "1":
        return "tdm-reservation: 1"
    for value in headers.getall("X-Robots-Tag", []):
        agent = None
        for token in value.split(","):
            token = token.strip().lower()
            name, colon, rest = token.partition(":")
            if colon and name.strip() not in VALUED:
                agent, token = name.strip(), rest.strip()
            if token in wanted and agent in (None, AGENT):
                return f"X-Robots-Tag: {value.strip()}"
    return None


class Blocklist:
    """Hosts never contacted: each entry blocks the host and all its subdomains."""

    def __init__(self, domains: Iterable[str]):
        self.domains = frozenset(d.lower().strip(".") for d in domains)

    def blocked(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        labels = host.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in self.domains:
                return ".".join(labels[i:])
        return None

    @staticmethod
    def read(path: Path) -> tuple[str, ...]:
        """The domains of a blocklist file: one per line (a bare host, ``*.host`` or a URL), ``#`` comments."""
        domains = []
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the domains blocklist ({e})", file=path) from None
        for number, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            host = URL(entry).host if "://" in entry else entry.removeprefix("*.")
            if not host or any(c in host for c in " /\\\t") or "." not in host.strip("."):
                raise InputError("not a host name", file=path, line=number, value=entry)
            domains.append(host.lower().strip("."))
        return tuple(sorted(set(domains)))


class _Bucket:
    def __init__(self, rate: float, burst: float):
        self.rate = self.ceiling = rate
        self.burst = burst
        self.tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self.paused_until = 0.0
        self.queue: collections.deque[asyncio.Future] = collections.deque()  # waiters, in turn


class HostPacer:
    """A token bucket per host: ``rate`` requests a second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, max(1.0, burst)
        self.buckets: dict[str, _Bucket] = {}

    def _bucket(self, host: str) -> _Bucket:
        if host not in self.buckets:
            self.buckets[host] = _Bucket(self.rate, self.burst)
        return self.buckets[host]

    async def wait(self, host: str) -> None:
        """Return when a request to ``host`` may be sent. Waiters on one host take turns:
        only the first sleeps, so many waiters wake one at a time, and its slot follows the
        rate and pause as they are when its turn comes. (Slots reserved on arrival kept the
        halved rate of a 429 for every request queued behind it, however fast the host
        recovered: a tail of seconds per slowed host.)"""
        if self.rate <= 0:
            return
        bucket = self._bucket(host)
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

    def slow_down(self, host: str, pause: float | None) -> None:
        """The host said too many (429, 503): halve its rate, send nothing for ``pause`` s."""
        if self.rate <= 0:
            return
        bucket = self._bucket(host)
        now = time.monotonic()
        if now >= bucket.paused_until:  # answers to one burst arrive together: halve once for them
            bucket.rate = max(bucket.ceiling / 64, bucket.rate / 2)
        bucket.paused_until = max(bucket.paused_until, now + (pause if pause is not None else 1 / bucket.rate))
        bucket.tat = max(bucket.tat, bucket.paused_until)

    def recover(self, host: str) -> None:
        """An answer that was not a slow-down: win back a little of the rate."""
        bucket = self.buckets.get(host)
        if bucket is not None and bucket.rate < bucket.ceiling:
            bucket.rate = min(bucket.ceiling, bucket.rate + bucket.ceiling / 20)

    def cap(self, host: str, rate: float) -> None:
        """Never more than ``rate`` requests a second to ``host`` (a robots.txt Crawl-delay)."""
        if self.rate > 0 and rate > 0:
            bucket = self._bucket(host)
            bucket.ceiling = min(bucket.ceiling, rate)
            bucket.rate = min(bucket.rate, bucket.ceiling)
            bucket.burst = 1.0


@dataclass
class _Unavailable:
    reason: str


class Robots:
    """robots.txt per origin, fetched once (concurrent askers share one fetch)."""

    def __init__(self, session: aiohttp.ClientSession, pacer: HostPacer, timeout: float, retries: int, backoff: float):
        self.session, self.pacer = session, pacer
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.origins: dict[str, asyncio.Task] = {}

    async def verdict(self, url: URL) -> tuple[str, str] | None:
        """None when we may fetch ``url``, else (ledger status, reason)."""
        origin = str(url.origin())
        if origin not in self.origins:
            self.origins[origin] = asyncio.ensure_future(self._load(url))
        rules = await asyncio.shield(self.origins[origin])
        if isinstance(rules, _Unavailable):
            return status.ROBOTS_UNAVAILABLE, f"{origin}/robots.txt: {rules.reason}"
        if rules is not None and not rules.can_fetch(AGENT, str(url)):
            return status.DISALLOWED_BY_ROBOTS, f"{origin}/robots.txt disallows {url.path_qs} for {AGENT}"
        return None

    async def _load(self, url: URL) -> urllib.robotparser.RobotFileParser | _Unavailable | None:
        """The parsed rules, None (no rules: everything allowed) or _Unavailable."""
        robots_url = url.origin().with_path("/robots.txt")
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            await self.pacer.wait(url.host or "")
            try:
                async with self.session.get(
                    robots_url, timeout=aiohttp.ClientTimeout(total=self.timeout), max_redirects=5
                ) as response:
                    if response.status == 200:
                        text = (await response.content.read(MAX_ROBOTS_BYTES)).decode("utf-8", "replace")
                        rules = urllib.robotparser.RobotFileParser(str(robots_url))
                        rules.parse(text.splitlines())
                        delay = rules.crawl_delay(AGENT)
                        if delay:
                            self.pacer.cap(url.host or "", 1 / float(delay))
                        return rules
                    if 400 <= response.status < 500 and response.status != 429:
                        return None  # RFC 9309 2.3.1.3: unavailable, so no rules
                    reason = f"HTTP {response.status}"
            except aiohttp.ClientConnectorDNSError:
                return None  # the image request itself will record what is wrong with the host
            except asyncio.TimeoutError:
                reason = f"no answer within {self.timeout:g} s"
            except (aiohttp.ClientError, OSError) as e:
                reason = f"{type(e).__name__}: {e}"
        return _Unavailable(f"{reason} ({self.retries + 1} tries)")
