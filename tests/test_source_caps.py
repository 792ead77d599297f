"""The search sources against the limits of the real services, taught to the local fakes
(``api_servers``) and served over HTTP on 127.0.0.1: Openverse's 240-work window per query, its
daily cap (429 with a Retry-After of hours), its expiring OAuth2 tokens, and Flickr's passing
outages. The candidates stage ends a capped source gracefully and a rerun resumes it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from api_servers import FakeFlickr, FakeOpenverse, serve, serving
from conftest import rows, run_cli, write_synsets
from test_search_sources import failure, flickr_expected, flickr_make, openverse_expected, search, urls

from pipeline import schemas
from pipeline.candidates import flickr, openverse, stage
from pipeline.candidates.search import ApiClient, SourceStopped
from pipeline.download import stage as download_stage
from pipeline.layout import Layout
from pipeline.tables import read_report

TENCH, GOLDFISH, SHARK = "n01440764", "n01443537", "n01484850"
QUERIES = {TENCH: ["tench", "tinca tinca"], GOLDFISH: ["goldfish"], SHARK: ["great white shark", "white shark"]}
ORDER = ["tench", "tinca tinca", "goldfish", "great white shark", "white shark"]  # wnid order, then phrase order

# --- Openverse: the result window ------------------------------------------------------------


def test_openverse_reaches_the_240_works_of_a_query():
    """result_count and page_count say 240: the adapter asks 12 pages of 20 and no more."""
    fake = FakeOpenverse(total=1000)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 1000)
    assert [int(r.params["page"]) for r in fake.requests] == list(range(1, 13))
    assert urls(found) == [r["url"] for r in fake.index("tench", None)[:240] if r["filetype"] != "svg"]


def test_openverse_with_a_token_reaches_the_same_240_works_in_one_page():
    fake = FakeOpenverse(total=1000)
    found = search(fake, lambda api: openverse.Openverse(token="good-token", api=api), "tench", 1000)
    assert [(r.params["page"], r.params["page_size"]) for r in fake.requests] == [("1", "500")]
    assert len(found) == 240 - 27  # less the SVGs


@pytest.mark.parametrize("status", [400, 401, 404])
def test_a_page_past_the_window_keeps_the_query_hits(status):
    """A service whose counts do not show the window: the page past it is refused, and the
    hits of the pages before it are the query's result, not lost to an error."""
    fake = FakeOpenverse(total=1000, past_cap_status=status, counts_capped=False)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 1000)
    assert [int(r.params["page"]) for r in fake.requests] == list(range(1, 14))
    assert urls(found) == [r["url"] for r in fake.index("tench", None)[:240] if r["filetype"] != "svg"]


def test_a_refused_first_page_is_still_an_error():
    fake = FakeOpenverse(total=1000, result_cap=0)
    found = search(fake, lambda api: openverse.Openverse(api=api), "tench", 50)
    assert found == [] and len(fake.requests) == 1  # an empty window: page 1 answers, empty
    fake = FakeOpenverse(error=(400, "Invalid value for license_type: 'gratis'."))
    assert failure(fake, lambda api: openverse.Openverse(api=api), "tench").status == 400


# --- Openverse: the daily cap ----------------------------------------------------------------


def test_a_daily_cap_stops_the_source_at_once_with_the_time_to_resume():
    fake = FakeOpenverse(total=100, daily=2, day_wait="36000")
    started = time.monotonic()
    error = failure(fake, lambda api: openverse.Openverse(api=api), "tench", limit=100)
    assert isinstance(error, SourceStopped) and "HTTP 429" in str(error) and "Retry-After 36000 s" in str(error)
    expected = datetime.now(timezone.utc) + timedelta(hours=10)
    assert abs((error.resume_at - expected).total_seconds()) < 60
    assert len(fake.requests) == 3 and time.monotonic() - started < 5  # no retry, no wait


# --- Openverse: tokens -----------------------------------------------------------------------


def credentials(api: str, **kw) -> openverse.Openverse:
    return openverse.Openverse(api=api, client_id="app", client_secret="s3cret", **kw)


def search_queries(fake: FakeOpenverse, make, queries: list[str], limit: int) -> list[list]:
    """``make(base_url).search`` for each query in turn, one adapter and client for all."""

    async def main() -> list[list]:
        async with serve(fake) as base, aiohttp.ClientSession() as session:
            adapter = make(base)
            client = ApiClient(adapter.name, session, 1000.0, backoff=0.05)
            return [await adapter.search(client, q, limit) for q in queries]

    return asyncio.run(main())


