"""Local stand-ins for the search APIs the candidate sources read, answering in each API's
own JSON shape from a deterministic fake index.

Each fake (``FakeCommons``, ``FakeOpenverse``, ``FakeFlickr``) holds ``total`` results per
query (URLs unique per query), pages them as the real service does, can be switched to an
error answer or to rate-limit answers, and records every request it gets (path, query
parameters, headers and the ``time.monotonic()`` it arrived) in ``requests``.
``fake.app()`` is the ``aiohttp.web.Application``; ``serve(fake)`` runs it on 127.0.0.1 at
an ephemeral port and yields the base URL to give an adapter as ``api``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    time: float


class FakeApi:
    """What the fakes share: the request record and the HTTP 429 answers."""

    path = "/"

    def __init__(self, total: int = 120, too_many: int = 0, retry_after: str | None = "1"):
        self.total = total
        self.too_many = too_many  # answer this many requests first with HTTP 429
        self.retry_after = retry_after  # their Retry-After header (None: none sent)
        self.requests: list[Recorded] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.path, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.path, dict(request.query), dict(request.headers), time.monotonic()))
        if self.too_many > 0:
            self.too_many -= 1
            return self.throttled()
        return self.answer(request)

    def throttled(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return web.Response(status=429, text="Too Many Requests", headers=headers)

    def answer(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests, as the server measured them."""
        times = [r.time for r in self.requests]
        return [b - a for a, b in zip(times, times[1:])]


@asynccontextmanager
async def serve(fake: FakeApi) -> AsyncIterator[str]:
    """Run ``fake`` on 127.0.0.1 (ephemeral port) for the block; yields its base URL."""
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _seed(query: str) -> int:
    return zlib.crc32(query.encode())


# --- Wikimedia Commons: MediaWiki Action API, formatversion=2 ---------------------------------


