"""The search adapters (commons, openverse, flickr) against local fakes of their APIs
(``api_servers``): paging, field mapping, politeness (User-Agent, page sizes, request
spacing, Retry-After) and errors."""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import pytest
from api_servers import FakeApi, FakeCommons, FakeFlickr, FakeOpenverse, serve

from pipeline import USER_AGENT
from pipeline.candidates import commons, flickr, openverse
from pipeline.candidates.search import ApiClient, SearchResult, SourceError, SourceStopped

FAST = 1000.0  # requests a second where the spacing is not what a test checks


def search(
    fake: FakeApi, make, query: str, limit: int, per_second: float = FAST, backoff: float = 0.05
) -> list[SearchResult]:
    """Run ``make(base_url).search`` against ``fake`` served locally."""

    async def main() -> list[SearchResult]:
        async with serve(fake) as base, aiohttp.ClientSession() as session:
            adapter = make(base)
            client = ApiClient(adapter.name, session, per_second, backoff=backoff)
            return await adapter.search(client, query, limit)

    return asyncio.run(main())


def failure(fake: FakeApi, make, query: str, limit: int = 10, **kw) -> SourceError:
    with pytest.raises(SourceError) as caught:
        search(fake, make, query, limit, **kw)
    return caught.value


def urls(found: list[SearchResult]) -> list[str]:
    return [h.url for h in found]


def assert_unique(found: list[SearchResult]) -> None:
    assert len(set(urls(found))) == len(found)


# --- Wikimedia Commons ---------------------------------------------------------------------------


def commons_expected(fake: FakeCommons, query: str, bitmap: bool = True) -> list[str]:
    """The URLs the adapter should give, best first: the 500-px thumbnail, SVGs left out."""
    text = f"{query} filetype:bitmap" if bitmap else query
    return [p["imageinfo"][0]["thumburl"] for p in fake.index(text) if p["imageinfo"][0]["mime"] != "image/svg+xml"]


def test_commons_pages_in_index_order():
    fake = FakeCommons(total=150)
    found = search(fake, lambda api: commons.Commons(api=api), "tench", 110)
    assert urls(found) == commons_expected(fake, "tench")[:110]
    assert_unique(found)
    # 150 files, 15 SVGs left out by filetype:bitmap: 135 bitmaps, 50 per request.
    assert [r.params.get("gsroffset") for r in fake.requests] == [None, "50", "100"]
    for r in fake.requests:
        assert r.path == "/w/api.php"
        assert r.params["gsrsearch"] == "tench filetype:bitmap"
        assert r.params["gsrlimit"] == "50" and int(r.params["gsrlimit"]) <= commons.MAX_LIMIT
        assert r.params["gsrnamespace"] == "6" and r.params["formatversion"] == "2"
        assert r.params["iiurlwidth"] == "500" and "extmetadata" in r.params["iiprop"].split("|")
        assert r.headers["User-Agent"] == USER_AGENT
    # Continuation passes the whole continue block back.
    assert fake.requests[1].params["continue"] == "gsroffset||"


def test_commons_stops_when_results_end_and_skips_non_images():
    fake = FakeCommons(total=60)
    found = search(fake, lambda api: commons.Commons(api=api, bitmap_only=False), "goldfish", 500)
    # The plain search returns SVGs too; the adapter drops them on their MIME type.
    assert urls(found) == commons_expected(fake, "goldfish", bitmap=False)
    assert len(found) == 54 and all(h.mime in commons.IMAGE_MIMES for h in found)
    assert [r.params.get("gsroffset") for r in fake.requests] == [None, "50"]
    assert fake.requests[0].params["gsrsearch"] == "goldfish"


