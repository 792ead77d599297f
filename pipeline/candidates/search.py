"""What the search-API sources share: a paced JSON client and the search result they return.

An adapter (``commons``, ``openverse``, ``flickr``) knows one API's parameters and answer
shape; this module knows how to be a polite client of any of them: one User-Agent naming
the tool and the operator's contact (``pipeline.user_agent``), a minimum interval between
requests (the API's documented rate), retries on 429 and 5xx that honour ``Retry-After`` or
back off (``pipeline.http``), and an error that says which source and query failed and what
the API answered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import aiohttp

from pipeline import USER_AGENT
from pipeline.errors import PipelineError
from pipeline.http import Pacer, Retry, retry_after, retryable, retrying

RETRIES = 4
MAX_RETRY_AFTER = 120.0


class SourceError(PipelineError):
    """A search API refused or failed a request; names the source, the query and the answer
    (``answer``; ``status``: the HTTP status of a refusal, when there was one)."""

    def __init__(self, source: str, query: str, message: str, status: int | None = None):
        self.source, self.query, self.status, self.answer = source, query, status, message
        super().__init__(f"{source}: query {query!r}: {message}")


class SourceStopped(SourceError):
    """The API will not serve us for a long while: a daily cap whose ``Retry-After`` is hours,
    or an access token refused with no credentials to renew it. Not a failure of the input:
    the stage keeps what it gathered and says when to run again (``resume_at``, UTC; None when
    it is the user's move, such as a new token)."""

    def __init__(self, source: str, query: str, message: str, resume_at: datetime | None = None):
        super().__init__(source, query, message)
        self.resume_at = resume_at


@dataclass
class SearchResult:
    """One image a search returned, in the candidates table's terms (``schemas.CANDIDATES``)."""

    url: str
    source_id: str | None = None
    title: str | None = None
    creator: str | None = None
    license: str | None = None
    license_url: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    mime: str | None = None


def int_or_none(value: Any) -> int | None:
    """An API's number field, or None when it is missing, empty or not a number."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class SearchResults(list):
    """The results of one query, best first: each URL once, at most ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self) >= self.limit

    def add(self, result: SearchResult | None) -> bool:
        """Keep ``result`` unless it is None, a URL seen before, or one too many; True when full."""
        if result is not None and result.url not in self.seen and not self.full:
            self.seen.add(result.url)
            self.append(result)
        return self.full


class Source(Protocol):
    """A search adapter: ``name`` for the candidates' ``source`` column, and ``search``."""

    name: str

    async def search(self, client: ApiClient, query: str, limit: int) -> list[SearchResult]:
        """Up to ``limit`` results for ``query``, best first, paging as the API requires."""


class ApiClient:
    """GET JSON from one search API at its documented rate: ``per_second`` requests, evenly
    spaced, in the order they ask; a retry's wait pauses them all. Every request carries
    ``user_agent``."""

    def __init__(
        self,
        source: str,
        session: aiohttp.ClientSession,
        per_second: float,
        backoff: float = 1.0,
        user_agent: str = USER_AGENT,
    ):
        if per_second <= 0:
            raise ValueError(f"{source}: an API's rate must be above 0 requests a second")
        self.source = source
        self.session = session
        self.user_agent = user_agent
        self.pacer = Pacer(per_second)
        self.backoff = backoff
        self.requests = 0

    async def get_json(
        self,
        url: str,
        params: Mapping[str, Any],
        query: str,
        headers: Mapping[str, str] | None = None,
        retry_when: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The decoded JSON answer; retries 429, 5xx and connection errors, then raises
        ``SourceError``. 4xx answers other than 429 are not retried.

        ``retry_when`` is for APIs that say "slow down" inside a 200 answer (MediaWiki's
        ``maxlag`` and ``ratelimited`` errors): given the decoded answer it returns a reason
        to retry, or None to accept it. Such an answer is retried like a 429, honouring
        ``Retry-After``."""
        return await self._json("GET", url, query, params=params, headers=headers, retry_when=retry_when)

    async def post_form(self, url: str, form: Mapping[str, str], query: str) -> Any:
        """The decoded JSON answer to a form POST (an OAuth2 token request, RFC 6749 section
        4.4), paced and retried as ``get_json``."""
        return await self._json("POST", url, query, form=form)

    async def _json(
        self,
        method: str,
        url: str,
        query: str,
        *,
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_when: Callable[[Any], str | None] | None = None,
    ) -> Any:
        headers = {"User-Agent": self.user_agent, **(headers or {})}

        async def attempt() -> Any:
            await self.pacer.wait(self.source)
            self.requests += 1
            try:
                async with self.session.request(
                    method, url, params=params, data=form, headers=headers, allow_redirects=True
                ) as response:
                    if retryable(response.status):
                        return self._retry(response, f"HTTP {response.status} {await _detail(response)}".strip(), query)
                    if response.status >= 400:
                        raise SourceError(
                            self.source,
                            query,
                            f"HTTP {response.status} {await _detail(response)}".strip(),
                            status=response.status,
                        )
                    try:
                        data = await response.json(content_type=None)
                    except ValueError:
                        raise SourceError(self.source, query, "the answer is not JSON") from None
                    reason = retry_when(data) if retry_when else None
                    return data if reason is None else self._retry(response, reason, query)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                return Retry(f"{type(e).__name__}: {e}")

        outcome = await retrying(attempt, retries=RETRIES, backoff=self.backoff, pacer=self.pacer, key=self.source)
        if isinstance(outcome, Retry):
            raise SourceError(
                self.source, query, f"gave up after {RETRIES + 1} attempts; last answer: {outcome.reason}"
            )
        return outcome

    def _retry(self, response: aiohttp.ClientResponse, reason: str, query: str) -> Retry:
        """A retry after the server's ``Retry-After`` (none: after the backoff); raises
        ``SourceStopped`` when that is longer than ``MAX_RETRY_AFTER`` (a daily cap answers
        with hours), with the time it names."""
        hint = retry_after(response.headers.get("Retry-After"))
        if hint is not None and hint > MAX_RETRY_AFTER:
            resume_at = datetime.now(timezone.utc) + timedelta(seconds=hint)
            raise SourceStopped(self.source, query, f"{reason.rstrip('.')}; Retry-After {hint:.0f} s", resume_at)
        return Retry(reason, hint)


async def _detail(response: aiohttp.ClientResponse) -> str:
    """The error text an API put in its body, shortened: the message of a JSON error body
    (``detail``, ``message``, ``error.info``) when there is one, else the text itself."""
    text = (await response.text(errors="replace")).strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("detail") or body.get("message") or (error.get("info") if isinstance(error, dict) else error)
        if message:
            return (message if isinstance(message, str) else json.dumps(message))[:200]
    return text[:200]