class FakeCommons(FakeApi):
    """``/w/api.php?action=query&generator=search&prop=imageinfo``.

    The index for a search text holds ``total`` files; the 10n+3rd are SVG drawings, which a
    ``filetype:bitmap`` search leaves out. Others: 10n+5 are 400 px wide, narrower than any
    thumbnail asked for here (MediaWiki does not upscale: their ``thumburl`` is the original),
    10n+7 are TIFFs (JPEG thumbnails), every 4th is public domain (no LicenseUrl). Pages come
    back ordered by ``pageid``, not by ``index``.

    Thumbnails come in Wikimedia's standard widths only (``THUMB_STEPS``, $wgThumbnailSteps as
    https://www.mediawiki.org/wiki/Common_thumbnail_sizes lists it): ``iiurlwidth`` between two
    steps gets the next step up, as that page says production serves it; no ``iiurlwidth``, no
    ``thumburl``.
    """

    path = "/w/api.php"
    MAX_LIMIT = 50
    THUMB_STEPS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)

    def __init__(
        self,
        total: int = 120,
        too_many: int = 0,
        retry_after: str | None = "1",
        error: tuple[str, str] | None = None,
        throttle: int = 0,
        throttle_code: str = "maxlag",
        split_imageinfo: bool = False,
    ):
        super().__init__(total, too_many, retry_after)
        self.error = error  # (code, info): every request answers this error
        self.throttle = throttle  # answer this many requests with a maxlag/ratelimited error
        self.throttle_code = throttle_code
        self.split_imageinfo = split_imageinfo  # each batch's imageinfo comes in two answers

    @staticmethod
    def text_of(gsrsearch: str) -> tuple[str, bool]:
        words = gsrsearch.split()
        bitmap = "filetype:bitmap" in words
        return " ".join(w for w in words if w != "filetype:bitmap"), bitmap

    @classmethod
    def served_width(cls, asked: int) -> int:
        """The standard width a request for an ``asked``-px-wide thumbnail gets."""
        return next((step for step in cls.THUMB_STEPS if step >= asked), cls.THUMB_STEPS[-1])

    def file(self, text: str, i: int, thumb_width: int | None = 500) -> dict:
        """The i-th file (0-based, unfiltered) of the index for ``text``: a page with imageinfo,
        with the thumbnail asked for ``thumb_width`` px wide (None: none asked for)."""
        kind = "svg" if i % 10 == 3 else "tif" if i % 10 == 7 else "jpg"
        name = f"{text.title()} {i:04d}.{kind}"
        title = f"File:{name}"
        key = name.replace(" ", "_")
        h = f"{_seed(key):08x}"
        url = f"https://upload.wikimedia.org/wikipedia/commons/{h[0]}/{h[:2]}/{quote(key)}"
        width, height = (400, 300) if i % 10 == 5 else (4000 + i, 3000)
        mime = {"jpg": "image/jpeg", "tif": "image/tiff", "svg": "image/svg+xml"}[kind]
        thumb_size = None if thumb_width is None else self.served_width(thumb_width)
        if thumb_size is None:
            thumb = tw = th = tmime = None
        elif width <= thumb_size and kind != "svg":
            thumb, tw, th, tmime = url, width, height, mime
        else:
            suffix = {"jpg": "", "tif": ".jpg", "svg": ".png"}[kind]
            thumb = (
                f"https://upload.wikimedia.org/wikipedia/commons/thumb/{h[0]}/{h[:2]}/{quote(key)}"
                f"/{thumb_size}px-{quote(key)}{suffix}"
            )
            tw, th = thumb_size, round(height * thumb_size / width)
            tmime = {"jpg": "image/jpeg", "tif": "image/jpeg", "svg": "image/png"}[kind]
        public_domain = i % 4 == 0
        extmetadata = {
            "DateTime": {"value": "2021-05-01 10:00:00", "source": "mediawiki-metadata", "hidden": ""},
            "ObjectName": {"value": name.rsplit(".", 1)[0], "source": "mediawiki-metadata", "hidden": ""},
            "Artist": {
                "value": f'<a href="//commons.wikimedia.org/wiki/User:Ann_Example{i}" '
                f'title="User:Ann Example{i}">Ann &amp; Bo\n Example{i}</a>',
                "source": "commons-desc-page",
            },
            "LicenseShortName": {
                "value": "Public domain" if public_domain else "CC BY-SA 4.0",
                "source": "commons-desc-page",
                "hidden": "",
            },
            "UsageTerms": {
                "value": "Public domain" if public_domain else "Creative Commons Attribution-Share Alike 4.0",
                "source": "commons-desc-page",
                "hidden": "",
            },
        }
        if not public_domain:
            extmetadata["LicenseUrl"] = {
                "value": "https://creativecommons.org/licenses/by-sa/4.0",
                "source": "commons-desc-page",
                "hidden": "",
            }
        info = {
            "size": 1_000_000 + i,
            "width": width,
            "height": height,
            **({"thumburl": thumb, "thumbwidth": tw, "thumbheight": th, "thumbmime": tmime} if thumb else {}),
            "url": url,
            "descriptionurl": f"https://commons.wikimedia.org/wiki/{quote(title.replace(' ', '_'))}",
            "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={100000 + i}",
            "sha1": f"{_seed(title):040x}"[-40:],
            "mime": mime,
            "extmetadata": extmetadata,
        }
        return {
            "pageid": 1000 + (_seed(title) % 900_000),
            "ns": 6,
            "title": title,
            "imagerepository": "local",
            "imageinfo": [info],
        }

    def index(self, gsrsearch: str, thumb_width: int | None = 500) -> list[dict]:
        text, bitmap = self.text_of(gsrsearch)
        files = [self.file(text, i, thumb_width) for i in range(self.total)]
        return [f for f in files if not (bitmap and f["imageinfo"][0]["mime"] == "image/svg+xml")]

    def answer(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if self.error:
            code, info = self.error
            return _json(
                {
                    "error": {
                        "code": code,
                        "info": info,
                        "docref": "See https://commons.wikimedia.org/w/api.php for API usage.",
                    },
                    "servedby": "mw-api-ext.eqiad.main-1",
                }
            )
        if self.throttle > 0:
            self.throttle -= 1
            if self.throttle_code == "maxlag":
                body = {
                    "error": {
                        "code": "maxlag",
                        "info": "Waiting for 10.64.16.22: 6 seconds lagged.",
                        "host": "10.64.16.22",
                        "lag": 6,
                        "type": "db",
                        "docref": "See https://commons.wikimedia.org/w/api.php for API usage.",
                    },
                    "servedby": "mw-api-ext.eqiad.main-1",
                }
                headers = {"X-Database-Lag": "6"}
            else:
                body = {
                    "error": {
                        "code": "ratelimited",
                        "info": "As an anti-abuse measure, you are limited from performing this "
                        "action too many times in a short space of time.",
                        "docref": "See https://commons.wikimedia.org/w/api.php for API usage.",
                    }
                }
                headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = self.retry_after
            return _json(body, headers=headers)
        if q.get("action") != "query" or q.get("generator") != "search" or "gsrsearch" not in q:
            return _json({"error": {"code": "badvalue", "info": "Unrecognized or missing parameters."}})
        if q.get("format") != "json" or q.get("formatversion") != "2":
            return _json({"error": {"code": "badvalue", "info": "This fake only speaks formatversion=2 JSON."}})
        body: dict = {}
        asked = int(q.get("gsrlimit", "10"))
        limit = min(asked, self.MAX_LIMIT)
        if asked > self.MAX_LIMIT:
            body["warnings"] = {
                "search": {"warnings": f"gsrlimit may not be over {self.MAX_LIMIT} (set to {asked}) for users"}
            }
        offset = int(q.get("gsroffset", "0"))
        files = self.index(q["gsrsearch"], int(q["iiurlwidth"]) if q.get("iiurlwidth", "").isdigit() else None)
        batch = []
        for position, page in enumerate(files[offset : offset + limit]):
            batch.append({**page, "index": offset + position + 1})
        batch.sort(key=lambda p: p["pageid"])
        more = offset + limit < len(files)
        next_continue = {"gsroffset": offset + limit, "continue": "gsroffset||"} if more else None
        if self.split_imageinfo and len(batch) > 1:
            # Batch order for imageinfo continuation is by title; the first answer carries
            # imageinfo for the first half of the titles, the second for the rest.
            titles = sorted(p["title"] for p in batch)
            cut = titles[len(titles) // 2]
            if "iicontinue" not in q:
                pages = [p if p["title"] < cut else {k: v for k, v in p.items() if k != "imageinfo"} for p in batch]
                cont = {
                    "iicontinue": f"{cut.removeprefix('File:').replace(' ', '_')}|20210501100000",
                    "continue": "gsroffset||",
                }
                if offset:
                    cont["gsroffset"] = offset
                return _json({**body, "continue": cont, "query": {"pages": pages}})
            batch = [p if p["title"] >= cut else {k: v for k, v in p.items() if k != "imageinfo"} for p in batch]
        body["batchcomplete"] = True
        if next_continue:
            body["continue"] = next_continue
        if batch:
            body["query"] = {"pages": batch}
        return _json(body)


# --- Openverse: /v1/images/ -------------------------------------------------------------------


class FakeOpenverse(FakeApi):
    """``/v1/images/?q=&page=&page_size=&license_type=`` and ``POST /v1/auth_tokens/token/``.

    Anonymous clients get at most 20 per page (401 beyond) and 20 pages (400 beyond); a
    client with ``Authorization: Bearer <token>`` may ask 500 a page. The 9n+4th results are
    SVGs; licences cycle by, by-sa, cc0, pdm, by-nc (``license_type=commercial`` leaves out
    by-nc).

    As the real service: a query reaches its first ``result_cap`` (240) works, token or not,
    ``result_count`` and ``page_count`` say so, and a page past them is refused with
    ``past_cap_status``. After ``daily`` search requests (None: no cap) every request answers
    429 with ``Retry-After: day_wait`` (hours) until ``new_day()``. The token endpoint takes
    the form-encoded client credentials of ``clients`` and issues tokens that serve
    ``token_uses`` search requests (None: any number), then expire: an expired or unknown
    token counts as anonymous, so a page over 20 answers 401 with ``WWW-Authenticate: Bearer
    error="invalid_token"``. ``token`` never expires. Token requests are recorded in
    ``token_requests``.
    """

    path = "/v1/images/"
    ANONYMOUS_PAGE_SIZE = 20
    TOKEN_PAGE_SIZE = 500
    MAX_PAGE = 20
    LICENSES = [
        ("by", "4.0", "https://creativecommons.org/licenses/by/4.0/"),
        ("by-sa", "2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
        ("cc0", "1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("pdm", "1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
        ("by-nc", "3.0", "https://creativecommons.org/licenses/by-nc/3.0/"),
    ]

    def __init__(
        self,
        total: int = 120,
        too_many: int = 0,
        retry_after: str | None = "1",
        error: tuple[int, str] | None = None,
        token: str = "good-token",
        result_cap: int | None = 240,
        past_cap_status: int = 400,
        counts_capped: bool = True,
        daily: int | None = None,
        day_wait: str = "36000",
        clients: dict[str, str] | None = None,
        token_uses: int | None = None,
    ):
        super().__init__(total, too_many, retry_after)
        self.error = error  # (status, detail): every request answers this
        self.token = token  # a bearer token this server always accepts
        self.result_cap = result_cap
        self.past_cap_status = past_cap_status
        self.counts_capped = counts_capped  # False: result_count and page_count ignore the window
        self.daily = daily
        self.day_wait = day_wait
        self.served_today = 0
        self.clients = clients or {}  # client_id -> client_secret
        self.token_uses = token_uses
        self.issued: dict[str, float] = {}  # token -> search requests it may still serve
        self.token_requests: list[Recorded] = []

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/auth_tokens/token/", self._token)
        return app

    def new_day(self) -> None:
        """The daily cap's window starts again."""
        self.served_today = 0

    async def _token(self, request: web.Request) -> web.Response:
        """django-oauth-toolkit's client-credentials grant, as Openverse's ``TokenView``
        serves it: form-encoded only, 401 ``invalid_client`` for unknown credentials."""
        form = dict(await request.post())
        self.token_requests.append(Recorded(request.path, form, dict(request.headers), time.monotonic()))
        if request.content_type != "application/x-www-form-urlencoded":
            return _json({"error": "unsupported_grant_type"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, status=400)
        if not form.get("client_id") or self.clients.get(form["client_id"]) != form.get("client_secret"):
            return _json({"error": "invalid_client"}, status=401)
        token = f"token-{len(self.token_requests)}"
        self.issued[token] = math.inf if self.token_uses is None else self.token_uses
        return _json({"access_token": token, "expires_in": 36000, "token_type": "Bearer", "scope": "read write"})

    def _authenticated(self, auth: str | None) -> bool:
        """Whether the request carries a live token; a live issued token serves one request less."""
        token = (auth or "").removeprefix("Bearer ")
        if auth is None or not token:
            return False
        if token == self.token:
            return True
        if self.issued.get(token, 0) > 0:
            self.issued[token] -= 1
            return True
        return False

    def throttled(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return _json(
            {"detail": f"Request was throttled. Expected available in {self.retry_after or 60} seconds."},
            status=429,
            headers=headers,
        )

    def result(self, query: str, i: int) -> dict:
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"openverse/{query}/{i}"))
        filetype = "svg" if i % 9 == 4 else [None, "jpg", "png", "jpg"][i % 4]
        code, version, deed = self.LICENSES[i % len(self.LICENSES)]
        ext = filetype or "jpg"
        provider = ["flickr", "wikimedia", "smithsonian"][i % 3]
        return {
            "id": ident,
            "title": f"{query} number {i}",
            "indexed_on": "2023-03-01T10:00:00Z",
            "foreign_landing_url": f"https://www.{provider}.example/photos/{ident}",
            "url": f"https://images.{provider}.example/{quote(query)}/{i}.{ext}",
            "creator": None if i % 10 == 9 else f"creator {i}",
            "creator_url": f"https://www.{provider}.example/people/{i}",
            "license": code,
            "license_version": version,
            "license_url": deed,
            "provider": provider,
            "source": provider,
            "category": "photograph",
            "filesize": None if i % 2 else 200_000 + i,
            "filetype": filetype,
            "tags": [{"name": query, "accuracy": None}],
            "attribution": f'"{query} number {i}" by creator {i} is licensed under CC {code.upper()} {version}.',
            "fields_matched": ["title"],
            "mature": False,
            "height": 480 + i,
            "width": 640 + i,
            "thumbnail": f"https://api.openverse.org/v1/images/{ident}/thumb/",
            "detail_url": f"https://api.openverse.org/v1/images/{ident}/",
            "related_url": f"https://api.openverse.org/v1/images/{ident}/related/",
            "unstable__sensitivity": [],
        }

    def index(self, query: str, license_type: str | None) -> list[dict]:
        results = [self.result(query, i) for i in range(self.total)]
        if license_type == "commercial":
            results = [r for r in results if "nc" not in r["license"]]
        return results

    def answer(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if self.error:
            status, detail = self.error
            return _json({"detail": detail}, status=status)
        if self.daily is not None and self.served_today >= self.daily:
            return _json(
                {"detail": f"Request was throttled. Expected available in {self.day_wait} seconds."},
                status=429,
                headers={"Retry-After": self.day_wait},
            )
        self.served_today += 1
        auth = request.headers.get("Authorization")
        authed = self._authenticated(auth)
        try:
            page, size = int(q.get("page", "1")), int(q.get("page_size", "20"))
        except ValueError:
            return _json({"detail": {"page": ["A valid integer is required."]}}, status=400)
        max_size = self.TOKEN_PAGE_SIZE if authed else self.ANONYMOUS_PAGE_SIZE
        if size > max_size or size < 1:
            expired = ',error="invalid_token",error_description="The access token has expired."' if auth else ""
            return _json(
                {"detail": f"Ensure this value is less than or equal to {max_size}."},
                status=401 if not authed else 400,
                headers={"WWW-Authenticate": f'Bearer realm="api"{expired}'} if not authed else None,
            )
        if page > self.MAX_PAGE or page < 1:
            return _json(
                {"detail": f"Pagination depth exceeded: page must be between 1 and {self.MAX_PAGE}."}, status=400
            )
        results = self.index(q.get("q", ""), q.get("license_type"))
        count = min(len(results), 10_000 if self.result_cap is None else self.result_cap)
        if page > 1 and (page - 1) * size >= count:
            return _json(
                {"detail": {"page": [f"Ensure this value is less than or equal to {math.ceil(count / size)}."]}},
                status=self.past_cap_status,
            )
        shown = count if self.counts_capped else min(len(results), 10_000)
        return _json(
            {
                "result_count": shown,
                "page_count": min(math.ceil(shown / size), self.MAX_PAGE),
                "page_size": size,
                "page": page,
                "results": results[(page - 1) * size : min(page * size, count)],
                "warnings": [],
            }
        )


# --- Flickr: /services/rest/?method=flickr.photos.search --------------------------------------


class FakeFlickr(FakeApi):
    """``flickr.photos.search`` with ``format=json&nojsoncallback=1``.

    Photo i has licence ``i % 17`` (the ``license`` filter is honoured); 6n+1 have no 800-px
    copy (``url_c``), 6n+2 no original (``url_o``), 11n+5 no sized URL at all. ``per_page``
    over 500 is cut to 500; pages past the first 4,000 results repeat earlier ones, as
    Flickr's do.
    """

    path = "/services/rest/"
    MAX_PER_PAGE = 500
    MAX_RESULTS = 4000

    def __init__(
        self,
        total: int = 120,
        too_many: int = 0,
        retry_after: str | None = "1",
        api_key: str = "good-key",
        unavailable: int = 0,
        unavailable_as: tuple[int, str] = (105, "Service currently unavailable"),
    ):
        super().__init__(total, too_many, retry_after)
        self.api_key = api_key  # the one key this server accepts
        self.unavailable = unavailable  # answer this many requests with an outage's failure
        # (code, message) of that failure: Flickr's documented 105, or the 201 (and 0) that its
        # own client has met, "Sorry, the Flickr API service is not currently available."
        self.unavailable_as = unavailable_as

    @staticmethod
    def fail(code: int, message: str) -> web.Response:
        return _json({"stat": "fail", "code": code, "message": message})

    def photo(self, query: str, i: int) -> dict:
        ident = str(52_000_000_000 + (_seed(query) % 100_000) * 100_000 + i)
        secret, osecret, server = f"{_seed(ident + 's'):08x}"[:10], f"{_seed(ident + 'o'):08x}", "65535"
        photo: dict = {
            "id": ident,
            "owner": f"{10_000_000 + i}@N0{i % 8}",
            "secret": secret,
            "server": server,
            "farm": 66,
            "title": f"{query} photo {i}" if i % 7 else "",
            "ispublic": 1,
            "isfriend": 0,
            "isfamily": 0,
            "license": str(i % 17),
            "ownername": f"owner {i}" if i % 5 != 3 else "",
        }
        base = f"https://live.staticflickr.com/{server}/{ident}"
        landscape = i % 2 == 0
        ow, oh = (4000, 3000) if landscape else (3000, 4000)
        photo.update(o_width=str(ow), o_height=str(oh))
        if i % 11 == 5:
            return photo
        if i % 6 != 1:
            photo.update(
                url_c=f"{base}_{secret}_c.jpg", height_c=600 if landscape else 800, width_c=800 if landscape else 600
            )
        photo.update(
            url_z=f"{base}_{secret}_z.jpg", height_z=480 if landscape else 640, width_z=640 if landscape else 480
        )
        if i % 6 != 2:
            fmt = "png" if i % 5 == 0 else "jpg"
            photo.update(url_o=f"{base}_{osecret}_o.{fmt}", height_o=oh, width_o=ow)
        return photo

    def index(self, query: str, licenses: set[int] | None) -> list[dict]:
        photos = [self.photo(query, i) for i in range(self.total)]
        return [p for p in photos if licenses is None or int(p["license"]) in licenses]

    def answer(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("format") != "json" or q.get("nojsoncallback") != "1":
            return web.Response(text="jsonFlickrApi({})", content_type="text/javascript")
        if q.get("api_key") != self.api_key:
            return self.fail(100, "Invalid API Key (Key has invalid format)")
        if q.get("method") != "flickr.photos.search":
            return self.fail(112, f'Method "{q.get("method")}" not found')
        if self.unavailable > 0:
            self.unavailable -= 1
            return self.fail(*self.unavailable_as)
        if not q.get("text"):
            return self.fail(
                3, "Parameterless searches have been disabled. Please use flickr.photos.getRecent instead."
            )
        licenses = {int(x) for x in q["license"].split(",")} if q.get("license") else None
        photos = self.index(q["text"], licenses)
        per_page = min(int(q.get("per_page", "100")), self.MAX_PER_PAGE)
        page = max(1, int(q.get("page", "1")))
        start = ((page - 1) * per_page) % self.MAX_RESULTS if photos else 0
        return _json(
            {
                "photos": {
                    "page": page,
                    "pages": math.ceil(len(photos) / per_page),
                    "perpage": per_page,
                    "total": len(photos),
                    "photo": photos[start : start + per_page],
                },
                "stat": "ok",
            }
        )


@contextlib.contextmanager
def serving(fake: FakeApi) -> Iterator[str]:
    """``serve`` on a background thread, for code that runs its own event loop (a stage)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    context = serve(fake)
    try:
        yield asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result()
    finally:
        asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