def test_commons_fields():
    fake = FakeCommons(total=10)
    found = {h.source_id: h for h in search(fake, lambda api: commons.Commons(api=api), "great white shark", 10)}
    assert len(found) == 9  # 10 files less one SVG
    big = found["File:Great White Shark 0001.jpg"]
    info = fake.file("great white shark", 1)["imageinfo"][0]
    assert big == SearchResult(
        url=info["thumburl"],
        source_id="File:Great White Shark 0001.jpg",
        title="File:Great White Shark 0001.jpg",
        creator="Ann & Bo Example1",
        license="CC BY-SA 4.0",
        license_url="https://creativecommons.org/licenses/by-sa/4.0",
        width=500,
        height=round(3000 * 500 / 4001),
        bytes=None,
        mime="image/jpeg",
    )
    assert "/thumb/" in big.url and big.url.endswith("/500px-Great_White_Shark_0001.jpg")
    # Narrower than 500 px: the thumbnail is the original, whose size is known.
    small = found["File:Great White Shark 0005.jpg"]
    info = fake.file("great white shark", 5)["imageinfo"][0]
    assert (small.url, small.width, small.height, small.bytes, small.mime) == (
        info["url"],
        400,
        300,
        1_000_005,
        "image/jpeg",
    )
    # A TIFF's thumbnail is a JPEG; public-domain files have no licence URL.
    assert found["File:Great White Shark 0007.tif"].mime == "image/jpeg"
    assert found["File:Great White Shark 0007.tif"].url.endswith(".tif.jpg")
    pd = found["File:Great White Shark 0004.jpg"]
    assert (pd.license, pd.license_url) == ("Public domain", None)


def test_commons_merges_imageinfo_continuation():
    fake = FakeCommons(total=120, split_imageinfo=True)
    found = search(fake, lambda api: commons.Commons(api=api), "tench", 70)
    assert urls(found) == commons_expected(fake, "tench")[:70]
    assert all(h.width and h.license for h in found)
    # Two answers per generator batch: the second carries iicontinue and the batch's offset.
    assert [(r.params.get("gsroffset"), "iicontinue" in r.params) for r in fake.requests] == [
        (None, False),
        (None, True),
        ("50", False),
        ("50", True),
    ]


def test_commons_error_answer():
    fake = FakeCommons(error=("badvalue", 'Unrecognized value for parameter "gsrwhat": nonsense.'))
    error = failure(fake, lambda api: commons.Commons(api=api), "tench")
    assert str(error).startswith("commons: query 'tench': ")
    assert "badvalue" in str(error) and 'Unrecognized value for parameter "gsrwhat"' in str(error)
    assert (error.source, error.query) == ("commons", "tench")
    assert len(fake.requests) == 1  # an error answer is not retried


@pytest.mark.parametrize("code", ["maxlag", "ratelimited"])
def test_commons_maxlag_is_waited_out(code):
    fake = FakeCommons(total=30, throttle=1, throttle_code=code)
    found = search(fake, lambda api: commons.Commons(api=api), "tench", 5)
    assert len(found) == 5
    assert fake.requests[0].params["maxlag"] == "5"
    assert len(fake.requests) == 2 and fake.gaps()[0] >= 0.98  # Retry-After: 1


def test_commons_maxlag_without_retry_after_backs_off():
    fake = FakeCommons(total=30, throttle=2, retry_after=None)
    found = search(fake, lambda api: commons.Commons(api=api), "tench", 5, backoff=0.05)
    assert len(found) == 5 and len(fake.requests) == 3
    assert all(gap >= 0.02 for gap in fake.gaps())  # backoff * 2**attempt * [0.5, 1.5)


def test_commons_gives_up_when_always_lagged():
    fake = FakeCommons(total=30, throttle=100, retry_after="0")
    error = failure(fake, lambda api: commons.Commons(api=api), "tench")
    assert "gave up" in str(error) and "maxlag" in str(error) and "lagged" in str(error)


def test_commons_429_is_waited_out():
    fake = FakeCommons(total=30, too_many=1)
    found = search(fake, lambda api: commons.Commons(api=api), "tench", 5)
    assert len(found) == 5 and len(fake.requests) == 2 and fake.gaps()[0] >= 0.98


# --- Openverse -----------------------------------------------------------------------------------


def openverse_expected(fake: FakeOpenverse, query: str, license_type: str | None = None) -> list[str]:
    return [r["url"] for r in fake.index(query, license_type) if r["filetype"] != "svg"]


def test_openverse_pages_anonymously():
    fake = FakeOpenverse(total=200)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 45)
    assert urls(found) == openverse_expected(fake, "tench")[:45]
    assert_unique(found)
    # 20 a page; page 3 brings the 45th bitmap (SVGs are skipped).
    assert [(r.params["page"], r.params["page_size"]) for r in fake.requests] == [("1", "20"), ("2", "20"), ("3", "20")]
    for r in fake.requests:
        assert r.path == "/v1/images/" and r.params["q"] == "tench"
        assert r.headers["User-Agent"] == USER_AGENT
        assert "Authorization" not in r.headers and "license_type" not in r.params


