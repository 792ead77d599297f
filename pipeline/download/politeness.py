"""Being a downloader a site owner would not mind: opt-outs, robots.txt, a blocklist, pacing.

- ``optout_signal``: the ``X-Robots-Tag`` directives (noai, noimageai, noindex, noimageindex,
  or a chosen set) addressed to every crawler or to us, and the W3C TDM Reservation Protocol's
  ``tdm-reservation: 1``, read from the answer's headers before its body.
- ``Robots``: each origin's robots.txt, fetched once per worker and run, matched for our
  User-Agent token (RFC 9309: a 4xx robots.txt allows everything; 5xx, 429 and timeouts are
  tried again, then the host's URLs are recorded as ``robots_unavailable``); a Crawl-delay
  lowers the host's rate.
- ``Blocklist``: hosts, with their subdomains, never contacted.

Each host's pace is a ``pipeline.http.Pacer`` keyed by host: halved on 429 and 503 (and paused
for their ``Retry-After``), won back slowly with each success, capped by a Crawl-delay.
"""

from __future__ import annotations

import asyncio
import urllib.robotparser
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from pipeline.errors import InputError
from pipeline.http import Pacer, Retry, retrying

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


@dataclass
class _Unavailable:
    reason: str


class Robots:
    """robots.txt per origin, fetched once (concurrent askers share one fetch)."""

    def __init__(self, session: aiohttp.ClientSession, pacer: Pacer, timeout: float, retries: int, backoff: float):
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
        """The parsed rules, None (no rules: everything allowed) or _Unavailable. Answers
        other than a 200 or a 4xx (a 429, a 5xx...), timeouts and connection errors are tried
        again after the backoff; ``Retry-After`` is not read."""
        robots_url = url.origin().with_path("/robots.txt")
        host = url.host or ""

        async def attempt() -> urllib.robotparser.RobotFileParser | Retry | None:
            await self.pacer.wait(host)
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
                            self.pacer.cap(host, 1 / float(delay))
                        return rules
                    if 400 <= response.status < 500 and response.status != 429:
                        return None  # RFC 9309 2.3.1.3: unavailable, so no rules
                    return Retry(f"HTTP {response.status}")
            except (aiohttp.ClientConnectorDNSError, aiohttp.InvalidURL):
                return None  # the image request itself will record what is wrong with the host
            except asyncio.TimeoutError:
                return Retry(f"no answer within {self.timeout:g} s")
            except (aiohttp.ClientError, OSError) as e:
                return Retry(f"{type(e).__name__}: {e}")

        outcome = await retrying(attempt, retries=self.retries, backoff=self.backoff)
        if isinstance(outcome, Retry):
            return _Unavailable(f"{outcome.reason} ({self.retries + 1} tries)")
        return outcome
