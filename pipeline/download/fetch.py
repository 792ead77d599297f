"""HTTP for the downloader: one aiohttp session per worker, bounded, patient, safe.

``Fetcher.fetch(url)`` always returns a ``Fetched`` (never raises for anything a server or
network can do): the body when it got one, or the ledger status saying why not. Redirects
are followed by hand so each hop is checked again (scheme, address, count); connection
errors and the answers ``pipeline.http.retryable`` names (429, 5xx) are retried by
``pipeline.http.retrying``, after the server's ``Retry-After`` or the backoff; timeouts and
other 4xx answers are final. Before every request the rules of
``politeness`` apply (blocklist, robots.txt, the host's pace); after it, the opt-out headers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pipeline import USER_AGENT
from pipeline.http import Pacer, Retry, retry_after, retryable, retrying

from . import status
from .politeness import Blocklist, Politeness, Robots, optout_signal
from .safety import BlockedAddress, SafeConnector, parse_url

REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
READ_BUFFER = 1024 * 1024  # a whole photo: aiohttp pauses the socket each time its buffer passes this


@dataclass(frozen=True)
class Network:
    """How the downloader talks to servers; part of the download stage's settings."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # between two reads of the body
    total_timeout: float = 60.0  # one request, headers and body
    retries: int = 3  # extra attempts after a connection error, 5xx or 429
    backoff: float = 0.5  # first retry waits about this long, doubling each time
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for
    max_redirects: int = 5
    max_bytes: int = 20 * 1024 * 1024
    allow_private_hosts: bool = False


@dataclass
class Fetched:
    status: str
    body: bytes | None = None
    http_status: int | None = None
    error: str | None = None
    attempts: int = 0
    nbytes: int = 0


