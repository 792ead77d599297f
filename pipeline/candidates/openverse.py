"""Openverse: openly licensed images gathered from Flickr, Wikimedia, museums and others.

    GET {api}/v1/images/?q=Q&page=P&page_size=S[&license_type=commercial]
    Authorization: Bearer TOKEN          (optional)

Limits assumed (Openverse's API documentation and its announcements):

* anonymous: ``page_size`` <= 20 (a larger one is refused with 401) and ``page`` <= 20, so at
  most 400 results per query; about 20 requests a minute (and 200 a day), hence
  PER_SECOND = 1/3. The stage uses PER_SECOND whether or not there is a token: registered
  applications may go faster, but one request every 3 s is always allowed.
* with a token (an OAuth2 client-credentials access token, ``OPENVERSE_TOKEN``):
  ``page_size`` <= 500; the page depth stays 20, so at most 10,000 results per query.

The answer is ``{result_count, page_count, page_size, page, results: [...]}``; ``page_count``
is already capped at what may be paged. Paging stops at ``page_count``, at page 20, or at a
page with fewer results than asked for. ``license`` is Openverse's code and version
(``by-sa 4.0``, ``cc0 1.0``, ``pdm 1.0``). ``mime`` comes from ``filetype`` (``jpg`` ->
``image/jpeg``); results whose ``filetype`` is known but not a bitmap (``svg``) are skipped.
Errors are HTTP 4xx with ``{"detail": ...}``, which ``ApiClient`` puts in the ``SourceError``;
429 (with ``Retry-After``) is retried by ``ApiClient``.
"""

from __future__ import annotations

from typing import Any

from .search import ApiClient, SearchResult, SearchResults, SourceError, int_or_none

DEFAULT_API = "https://api.openverse.org"
PER_SECOND = 1 / 3
ANONYMOUS_PAGE_SIZE = 20
TOKEN_PAGE_SIZE = 500
MAX_PAGE = 20
MIMES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}


def result_of(item: dict) -> SearchResult | None:
    """The search result for one item of ``results``, or None when it has no URL or is not a bitmap."""
    url = item.get("url")
    filetype = (item.get("filetype") or "").lower() or None
    if not url or (filetype is not None and filetype not in MIMES):
        return None
    code, version = item.get("license"), item.get("license_version")
    license = " ".join(str(p) for p in (code, version) if p) or None
    return SearchResult(
        url=url,
        source_id=_str(item.get("id")),
        title=_str(item.get("title")),
        creator=_str(item.get("creator")),
        license=license,
        license_url=_str(item.get("license_url")),
        width=int_or_none(item.get("width")),
        height=int_or_none(item.get("height")),
        bytes=int_or_none(item.get("filesize")),
        mime=MIMES.get(filetype) if filetype else None,
    )


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


class Openverse:
    """Openverse image search; anonymous, or with an access token for larger pages."""

    name = "openverse"

    def __init__(self, token: str | None = None, license_type: str | None = None, api: str = DEFAULT_API):
        self.token = token or None
        self.license_type = license_type or None
        self.endpoint = api.rstrip("/") + "/v1/images/"

    @property
    def max_page_size(self) -> int:
        return TOKEN_PAGE_SIZE if self.token else ANONYMOUS_PAGE_SIZE

    async def search(self, client: ApiClient, query: str, limit: int) -> list[SearchResult]:
        found = SearchResults(limit)
        if found.full:
            return found
        size = min(limit, self.max_page_size)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        page = 1
        while page <= MAX_PAGE:
            params = {"q": query, "page": str(page), "page_size": str(size)}
            if self.license_type:
                params["license_type"] = self.license_type
            answer = await client.get_json(self.endpoint, params, query, headers=headers)
            if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
                raise SourceError(self.name, query, "the answer has no results list")
            items = answer["results"]
            for item in items:
                if found.add(result_of(item) if isinstance(item, dict) else None):
                    return found
            page_count = int_or_none(answer.get("page_count"))
            if len(items) < size or (page_count is not None and page >= page_count):
                break
            page += 1
        return found