def test_openverse_anonymous_stops_at_page_20():
    fake = FakeOpenverse(total=1000, result_cap=None)  # a service without the 240-work window
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 1000)
    assert [int(r.params["page"]) for r in fake.requests] == list(range(1, 21))
    assert all(int(r.params["page_size"]) <= openverse.ANONYMOUS_PAGE_SIZE for r in fake.requests)
    first_400 = [r["url"] for r in fake.index("tench", None)[:400] if r["filetype"] != "svg"]
    assert urls(found) == first_400 and len(found) == 356  # 20 pages of 20, less 44 SVGs


def test_openverse_token_allows_larger_pages():
    fake = FakeOpenverse(total=1300, result_cap=None)
    found = search(
        fake, lambda api: openverse.Openverse(token="good-token", license_type="commercial", api=api), "goldfish", 900
    )
    assert urls(found) == openverse_expected(fake, "goldfish", "commercial")[:900]
    assert [(r.params["page"], r.params["page_size"]) for r in fake.requests] == [
        ("1", "500"),
        ("2", "500"),
        ("3", "500"),
    ]
    for r in fake.requests:
        assert r.headers["Authorization"] == "Bearer good-token"
        assert r.params["license_type"] == "commercial"
    assert all("nc" not in h.license for h in found)


def test_openverse_stops_at_page_count():
    fake = FakeOpenverse(total=40)  # exactly two full pages: page_count stops it, not a short page
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 100)
    assert len(fake.requests) == 2 and urls(found) == openverse_expected(fake, "tench")
    fake = FakeOpenverse(total=30)  # a short second page
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 100)
    assert len(fake.requests) == 2 and urls(found) == openverse_expected(fake, "tench")


def test_openverse_fields():
    fake = FakeOpenverse(total=20)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 20)
    by_index = {int(h.title.rsplit(" ", 1)[1]): h for h in found}
    assert 4 not in by_index and 13 not in by_index  # SVGs
    raw = fake.result("tench", 2)
    assert by_index[2] == SearchResult(
        url=raw["url"],
        source_id=raw["id"],
        title="tench number 2",
        creator="creator 2",
        license="cc0 1.0",
        license_url="https://creativecommons.org/publicdomain/zero/1.0/",
        width=642,
        height=482,
        bytes=200_002,
        mime="image/png",
    )
    assert by_index[1].license == "by-sa 2.0" and by_index[1].bytes is None and by_index[1].mime == "image/jpeg"
    assert by_index[0].mime is None  # filetype unknown
    assert by_index[9].creator is None


@pytest.mark.parametrize(
    "status,detail",
    [(400, "Invalid value for license_type: 'gratis'."), (401, "Authentication credentials were not provided.")],
)
def test_openverse_error_answer(status, detail):
    fake = FakeOpenverse(error=(status, detail))
    error = failure(fake, lambda api: openverse.Openverse(license_type="gratis", api=api), "tench")
    assert str(error).startswith("openverse: query 'tench': ")
    assert f"HTTP {status}" in str(error) and detail in str(error)
    assert len(fake.requests) == 1


def test_openverse_bad_token():
    """A token the API no longer knows counts as anonymous: a page over 20 is refused with 401,
    and without client credentials to renew it the source stops for the user to act."""
    fake = FakeOpenverse()
    error = failure(fake, lambda api: openverse.Openverse(token="stale", api=api), "tench", limit=100)
    assert isinstance(error, SourceStopped) and error.resume_at is None
    assert "HTTP 401" in str(error) and "OPENVERSE_CLIENT_ID" in str(error) and "OPENVERSE_TOKEN" in str(error)
    assert len(fake.requests) == 1


def test_openverse_429_is_waited_out():
    fake = FakeOpenverse(total=30, too_many=1)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 3)
    assert len(found) == 3 and len(fake.requests) == 2 and fake.gaps()[0] >= 0.98


# --- Flickr --------------------------------------------------------------------------------------


