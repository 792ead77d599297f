"""Openverse: openly licensed images gathered from Flickr, Wikimedia, museums and others.

    GET {api}/v1/images/?q=Q&page=P&page_size=S[&license_type=commercial]
    Authorization: Bearer TOKEN          (optional)

Limits assumed (Openverse's API code, WordPress/openverse ``api/conf/settings/misc.py`` and
``rest_framework.py``, and its announcements):

* anonymous: ``page_size`` <= 20 (a larger one is refused with 401) and ``page`` <= 20; about
  20 requests a minute and 100 to 200 a day, hence PER_SECOND = 1/3. The stage uses PER_SECOND
  whether or not there is a token: registered applications may go faster, but one request
  every 3 s is always allowed.
* with a token: ``page_size`` <= 500, 10,000 requests a day.
* a query reaches at most its first 240 works, token or not ("authenticated users are subject
  to the same limit of total works available for a query, but may request larger individual
  pages", the API's auth documentation; WordPress/openverse#4474): ``result_count`` and
  ``page_count`` are cut to it, and a page past it is refused (``PAST_THE_CAP``). Paging stops
  at ``page_count``, at page 20, at a page with fewer results than asked for, or at such a
  refusal after the first page, keeping the query's hits so far.

Daily cap: past it, the API answers 429 with a ``Retry-After`` of hours. ``ApiClient`` then
raises ``SourceStopped`` and the candidates stage ends gracefully (see ``stage.py``).

Tokens: an application's ``client_id`` and ``client_secret`` (``OPENVERSE_CLIENT_ID``,
``OPENVERSE_CLIENT_SECRET``) buy an access token from ``POST {api}/v1/auth_tokens/token/``
(OAuth2 client credentials, RFC 6749 section 4.4; form-encoded ``grant_type``, ``client_id``,
``client_secret``; the answer has ``access_token`` and ``expires_in``, 12 hours by default,
``ACCESS_TOKEN_EXPIRE_SECONDS`` in ``api/conf/settings/oauth2.py``). The API treats a request
with an expired or unknown token as anonymous (WordPress/openverse#3626), so one with
``page_size`` > 20 gets 401 with ``WWW-Authenticate: Bearer error="invalid_token",
error_description="The access token has expired."``. With credentials the adapter gets a token before its first
search and a new one on such a 401, once, then retries the page; with a bare token
(``OPENVERSE_TOKEN``) a 401 raises ``SourceStopped``: the user must give a new token.

The answer is ``{result_count, page_count, page_size, page, results: [...]}``. ``license`` is
Openverse's code and version (``by-sa 4.0``, ``cc0 1.0``, ``pdm 1.0``). ``mime`` comes from
``filetype`` (``jpg`` -> ``image/jpeg``); results whose ``filetype`` is known but not a bitmap
(``svg``) are skipped. Errors are HTTP 4xx with ``{"detail": ...}``, which ``ApiClient`` puts
in the ``SourceError``; 429 (with ``Retry-After``) is retried by ``ApiClient``.
"""

from __future__ import annotations

from typing import Any

from .search import ApiClient, SearchResult, SearchResults, SourceError, SourceStopped, int_or_none

DEFAULT_API = "https://api.openverse.org"
PER_SECOND = 1 / 3
ANONYMOUS_PAGE_SIZE = 20
TOKEN_PAGE_SIZE = 500
MAX_PAGE = 20
# A page past a query's result window is refused: 400 (a page out of range), 401 for an
# anonymous client (a deeper window needs authentication), or Django REST framework's 404
# "Invalid page." Which one Openverse sends is not documented; any of them after the first
# page ends the query with the hits so far.
PAST_THE_CAP = frozenset({400, 401, 404})
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
    """Openverse image search; anonymous, with an access token for larger pages, or with an
    application's client credentials, which keep a token fresh."""

    name = "openverse"

    def __init__(
        self,
        token: str | None = None,
        license_type: str | None = None,
        api: str = DEFAULT_API,
        client_id: str | None = None,
        client_secret: str | None = None,
    ):
        if bool(client_id) != bool(client_secret):
            raise ValueError("Openverse client credentials need both a client id and a client secret")
        self.token = token or None
        self.license_type = license_type or None
        self.credentials = {"client_id": client_id, "client_secret": client_secret} if client_id else None
        api = api.rstrip("/")
        self.endpoint = api + "/v1/images/"
        self.token_endpoint = api + "/v1/auth_tokens/token/"

    @property
    def max_page_size(self) -> int:
        return TOKEN_PAGE_SIZE if self.token or self.credentials else ANONYMOUS_PAGE_SIZE

    async def _renew_token(self, client: ApiClient, query: str) -> None:
        """A new access token from the client credentials (OAuth2 client credentials grant)."""
        form = {"grant_type": "client_credentials", **self.credentials}
        try:
            answer = await client.post_form(self.token_endpoint, form, query)
        except SourceStopped:
            raise
        except SourceError as e:
            message = f"no access token for these client credentials from {self.token_endpoint}: {e.answer}"
            raise SourceError(self.name, query, message) from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(self.name, query, "the token endpoint's answer has no access_token")
        self.token = token

    async def search(self, client: ApiClient, query: str, limit: int) -> list[SearchResult]:
        found = SearchResults(limit)
        if found.full:
            return found
        if self.credentials and not self.token:
            await self._renew_token(client, query)
        size = min(limit, self.max_page_size)
        page, renewed = 1, False
        while page <= MAX_PAGE:
            params = {"q": query, "page": str(page), "page_size": str(size)}
            if self.license_type:
                params["license_type"] = self.license_type
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
            try:
                answer = await client.get_json(self.endpoint, params, query, headers=headers)
            except SourceError as e:
                if e.status == 401 and self.token and not renewed:
                    if not self.credentials:
                        raise SourceStopped(
                            self.name,
                            query,
                            f"{e.answer}: the access token was refused (tokens expire); give a new "
                            "OPENVERSE_TOKEN, or OPENVERSE_CLIENT_ID and OPENVERSE_CLIENT_SECRET to renew it by itself",
                        ) from None
                    await self._renew_token(client, query)
                    renewed = True
                    continue
                if e.status in PAST_THE_CAP and page > 1:
                    break  # the query's result window ends here: keep what its earlier pages gave
                raise
            renewed = False
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