def auth_trace(fake: FakeOpenverse) -> list[tuple[str, str, str | None]]:
    return [(r.params["q"], r.params["page"], r.headers.get("Authorization")) for r in fake.requests]


def test_client_credentials_buy_a_token_and_renew_it_when_it_expires():
    fake = FakeOpenverse(total=300, clients={"app": "s3cret"}, token_uses=2)
    found = search_queries(fake, credentials, ["tench", "goldfish"], 100)
    assert [urls(f) for f in found] == [openverse_expected(fake, q)[:100] for q in ("tench", "goldfish")]
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "s3cret"}
    assert [r.params for r in fake.token_requests] == [form, form]
    assert {r.path for r in fake.token_requests} == {"/v1/auth_tokens/token/"}
    assert all(r.headers["Content-Type"] == "application/x-www-form-urlencoded" for r in fake.token_requests)
    # token-1 serves two pages; then it has expired: the page is refused (401, as anonymous
    # with 100 a page), a new token is bought and the same page asked again.
    assert auth_trace(fake) == [
        ("tench", "1", "Bearer token-1"),
        ("tench", "2", "Bearer token-1"),
        ("goldfish", "1", "Bearer token-1"),
        ("goldfish", "1", "Bearer token-2"),
        ("goldfish", "2", "Bearer token-2"),
    ]
    assert [r.params["page_size"] for r in fake.requests] == ["100"] * 5


def test_a_token_refused_right_after_renewal_is_an_error_not_a_loop():
    fake = FakeOpenverse(total=300, clients={"app": "s3cret"}, token_uses=0)  # every token born expired
    error = failure(fake, credentials, "tench", limit=100)
    assert not isinstance(error, SourceStopped) and error.status == 401
    assert len(fake.token_requests) == 2 and len(fake.requests) == 2


def test_wrong_client_credentials_are_an_error_naming_the_token_endpoint_answer():
    fake = FakeOpenverse(clients={"app": "other"})
    error = failure(fake, credentials, "tench")
    assert not isinstance(error, SourceStopped)
    assert "no access token for these client credentials" in str(error) and "invalid_client" in str(error)
    assert fake.requests == []


def test_credentials_come_in_pairs():
    with pytest.raises(ValueError):
        openverse.Openverse(client_id="app")


# --- Flickr -------------------------------------------------------------------------------------

OUTAGE = "Sorry, the Flickr API service is not currently available."


@pytest.mark.parametrize("code, message", [(105, "Service currently unavailable"), (201, OUTAGE), (0, OUTAGE)])
def test_flickr_outages_are_retried(code, message):
    fake = FakeFlickr(total=30, unavailable=2, unavailable_as=(code, message))
    found = search(fake, flickr_make(), "tench", 5)
    assert urls(found) == flickr_expected(fake, "tench", set(range(1, 17)))[:5] and len(fake.requests) == 3


def test_flickr_other_failures_are_not_retried():
    fake = FakeFlickr(total=30, unavailable=5, unavailable_as=(3, "Parameterless searches have been disabled."))
    error = failure(fake, flickr_make(), "tench")
    assert "code 3" in str(error) and len(fake.requests) == 1


# What flickr.photos.licenses.getInfo answered on 2025-06-19, the day after Flickr added the CC
# 4.0 licences (recorded by the Flickr Foundation's client, Flickr-Foundation/flickr-photos-api,
# tests/fixtures/cassettes/TestLicenseMethods.test_get_licenses.yml): id -> deed URL.
GET_INFO = {
    1: "https://creativecommons.org/licenses/by-nc-sa/2.0/",
    2: "https://creativecommons.org/licenses/by-nc/2.0/",
    3: "https://creativecommons.org/licenses/by-nc-nd/2.0/",
    4: "https://creativecommons.org/licenses/by/2.0/",
    5: "https://creativecommons.org/licenses/by-sa/2.0/",
    6: "https://creativecommons.org/licenses/by-nd/2.0/",
    7: "https://www.flickr.com/commons/usage/",
    8: "https://www.usa.gov/government-copyright",
    9: "https://creativecommons.org/publicdomain/zero/1.0/",
    10: "https://creativecommons.org/publicdomain/mark/1.0/",
    11: "https://creativecommons.org/licenses/by/4.0/",
    12: "https://creativecommons.org/licenses/by-sa/4.0/",
    13: "https://creativecommons.org/licenses/by-nd/4.0/",
    14: "https://creativecommons.org/licenses/by-nc/4.0/",
    15: "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    16: "https://creativecommons.org/licenses/by-nc-nd/4.0/",
}