def flickr_make(**kw):
    return lambda api: flickr.Flickr(api_key="good-key", api=api, **kw)


def flickr_expected(fake: FakeFlickr, query: str, licenses: set[int]) -> list[str]:
    out = []
    for p in fake.index(query, licenses):
        out.append(
            p.get("url_c")
            or p.get("url_z")
            or p.get("url_o")
            or f"https://live.staticflickr.com/{p['server']}/{p['id']}_{p['secret']}_z.jpg"
        )
    return out


def test_flickr_pages_with_default_licences():
    fake = FakeFlickr(total=1500)
    found = search(fake, flickr_make(), "tench", 1200)
    free = set(range(1, 17))
    assert urls(found) == flickr_expected(fake, "tench", free)[:1200]
    assert_unique(found)
    assert [(r.params["page"], r.params["per_page"]) for r in fake.requests] == [
        ("1", "500"),
        ("2", "500"),
        ("3", "500"),
    ]
    for r in fake.requests:
        assert r.path == "/services/rest/" and r.headers["User-Agent"] == USER_AGENT
        assert r.params["method"] == "flickr.photos.search" and r.params["text"] == "tench"
        assert r.params["license"] == "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"
        assert r.params["sort"] == "relevance" and r.params["content_type"] == "1" and r.params["media"] == "photos"
        assert set(r.params["extras"].split(",")) >= {"url_o", "url_c", "url_z", "o_dims", "license", "owner_name"}
        assert (r.params["format"], r.params["nojsoncallback"]) == ("json", "1")
    assert all(h.license != "All Rights Reserved" for h in found)


def test_flickr_never_pages_past_4000():
    fake = FakeFlickr(total=6000)
    found = search(fake, flickr_make(license="4"), "tench", 10_000)
    assert all(int(r.params["per_page"]) <= flickr.MAX_PER_PAGE for r in fake.requests)
    assert [int(r.params["page"]) for r in fake.requests] == [1]  # 353 CC BY photos: one page
    fake = FakeFlickr(total=5000)
    found = search(fake, flickr_make(license=""), "tench", 10_000)
    assert [int(r.params["page"]) for r in fake.requests] == list(range(1, 9))
    assert len(found) == 4000 and urls(found) == flickr_expected(fake, "tench", None)[:4000]


def test_flickr_small_limit_asks_small_page():
    fake = FakeFlickr(total=100)
    found = search(fake, flickr_make(license="1,2,3,4,5,6,7,8,9,10"), "tench", 7)
    assert len(found) == 7 and [r.params["per_page"] for r in fake.requests] == ["7"]
    assert fake.requests[0].params["license"] == "1,2,3,4,5,6,7,8,9,10"


