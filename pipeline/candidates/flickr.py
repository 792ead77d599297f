"""Flickr: ``flickr.photos.search`` through the REST API (needs an API key).

    GET {api}/services/rest/?method=flickr.photos.search&api_key=K&text=Q&license=L
        &sort=relevance&content_type=1&media=photos&extras=url_o,url_c,url_z,o_dims,license,owner_name
        &per_page=N&page=P&format=json&nojsoncallback=1

The answer is ``{"photos": {page, pages, perpage, total, photo: [...]}, "stat": "ok"}``; a
failure is HTTP 200 with ``{"stat": "fail", "code": N, "message": "..."}`` and raises
``SourceError`` naming the code and message. Flickr's passing outages are retried first, as
the Flickr Foundation's own client does (Flickr-Foundation/flickr-photos-api,
``src/flickr_api/retrying.py``): code 105 "Service currently unavailable" (documented for
every method), code 201 "Sorry, the Flickr API service is not currently available." and the
same message under other codes (they have seen it with code 0), matched on the message.

Limits: ``per_page`` <= 500; a search gives only its first 4,000 results (later pages
repeat earlier ones), so no page starting past 4,000 is asked for; 3,600 calls an hour per
key, hence PER_SECOND = 1.

``url`` is ``url_c`` (800 px on the long side) when Flickr has that size, else ``url_z``
(640 px), else ``url_o`` (the original, when its owner allows), else the 640-px URL built
from ``server``, ``id`` and ``secret``. ``width``/``height`` are that size's; ``mime`` is
JPEG for the sized copies and follows the original's extension for ``url_o``.

``license`` is Flickr's numeric licence id mapped to a name and deed URL (``LICENSES``, as
``flickr.photos.licenses.getInfo`` lists them: 0-10, plus 11-16 for the CC 4.0 licences Flickr
added on 2025-06-18; checked against that method's answer of 2025-06-19 recorded in
Flickr-Foundation/flickr-photos-api, ``tests/fixtures/cassettes/TestLicenseMethods.test_get_licenses.yml``).
The default filter is every licence but 0 (all rights reserved), 4.0 ones included.
"""

from __future__ import annotations

from typing import Any

from .search import ApiClient, SearchResult, SearchResults, SourceError, int_or_none

DEFAULT_API = "https://api.flickr.com"
PER_SECOND = 1.0
MAX_PER_PAGE = 500
MAX_RESULTS = 4000
EXTRAS = "url_o,url_c,url_z,o_dims,license,owner_name"
RETRY_CODES = frozenset({105, 201})  # "Service currently unavailable"; "... not currently available."
RETRY_MESSAGE = "not currently available"

# id -> (name, deed URL), after flickr.photos.licenses.getInfo.
LICENSES: dict[int, tuple[str, str | None]] = {
    0: ("All Rights Reserved", None),
    1: ("CC BY-NC-SA 2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    2: ("CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
    3: ("CC BY-NC-ND 2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    4: ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"),
    5: ("CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
    6: ("CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/"),
    7: ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    8: ("United States Government Work", "https://www.usa.gov/government-copyright"),
    9: ("CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    10: ("Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
    11: ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    12: ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    13: ("CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    14: ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    15: ("CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    16: ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
}
DEFAULT_LICENSE = ",".join(str(i) for i in LICENSES if i != 0)
EXTENSION_MIMES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}


def _retry_reason(answer: Any) -> str | None:
    """Why a failure answer is worth another try (an outage of Flickr's), or None."""
    if not isinstance(answer, dict) or answer.get("stat") != "fail":
        return None
    message = str(answer.get("message") or "")
    if int_or_none(answer.get("code")) in RETRY_CODES or RETRY_MESSAGE in message.lower():
        return f"code {answer.get('code')}: {message}"
    return None


def result_of(photo: dict) -> SearchResult | None:
    """The search result for one photo of the answer, or None when no URL can be had."""
    for size in ("c", "z", "o"):
        url = photo.get(f"url_{size}")
        if url:
            width, height = photo.get(f"width_{size}"), photo.get(f"height_{size}")
            if size == "o":
                width, height = width or photo.get("o_width"), height or photo.get("o_height")
                mime = EXTENSION_MIMES.get(url.rsplit(".", 1)[-1].lower(), None)
            else:
                mime = "image/jpeg"
            break
    else:
        if not (photo.get("server") and photo.get("id") and photo.get("secret")):
            return None
        url = f"https://live.staticflickr.com/{photo['server']}/{photo['id']}_{photo['secret']}_z.jpg"
        width = height = None
        mime = "image/jpeg"
    license_id = int_or_none(photo.get("license"))
    name, deed = (
        LICENSES.get(license_id, (f"flickr licence {photo.get('license')}", None))
        if license_id is not None
        else (None, None)
    )
    title = photo.get("title")
    return SearchResult(
        url=url,
        source_id=str(photo["id"]) if photo.get("id") is not None else None,
        title=title if isinstance(title, str) and title else None,
        creator=photo.get("ownername") or photo.get("owner") or None,
        license=name,
        license_url=deed,
        width=int_or_none(width),
        height=int_or_none(height),
        mime=mime,
    )


class Flickr:
    """Flickr photo search, filtered by licence (default: all but all-rights-reserved)."""

    name = "flickr"

    def __init__(self, api_key: str, license: str = DEFAULT_LICENSE, api: str = DEFAULT_API):
        if not api_key:
            raise ValueError("Flickr needs an API key")
        self.api_key = api_key
        self.license = license
        self.endpoint = api.rstrip("/") + "/services/rest/"

    async def search(self, client: ApiClient, query: str, limit: int) -> list[SearchResult]:
        limit = min(limit, MAX_RESULTS)
        results = SearchResults(limit)
        if results.full:
            return results
        per_page = min(limit, MAX_PER_PAGE)
        page = 1
        while (page - 1) * per_page < MAX_RESULTS:
            params = {
                "method": "flickr.photos.search",
                "api_key": self.api_key,
                "text": query,
                "license": self.license,
                "sort": "relevance",
                "content_type": "1",
                "media": "photos",
                "extras": EXTRAS,
                "per_page": str(per_page),
                "page": str(page),
                "format": "json",
                "nojsoncallback": "1",
            }
            answer = await client.get_json(self.endpoint, params, query, retry_when=_retry_reason)
            if not isinstance(answer, dict):
                raise SourceError(self.name, query, "the answer is not a JSON object")
            if answer.get("stat") != "ok":
                raise SourceError(self.name, query, f"code {answer.get('code')}: {answer.get('message')}")
            photos = answer.get("photos") or {}
            batch = photos.get("photo") or []
            for photo in batch:
                if results.add(result_of(photo) if isinstance(photo, dict) else None):
                    return results
            pages = int_or_none(photos.get("pages"))
            # A page may come back short (Flickr drops photos it may not show) with more after
            # it, so only an empty page or the last one ends the search.
            if not batch or (pages is not None and page >= pages):
                break
            page += 1
        return results
