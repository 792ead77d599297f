"""Consent and politeness, proven from the image host's own request log: opt-outs are read
once and never retried, robots.txt-disallowed and blocklisted URLs are never requested, and a
host that answers 429 to a burst gets fewer requests than its limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from test_download import report, table, write_candidates

from pipeline.download.politeness import Blocklist, optout_signal
from pipeline.errors import InputError
from pipeline.imagehost import ImageHost

ROBOTS = """User-agent: *
Disallow: /picture/n02102040/

User-agent: synsetforge
Disallow: /picture/n01440764/
Crawl-delay: 0
"""
OPTOUTS = ("noai", "noimageai", "noindex", "noimageindex", "tdm")
QUICK = ("--allow-private-hosts", "--processes", "1", "--timeout", "5", "--retries", "1", "--robots-timeout", "1")


@pytest.fixture(scope="module")
def host():
    # 127.0.0.1 has robots rules, 127.0.0.2 a robots.txt that never answers, 127.0.0.3 none.
    with ImageHost(aliases=2, robots={"127.0.0.1": ROBOTS, "127.0.0.2": "timeout"}) as running:
        yield running


def download(workdir: Path, *args: str):
    done = run_cli("download", "--data", workdir.parent, "--subset", workdir.name, *QUICK, *args)
    assert done.returncode == 0, done.stderr
    return {r["url"]: r for r in table(workdir, "ledger")}, report(workdir)


def test_optouts_are_read_once_and_never_retried(host, tmp_path):
    urls = [host.url(f"/optout/{signal}/once") for signal in OPTOUTS] + [host.url("/optout/otherbot/once")]
    write_candidates(tmp_path / "x", urls)
    ledger, stats = download(tmp_path / "x", "--host-rate", "0")
    for signal in OPTOUTS:
        row = ledger[host.url(f"/optout/{signal}/once")]
        assert (row["status"], row["attempts"], row["bytes"]) == ("opted_out", 1, 0), signal
        assert len(host.requests_to(f"/optout/{signal}/once")) == 1
    assert "tdm-reservation: 1" in ledger[host.url("/optout/tdm/once")]["error"]
    assert ledger[host.url("/optout/otherbot/once")]["status"] == "ok"  # addressed to another crawler
    assert stats["politeness"]["stopped"]["opted_out"] == 5 and stats["politeness"]["respect_optouts"] is True
    assert stats["politeness"]["stopped_per_top_host"] == {"127.0.0.1": {"opted_out": 5}}


def test_optouts_can_be_chosen_or_ignored(host, tmp_path):
    urls = [host.url(f"/optout/{signal}/choose") for signal in OPTOUTS]
    write_candidates(tmp_path / "x", urls)
    ledger, _ = download(tmp_path / "x", "--host-rate", "0", "--optout-directives", "noai")
    assert [ledger[u]["status"] for u in urls] == ["opted_out", "ok", "ok", "ok", "opted_out"]  # tdm always
    ledger, stats = download(tmp_path / "x", "--host-rate", "0", "--ignore-optouts")
    assert {ledger[u]["status"] for u in urls} == {"ok"} and stats["politeness"]["respect_optouts"] is False


def test_robots_txt_rules_for_our_agent(host, tmp_path):
    mine, others, free = ("/picture/n01440764/71.jpg", "/picture/n02102040/71.jpg", "/picture/n02979186/71.jpg")
    write_candidates(tmp_path / "x", [host.url(p) for p in (mine, others, free)])
    before = len(host.requests_to("/robots.txt"))
    ledger, stats = download(tmp_path / "x", "--host-rate", "0")
    assert ledger[host.url(mine)]["status"] == "disallowed_by_robots"
    assert ledger[host.url(mine)]["attempts"] == 0 and not host.requests_to(mine)  # never requested
    # the group for synsetforge applies, not the * group: its Disallow does not bind us
    assert ledger[host.url(others)]["status"] == "ok" and ledger[host.url(free)]["status"] == "ok"
    robots = [r for r in host.requests_to("/robots.txt")[before:] if r.address == "127.0.0.1"]
    assert len(robots) == 1 and robots[0].headers["User-Agent"].startswith("synsetforge/")
    assert stats["politeness"]["stopped"]["disallowed_by_robots"] == 1


@pytest.mark.slow
def test_a_robots_txt_that_times_out_is_tried_again_then_recorded(host, tmp_path):
    paths = [f"/picture/n03000684/{i}.jpg" for i in range(3)]
    write_candidates(tmp_path / "x", [host.url(p, alias=1) for p in paths])
    ledger, stats = download(tmp_path / "x", "--host-rate", "0")
    assert {r["status"] for r in ledger.values()} == {"robots_unavailable"}
    assert "no answer within 1 s (2 tries)" in next(iter(ledger.values()))["error"]
    assert not [r for p in paths for r in host.requests_to(p)]  # no image was requested
    assert len([r for r in host.requests_to("/robots.txt") if r.address == "127.0.0.2"]) == 2
    assert stats["politeness"]["stopped"]["robots_unavailable"] == 3


def test_blocklisted_hosts_are_never_contacted(host, tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# hosts that asked us not to come\n127.0.0.3\n*.example.org\n")
    path = "/picture/n03028079/5.jpg"
    write_candidates(tmp_path / "x", [host.url(path, alias=2), host.url("/picture/n03028079/6.jpg")])
    before = len(host.log)
    ledger, stats = download(tmp_path / "x", "--host-rate", "0", "--domains-blocklist", blocklist)
    assert ledger[host.url(path, alias=2)]["status"] == "blocked_domain"
    assert ledger[host.url("/picture/n03028079/6.jpg")]["status"] == "ok"
    assert not [r for r in host.log[before:] if r.address == "127.0.0.3"]
    assert stats["politeness"]["stopped"]["blocked_domain"] == 1 and stats["politeness"]["blocklisted_domains"] == 2


def test_blocklist_file_format():
    assert Blocklist(["example.org"]).blocked("img.cdn.example.org") == "example.org"
    assert Blocklist(["example.org"]).blocked("example.org.") == "example.org"
    assert Blocklist(["example.org"]).blocked("notexample.org") is None


def test_a_bad_blocklist_line_is_named(tmp_path):
    bad = tmp_path / "blocklist.txt"
    bad.write_text("example.org\nnot a host\n")
    with pytest.raises(InputError, match="blocklist.txt:2: 'not a host': not a host name"):
        Blocklist.read(bad)


def test_optout_header_forms():
    from multidict import CIMultiDict

    def signal(*values: str, **extra: str) -> str | None:
        headers = CIMultiDict([("X-Robots-Tag", v) for v in values] + list(extra.items()))
        return optout_signal(headers, ("noai", "noimageai", "noindex", "noimageindex"))

    assert signal("noindex, nofollow") == "X-Robots-Tag: noindex, nofollow"
    assert signal("unavailable_after: 25 Jun 2010 15:00:00 PST", "noimageai") == "X-Robots-Tag: noimageai"
    assert signal("googlebot: noindex") is None
    assert signal("synsetforge: noai") == "X-Robots-Tag: synsetforge: noai"
    assert signal("nofollow") is None and signal() is None
    assert signal(**{"tdm-reservation": "1"}) == "tdm-reservation: 1"
    assert signal(**{"tdm-reservation": "0"}) is None


@pytest.mark.slow
def test_pacing_and_slowing_down_for_a_host_that_answers_429(host, tmp_path):
    """The host allows 4 requests a second to /limited/ and answers more with 429 and
    Retry-After: 1. We start at 20 a second; its log must show us settle under its limit."""
    urls = [host.url(f"/limited/burst{i}?rate=4") for i in range(30)]
    write_candidates(tmp_path / "x", urls)
    ledger, _ = download(tmp_path / "x", "--host-rate", "20", "--host-burst", "20", "--retries", "6")
    assert {r["status"] for r in ledger.values()} == {"ok"}
    times = [r.time for r in host.requests_to("/limited/burst")]
    throttled = sum(r["attempts"] - 1 for r in ledger.values())
    assert 1 <= throttled < 30
    # after the first second of the burst, never more than the host's limit in any second
    settled = [t for t in times if t > times[0] + 2.0]
    busiest = max(sum(1 for u in settled if t <= u < t + 1.0) for t in settled)
    rate = (len(settled) - 1) / (settled[-1] - settled[0])
    seen = (
        f"first second {sum(1 for t in times if t < times[0] + 1)}, then {rate:.2f}/s, "
        f"busiest second {busiest}, retries {throttled}"
    )
    assert rate < 4 and busiest <= 5, seen  # probing for more may cost one 429 now and then


def test_the_token_bucket_paces_one_host(host, tmp_path):
    urls = [host.url(f"/picture/n03394916/{i}.jpg?pace") for i in range(16)]
    write_candidates(tmp_path / "x", urls)
    ledger, stats = download(tmp_path / "x", "--host-rate", "8", "--host-burst", "4")
    assert {r["status"] for r in ledger.values()} == {"ok"}
    times = sorted(r.time for r in host.requests_to("/picture/n03394916/"))
    assert times[-1] - times[0] >= (16 - 4) / 8 * 0.95  # 4 at once, then 8 a second
    assert stats["politeness"]["host_rate"] == 8
