"""Wikimedia Commons: full-text search of the File: namespace through the MediaWiki Action API.

One request asks ``generator=search`` for a batch of files and ``prop=imageinfo`` for each
file's URLs, size, MIME type and licence metadata (``extmetadata``)::

    GET {api}/w/api.php?action=query&format=json&formatversion=2&generator=search
        &gsrsearch=Q filetype:bitmap&gsrnamespace=6&gsrlimit=N&gsroffset=...
        &prop=imageinfo&iiprop=url|size|mime|thumbmime|sha1|extmetadata&iiurlwidth=500&maxlag=5

Choices:

* The search adds ``filetype:bitmap`` (a CirrusSearch keyword: JPEG, PNG, GIF, TIFF, WebP...),
  so that pages are not spent on SVG drawings, PDFs, audio and video; the MIME check on each
  answer stays as a safety net.
* ``url`` is the 500-px-wide thumbnail (``thumburl``) when there is one, else the original:
  a dataset wants pictures of a few hundred pixels, and originals are often tens of
  megapixels. 500 is one of Wikimedia's standard thumbnail widths (20, 40, 60, 120, 250, 330,
  500, 960, 1280, 1920, 3840: ``$wgThumbnailSteps``, https://www.mediawiki.org/wiki/Common_thumbnail_sizes),
  which its servers keep rendered; any other width is rendered and stored for us alone, or
  served as the next step up. 500 is also the download's default MAX_SIDE: it is the longer
  side of a landscape thumbnail and shorter than a portrait one's, so nothing the download
  keeps is lost, where 960 would fetch about 3.7 times the pixels to throw them away.
  MediaWiki does not upscale: a file narrower than 500 px gets its original as
  ``thumburl``. ``width``/``height``/``mime`` describe the URL we return (``thumbwidth``,
  ``thumbheight``, ``thumbmime`` for a thumbnail: a TIFF's thumbnail is a JPEG);
  ``bytes`` is the file's ``size`` only when the URL is the original, since a thumbnail's
  size is not known in advance.
* ``source_id`` and ``title`` are the page title (``File:Name.jpg``); ``creator`` is the
  ``Artist`` field without its HTML; ``license`` is ``LicenseShortName`` (``CC BY-SA 4.0``).
* ``maxlag=5`` asks to be refused while the database replicas lag, as Wikimedia's API
  etiquette asks of automated clients; a ``maxlag`` or ``ratelimited`` error (HTTP 200 with
  an ``error`` object) is retried after ``Retry-After`` (or a backoff). Any other ``error``
  raises ``SourceError`` with its code and info.
* Every request names the operator's contact in its User-Agent (``--contact``,
  ``pipeline.user_agent``), as Wikimedia's User-Agent policy asks of automated clients; the
  candidates stage warns when there is none.
* PER_SECOND is 1: Wikimedia asks API clients to send requests in series, not in parallel,
  and each of ours is a search plus up to 50 thumbnail and metadata look-ups, which is
  expensive on their side; one a second stays well within what they tolerate.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from .search import ApiClient, SearchResult, SearchResults, SourceError, int_or_none

DEFAULT_API = "https://commons.wikimedia.org"
PER_SECOND = 1.0
MAX_LIMIT = 50  # gsrlimit for clients without the apihighlimits right
MAX_OFFSET = 10_000  # CirrusSearch answers no further than this into a result list
THUMB_WIDTH = 500  # a standard thumbnail width (see above)
MAXLAG = 5
IMAGE_MIMES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff"})
RETRY_CODES = frozenset({"maxlag", "ratelimited"})

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def strip_html(value: Any) -> str | None:
    """Text of an extmetadata value: tags removed, entities decoded, whitespace collapsed."""
    if not isinstance(value, str):
        return None
    text = _SPACE.sub(" ", unescape(_TAG.sub(" ", value))).strip()
    return text or None


def _meta(info: dict, key: str) -> str | None:
    field = (info.get("extmetadata") or {}).get(key)
    return strip_html(field.get("value")) if isinstance(field, dict) else None


def _retry_reason(answer: Any) -> str | None:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("code") in RETRY_CODES:
        return f"{error.get('code')}: {error.get('info', '')}".strip()
    return None


def result_of(page: dict) -> SearchResult | None:
    """The search result for one page of the answer, or None for a page that is not a usable image."""
    infos = page.get("imageinfo") or []
    if not infos or not isinstance(infos[0], dict):
        return None
    info = infos[0]
    if info.get("mime") not in IMAGE_MIMES or not info.get("url"):
        return None
    url, width, height, size, mime = info["url"], info.get("width"), info.get("height"), info.get("size"), info["mime"]
    thumb = info.get("thumburl")
    if thumb and thumb != url:
        url, width, height, size = thumb, info.get("thumbwidth"), info.get("thumbheight"), None
        mime = info.get("thumbmime") or mime
    return SearchResult(
        url=url,
        source_id=page.get("title"),
        title=page.get("title"),
        creator=_meta(info, "Artist"),
        license=_meta(info, "LicenseShortName"),
        license_url=_meta(info, "LicenseUrl"),
        width=int_or_none(width),
        height=int_or_none(height),
        bytes=int_or_none(size),
        mime=mime,
    )


class Commons:
    """Wikimedia Commons search (no key)."""

    name = "commons"

    def __init__(self, api: str = DEFAULT_API, bitmap_only: bool = True):
        self.endpoint = api.rstrip("/") + "/w/api.php"
        self.bitmap_only = bitmap_only

    def params(self, query: str, limit: int) -> dict[str, str]:
        return {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "generator": "search",
            "gsrsearch": f"{query} filetype:bitmap" if self.bitmap_only else query,
            "gsrnamespace": "6",
            "gsrlimit": str(max(1, min(limit, MAX_LIMIT))),
            "prop": "imageinfo",
            "iiprop": "url|size|mime|thumbmime|sha1|extmetadata",
            "iiurlwidth": str(THUMB_WIDTH),
            "maxlag": str(MAXLAG),
        }

    async def search(self, client: ApiClient, query: str, limit: int) -> list[SearchResult]:
        results = SearchResults(limit)
        if results.full:
            return results
        base = self.params(query, limit)
        cont: dict[str, Any] = {}
        batch: dict[str, dict] = {}  # pages of the current generator batch, by title
        while True:
            answer = await client.get_json(
                self.endpoint, {**base, **{k: str(v) for k, v in cont.items()}}, query, retry_when=_retry_reason
            )
            if not isinstance(answer, dict):
                raise SourceError(self.name, query, "the answer is not a JSON object")
            error = answer.get("error")
            if error:
                if isinstance(error, dict):
                    raise SourceError(self.name, query, f"{error.get('code')}: {error.get('info')}")
                raise SourceError(self.name, query, str(error))
            # A batch's imageinfo can come in several answers (continue.iicontinue, no
            # batchcomplete): merge the pages until the batch is complete, then rank them.
            for page in (answer.get("query") or {}).get("pages") or []:
                title = page.get("title")
                if title in batch:
                    if page.get("imageinfo") and not batch[title].get("imageinfo"):
                        batch[title]["imageinfo"] = page["imageinfo"]
                else:
                    batch[title] = page
            previous, cont = cont, answer.get("continue") or {}
            if cont and cont == previous:
                raise SourceError(self.name, query, f"the API sent the same continue block twice: {cont}")
            if "batchcomplete" in answer or not cont:
                for page in sorted(batch.values(), key=lambda p: p.get("index", 0)):
                    if results.add(result_of(page)):
                        return results
                batch = {}
            if not cont:
                return results
            offset = int_or_none(cont.get("gsroffset"))
            if offset is not None and offset >= MAX_OFFSET and not batch:
                return results