def test_flickr_licence_ids_are_flickrs():
    assert {i: url for i, (_, url) in flickr.LICENSES.items() if i} == GET_INFO
    assert flickr.DEFAULT_LICENSE == ",".join(map(str, range(1, 17)))
    for i, (name, url) in flickr.LICENSES.items():  # the name says the deed's version
        assert i in (0, 7, 8, 10) or name.split()[-1] in url.split("/")


# --- the candidates stage ------------------------------------------------------------------------


@pytest.fixture
def fast(monkeypatch):
    """Openverse's pace (one request every 3 s) is not what these tests check; no token or
    credentials from the environment unless a test sets them."""
    monkeypatch.setattr(openverse, "PER_SECOND", 200.0)
    for name in ("OPENVERSE_TOKEN", "OPENVERSE_CLIENT_ID", "OPENVERSE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


def fish(tmp_path: Path, name: str) -> Path:
    write_synsets(tmp_path / name, list(QUERIES), queries=QUERIES)
    return tmp_path / name


def collect(pipeline, workdir: Path, api: str, per_query: int):
    return pipeline(
        "candidates", "--data", workdir.parent, "--subset", workdir.name, "--source", "openverse", "--api", api,
        "--per-query", per_query,
    )  # fmt: skip


def candidates(workdir: Path) -> list[dict]:
    return sorted((r for p in Layout(workdir).candidate_parts() for r in rows(p)), key=lambda r: r["candidate_id"])


def report_of(workdir: Path) -> dict:
    return read_report(Layout(workdir).report("candidates"), schemas.CANDIDATES_REPORT)


def uncapped(pipeline, tmp_path: Path, per_query: int) -> list[dict]:
    """The candidates of a run that no cap interrupts."""
    workdir = fish(tmp_path, "uncapped")
    with serving(FakeOpenverse(total=60)) as api:
        assert collect(pipeline, workdir, api, per_query).status == 0
    return candidates(workdir)


def test_a_daily_cap_ends_the_source_and_reruns_resume_at_the_queries_left(pipeline, tmp_path, fast):
    expected = uncapped(pipeline, tmp_path, 3)  # three a query: one page each, no SVG among them
    workdir = fish(tmp_path, "fish")
    fake = FakeOpenverse(total=60, daily=4, day_wait="36000")
    with serving(fake) as api:
        out = collect(pipeline, workdir, api, 3)
        assert out.status == stage.UNFINISHED == 75, out.err
        assert [r.params["q"] for r in fake.requests] == ORDER  # four served, the fifth refused
        # The classes done are written, atomically, as a finished run writes them.
        assert candidates(workdir) == [r for r in expected if r["wnid"] != SHARK]
        report = report_of(workdir)
        assert report["complete"] is False and report["remaining"] == {SHARK: ["white shark"]}
        assert "HTTP 429" in report["stopped"] and "Expected available in 36000 seconds" in report["stopped"]
        resume = datetime.strptime(report["resume_after"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=timezone.utc)
        assert abs(resume - (datetime.now(timezone.utc) + timedelta(hours=10))) < timedelta(minutes=2)
        assert report["classes_without_candidates"] == [] and report["per_class"][SHARK] == 0
        last = out.err.strip().splitlines()[-1]
        assert last.startswith("candidates: stopped early: openverse: query 'white shark': HTTP 429")
        assert f"Resume after {report['resume_after']}" in last and "query phrases left: 1, in 1 of 3 classes" in last
        assert "Traceback" not in out.err

        # Still capped: the rerun is not "up to date"; it asks the one query left and stops again.
        out = collect(pipeline, workdir, api, 3)
        assert out.status == 75 and "up to date" not in out.err
        assert [r.params["q"] for r in fake.requests][len(ORDER) :] == ["white shark"]
        assert candidates(workdir) == [r for r in expected if r["wnid"] != SHARK]

        # A new day: the rerun asks only that query and ends with the rows of an uncapped run.
        fake.new_day()
        out = collect(pipeline, workdir, api, 3)
        assert out.status == 0, out.err
        assert [r.params["q"] for r in fake.requests][len(ORDER) + 1 :] == ["white shark"]
        assert candidates(workdir) == expected
        report = report_of(workdir)
        assert (report["complete"], report["remaining"], report["resume_after"]) == (True, {}, None)
        assert "stopped early" not in out.err

        # Finished: up to date.
        sent = len(fake.requests)
        out = collect(pipeline, workdir, api, 3)
        assert out.status == 0 and "up to date" in out.err and len(fake.requests) == sent


def test_the_download_refuses_candidates_that_stopped_early(pipeline, tmp_path, fast):
    """``make download`` runs the candidates stage only where there are none: the rerun a
    stopped stage asks for must not go on to download its partial list."""
    workdir = fish(tmp_path, "fish")
    fake = FakeOpenverse(total=60, daily=4, day_wait="36000")
    with serving(fake) as api:
        assert collect(pipeline, workdir, api, 3).status == 75
        resume = report_of(workdir)["resume_after"]
        done = pipeline("download", "--data", workdir.parent, "--subset", workdir.name)
        assert done.status == 1 and len(done.err.strip().splitlines()) == 1, done.err
        assert str(Layout(workdir).report("candidates")) in done.err and "candidates are incomplete" in done.err
        assert f"in 1 of 3 classes: run `make candidates` again after {resume}" in done.err
        assert not Layout(workdir).report("download").exists()
        fake.new_day()
        assert collect(pipeline, workdir, api, 3).status == 0
    download_stage.unfinished_candidates(Layout(workdir))  # complete: nothing to refuse


def test_an_expired_token_without_credentials_stops_and_credentials_resume(pipeline, tmp_path, fast, monkeypatch):
    expected = uncapped(pipeline, tmp_path, 30)
    workdir = fish(tmp_path, "fish")
    fake = FakeOpenverse(total=60, clients={"app": "s3cret"})
    fake.issued["old"] = 2  # a token with two requests left in it
    monkeypatch.setenv("OPENVERSE_TOKEN", "old")
    with serving(fake) as api:
        out = collect(pipeline, workdir, api, 30)
        assert out.status == 75, out.err
        # 30 a page, two pages a query: the token has expired at the second query.
        assert [(r.params["q"], r.params["page"]) for r in fake.requests] == [
            ("tench", "1"),
            ("tench", "2"),
            ("tinca tinca", "1"),
        ]
        report = report_of(workdir)
        assert report["remaining"] == {TENCH: ["tinca tinca"], GOLDFISH: ["goldfish"], SHARK: QUERIES[SHARK]}
        assert report["resume_after"] is None and candidates(workdir) == []
        last = out.err.strip().splitlines()[-1]
        assert "HTTP 401" in last and "OPENVERSE_CLIENT_ID" in last and "Resume once that is seen to" in last

        monkeypatch.setenv("OPENVERSE_CLIENT_ID", "app")
        monkeypatch.setenv("OPENVERSE_CLIENT_SECRET", "s3cret")
        out = collect(pipeline, workdir, api, 30)
        assert out.status == 0, out.err
        assert candidates(workdir) == expected
        # Resumed at the query left: the old token is refused once, and one new token serves the rest.
        assert auth_trace(fake)[3:5] == [("tinca tinca", "1", "Bearer old"), ("tinca tinca", "1", "Bearer token-1")]
        assert len(fake.token_requests) == 1


@pytest.mark.slow
def test_a_capped_run_exits_75_as_a_process(tmp_path):
    """The exit status a shell and make see: not 0 (the stage is not finished), not the 1 or 2
    of an error; the one line saying when to resume is the last."""
    workdir = fish(tmp_path, "fish")
    fake = FakeOpenverse(total=30, daily=0, day_wait="7200")
    with serving(fake) as api:
        done = run_cli(
            "candidates", "--data", workdir.parent, "--subset", workdir.name, "--source", "openverse", "--api", api,
            unset=("OPENVERSE_TOKEN", "OPENVERSE_CLIENT_ID", "OPENVERSE_CLIENT_SECRET"),
        )  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("candidates: stopped early: openverse: query 'tench'")
    assert "Resume after" in done.stderr and "query phrases left: 5, in 3 of 3 classes" in done.stderr
    assert Layout(workdir).candidates.is_dir() and candidates(workdir) == []
    assert json.loads((workdir / ".stages" / "candidates.json").read_text())["summary"].endswith(
        "stopped early, 3 of 3 classes left"
    )