class Fetcher:
    """Open with ``async with Fetcher(network, politeness, ...) as fetcher``. ``concurrency``
    requests in flight, ``per_host`` connections to one host, ``host_rate`` requests a second
    to one host in bursts of ``host_burst`` (0: unpaced); every request, robots.txt's too,
    says it is ``user_agent``."""

    def __init__(
        self,
        network: Network,
        politeness: Politeness | None = None,
        concurrency: int = 64,
        per_host: int = 16,
        host_rate: float = 0.0,
        host_burst: float = 1.0,
        user_agent: str = USER_AGENT,
    ):
        self.network = network
        self.user_agent = user_agent
        self.politeness = politeness or Politeness()
        self.concurrency = concurrency
        self.per_host = per_host
        self.pacer = Pacer(host_rate, host_burst)
        self.blocklist = Blocklist(self.politeness.blocklist)

    async def __aenter__(self) -> Fetcher:
        n = self.network
        connector = SafeConnector(
            limit=self.concurrency, limit_per_host=self.per_host, ttl_dns_cache=300, allow_private=n.allow_private_hosts
        )
        timeout = aiohttp.ClientTimeout(total=n.total_timeout, connect=n.connect_timeout, sock_read=n.read_timeout)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": self.user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=READ_BUFFER,
            raise_for_status=False,
        )
        self.robots = Robots(self.session, self.pacer, self.politeness.robots_timeout, n.retries, n.backoff)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def fetch(self, url: str) -> Fetched:
        target = parse_url(url)
        if isinstance(target, str):
            return Fetched(status.BAD_URL, error=target)
        result = Fetched(status.CONNECTION_ERROR)
        redirects = 0

        async def attempt() -> Fetched | Retry:
            """Requests until an answer that is not a redirect, each hop checked by the rules
            and paced; a retry starts again at the last hop."""
            nonlocal target, redirects
            while True:
                stop = await self._rules(target)
                if stop is not None:
                    return _final(result, *stop)
                await self.pacer.wait(target.host)
                result.attempts += 1
                outcome = await self._attempt(target, result)
                if not isinstance(outcome, URL):
                    return outcome
                if redirects == self.network.max_redirects:
                    return _final(
                        result,
                        status.TOO_MANY_REDIRECTS,
                        f"more than {self.network.max_redirects} redirects, last to {outcome}",
                    )
                redirects += 1
                target = outcome

        await retrying(attempt, retries=self.network.retries, backoff=self.network.backoff)
        return result

    async def _rules(self, target: URL) -> tuple[str, str] | None:
        """(status, reason) when a rule forbids requesting ``target`` at all."""
        domain = self.blocklist.blocked(target.host or "")
        if domain:
            return status.BLOCKED_DOMAIN, f"{target.host} is blocked by the entry {domain}"
        if self.politeness.respect_robots:
            return await self.robots.verdict(target)
        return None

    async def _attempt(self, target: URL, result: Fetched) -> Fetched | URL | Retry:
        """One request: a final ``Fetched``, the next URL of a redirect, or a ``Retry``
        (``result`` then holds the failure) with any server-given wait."""
        n = self.network
        try:
            async with self.session.get(target, allow_redirects=False) as response:
                result.http_status = response.status
                result.nbytes = 0
                if response.status in REDIRECTS:
                    return self._redirect(target, response, result)
                if retryable(response.status):
                    _final(result, status.HTTP_ERROR, f"HTTP {response.status} {response.reason or ''}".strip())
                    wait = retry_after(response.headers.get("Retry-After"))
                    if response.status in (429, 503):
                        self.pacer.slow_down(target.host, wait)
                    if wait is not None and wait > n.max_retry_after:
                        result.error += f"; Retry-After {wait:.0f} s is longer than {n.max_retry_after:.0f} s"
                        return result
                    return Retry(result.error, wait)
                self.pacer.recover(target.host)
                if response.status != 200:
                    return _final(result, status.HTTP_ERROR, f"HTTP {response.status} {response.reason or ''}".strip())
                if self.politeness.respect_optouts:
                    signal = optout_signal(response.headers, self.politeness.optout_directives)
                    if signal:
                        return _final(result, status.OPTED_OUT, signal)
                if response.content_length is not None and response.content_length > n.max_bytes:
                    return _final(
                        result,
                        status.TOO_LARGE,
                        f"Content-Length {response.content_length} is over {n.max_bytes} bytes",
                    )
                try:
                    if response.content_length is not None:  # within max_bytes: read it in one go
                        result.body = await response.content.read()
                    else:
                        body = bytearray()
                        async for chunk in response.content.iter_chunked(CHUNK):
                            body += chunk
                            if len(body) > n.max_bytes:
                                return _final(result, status.TOO_LARGE, f"body is over {n.max_bytes} bytes")
                        result.body = bytes(body)
                finally:
                    result.nbytes = response.content.total_bytes
                return _final(result, status.OK, None)
        except aiohttp.ClientConnectorDNSError as e:
            if isinstance(e.os_error, BlockedAddress):
                return _final(result, status.BLOCKED_ADDRESS, str(e.os_error))
            return _final(result, status.CONNECTION_ERROR, f"DNS: {e.os_error}")
        except asyncio.TimeoutError as e:  # aiohttp's connect and read timeouts subclass it
            return _final(result, status.TIMEOUT, f"{type(e).__name__} {e}".strip())
        except aiohttp.InvalidURL as e:
            return _final(result, status.BAD_URL, f"invalid URL {e}")
        except (aiohttp.ClientError, OSError) as e:
            _final(result, status.CONNECTION_ERROR, f"{type(e).__name__}: {e}")
            return Retry(result.error)

    def _redirect(self, target: URL, response: aiohttp.ClientResponse, result: Fetched) -> Fetched | URL:
        location = response.headers.get("Location")
        if not location:
            return _final(result, status.HTTP_ERROR, f"HTTP {response.status} without a Location")
        try:
            following = target.join(URL(location))
        except ValueError as e:
            return _final(result, status.BAD_URL, f"redirect to {location!r}: {e}")
        checked = parse_url(following)
        if isinstance(checked, str):
            return _final(result, status.BAD_URL, f"redirect to {following}: {checked}")
        return checked


def _final(result: Fetched, status_: str, error: str | None) -> Fetched:
    result.status, result.error = status_, error
    return result