def test_flickr_fields():
    fake = FakeFlickr(total=40)
    found = {h.source_id: h for h in search(fake, flickr_make(license=""), "tench", 40)}
    p = {i: fake.photo("tench", i) for i in range(40)}
    h = found[p[4]["id"]]  # has url_c
    assert h == SearchResult(
        url=p[4]["url_c"],
        source_id=p[4]["id"],
        title="tench photo 4",
        creator="owner 4",
        license="CC BY 2.0",
        license_url="https://creativecommons.org/licenses/by/2.0/",
        width=800,
        height=600,
        bytes=None,
        mime="image/jpeg",
    )
    h = found[p[7]["id"]]  # no url_c: url_z
    assert (h.url, h.width, h.height, h.license) == (p[7]["url_z"], 480, 640, "No known copyright restrictions")
    h = found[p[33]["id"]]  # licence 16
    assert (h.url, h.license, h.license_url) == (
        p[33]["url_c"],
        "CC BY-NC-ND 4.0",
        "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    )
    h = found[p[8]["id"]]  # no url_o: url_c all the same
    assert "url_o" not in p[8] and h.url == p[8]["url_c"] and h.license == "United States Government Work"
    h = found[p[5]["id"]]  # no sized URL at all: the 640-px URL built from server, id and secret
    assert h.url == f"https://live.staticflickr.com/65535/{p[5]['id']}_{p[5]['secret']}_z.jpg" and h.width is None
    assert found[p[0]["id"]].license == "All Rights Reserved" and found[p[0]["id"]].license_url is None
    assert found[p[9]["id"]].license == "CC0 1.0" and found[p[10]["id"]].license == "Public Domain Mark 1.0"
    assert found[p[3]["id"]].creator == p[3]["owner"]  # empty ownername: the owner's NSID
    assert found[p[14]["id"]].title is None  # empty title


def test_flickr_original_when_only_size():
    photo = {
        "id": "1",
        "secret": "s",
        "server": "1",
        "license": "5",
        "title": "t",
        "ownername": "o",
        "url_o": "https://live.staticflickr.com/1/1_os_o.png",
        "width_o": 2000,
        "height_o": 1000,
    }
    assert flickr.result_of(photo) == SearchResult(
        url=photo["url_o"],
        source_id="1",
        title="t",
        creator="o",
        license="CC BY-SA 2.0",
        license_url="https://creativecommons.org/licenses/by-sa/2.0/",
        width=2000,
        height=1000,
        mime="image/png",
    )


def test_flickr_error_answer():
    fake = FakeFlickr()
    error = failure(fake, lambda api: flickr.Flickr(api_key="wrong-key", api=api), "tench")
    assert str(error).startswith("flickr: query 'tench': ")
    assert "100" in str(error) and "Invalid API Key (Key has invalid format)" in str(error)
    assert len(fake.requests) == 1


def test_flickr_unavailable_is_retried():
    fake = FakeFlickr(total=30, unavailable=1)
    found = search(fake, flickr_make(), "tench", 5)
    assert len(found) == 5 and len(fake.requests) == 2


def test_flickr_429_is_waited_out():
    fake = FakeFlickr(total=30, too_many=1)
    found = search(fake, flickr_make(), "tench", 5)
    assert len(found) == 5 and len(fake.requests) == 2 and fake.gaps()[0] >= 0.98


def test_flickr_needs_key():
    with pytest.raises(ValueError):
        flickr.Flickr(api_key="")


# --- all three -----------------------------------------------------------------------------------

ADAPTERS = {
    "commons": (FakeCommons, lambda api: commons.Commons(api=api), 50),
    "openverse": (FakeOpenverse, lambda api: openverse.Openverse(api=api), 20),
    "flickr": (FakeFlickr, flickr_make(license=""), 500),
}


@pytest.mark.parametrize("name", ADAPTERS)
def test_requests_are_spaced_by_the_rate(name):
    fake_type, make, page = ADAPTERS[name]
    fake = fake_type(total=page * 4)
    started = time.monotonic()
    found = search(fake, make, "tench", page * 2 + 1, per_second=10)
    assert len(found) == page * 2 + 1 and len(fake.requests) == 3
    # Arrival times, as the server saw them: the first request also opened the connection, which
    # on a busy machine takes some milliseconds off the first gap. Unspaced, gaps are about 1 ms.
    assert all(gap >= 0.08 for gap in fake.gaps()) and sum(fake.gaps()) >= 0.19, fake.gaps()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("name", ADAPTERS)
def test_limit_zero_sends_nothing(name):
    fake_type, make, _ = ADAPTERS[name]
    fake = fake_type()
    assert search(fake, make, "tench", 0) == [] and fake.requests == []


def test_documented_rates():
    assert commons.PER_SECOND == 1.0
    assert openverse.PER_SECOND == pytest.approx(1 / 3)
    assert flickr.PER_SECOND == 1.0
    assert commons.DEFAULT_API == "https://commons.wikimedia.org"
    assert openverse.DEFAULT_API == "https://api.openverse.org"
    assert flickr.DEFAULT_API == "https://api.flickr.com"


def test_stage_builds_the_adapters(monkeypatch):
    from pipeline.candidates import stage

    args = argparse.Namespace(api=None, license=None)
    monkeypatch.setenv("FLICKR_API_KEY", "k")
    monkeypatch.setenv("OPENVERSE_TOKEN", "t")
    for name, module in (("commons", commons), ("openverse", openverse), ("flickr", flickr)):
        adapter, rate = stage._adapter(name, args)
        assert adapter.name == name and rate == module.PER_SECOND
    adapter, _ = stage._adapter("flickr", argparse.Namespace(api="http://127.0.0.1:1", license="4,5"))
    assert adapter.license == "4,5" and adapter.endpoint == "http://127.0.0.1:1/services/rest/"
