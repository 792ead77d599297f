"""The request rules the candidates' search client and the downloader share (``pipeline.http``):
which answers are retried, the server's Retry-After, the backoff schedule, the pacer and the
retry loop."""

from __future__ import annotations

import asyncio
import time

from pipeline.http import Pacer, Retry, backoff_delay, retry_after, retryable, retrying


def test_only_too_many_and_server_errors_are_retried():
    assert [retryable(s) for s in (200, 301, 404, 429, 500, 503)] == [False, False, False, True, True, True]


def test_retry_after_forms():
    assert retry_after("2") == 2.0 and retry_after("0.5") == 0.5 and retry_after(None) is None
    assert retry_after("soon") is None and retry_after("nan") is None and retry_after("-3") == 0.0
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 < retry_after(in_a_minute) <= 60


def test_backoff_doubles_with_jitter():
    for retry in range(4):
        waits = [backoff_delay(0.5, retry) for _ in range(200)]
        assert 0.25 * 2**retry <= min(waits) and max(waits) < 0.75 * 2**retry
        assert len(set(waits)) > 1  # jittered: clients that failed together do not retry together


def sent_at(pacer: Pacer, keys: list[str], before=None) -> list[float]:
    """When each request in ``keys`` was let through, seconds from the start, in the order asked."""

    async def main() -> list[float]:
        start = time.monotonic()
        if before:
            before(pacer)
        times: list[float] = [0.0] * len(keys)

        async def one(i: int, key: str) -> None:
            await pacer.wait(key)
            times[i] = time.monotonic() - start

        await asyncio.gather(*(one(i, key) for i, key in enumerate(keys)))
        return times

    return asyncio.run(main())


def test_a_burst_of_one_spaces_requests_evenly_in_the_order_asked():
    times = sent_at(Pacer(20), ["api"] * 4)
    assert times == sorted(times) and times[0] < 0.02
    assert all(0.045 <= b - a < 0.1 for a, b in zip(times, times[1:])), times


def test_a_burst_goes_at_once_and_keys_are_paced_apart():
    times = sent_at(Pacer(10, burst=3), ["a", "a", "a", "a", "b"])
    assert max(times[:3]) < 0.05 and times[4] < 0.05  # a's burst, and b untouched by a's pace
    assert times[3] >= 0.09


def test_a_pause_holds_every_request_to_its_key():
    times = sent_at(Pacer(100), ["a", "a", "b"], before=lambda pacer: pacer.pause("a", 0.2))
    assert min(times[:2]) >= 0.19 and times[2] < 0.05


def test_slowing_down_halves_the_rate_and_recovering_wins_it_back():
    pacer = Pacer(8)
    asyncio.run(pacer.wait("host"))
    pacer.slow_down("host", 0.5)
    pacer.slow_down("host", 0.5)  # another answer to the same burst, within the pause: halved once
    assert pacer.buckets["host"].rate == 4
    for _ in range(10):
        pacer.recover("host")
    assert pacer.buckets["host"].rate == 8
    pacer.cap("host", 2)  # a Crawl-delay of half a second
    assert pacer.buckets["host"].rate == 2 and pacer.buckets["host"].burst == 1


def test_rate_zero_paces_nothing():
    pacer = Pacer(0)
    pacer.pause("a", 10)
    pacer.slow_down("a", 10)
    assert max(sent_at(pacer, ["a"] * 50)) < 0.05 and not pacer.buckets


def tried(outcomes: list, **kw) -> tuple[object, list[float]]:
    """What ``retrying`` returns over ``outcomes``, one an attempt, and when each attempt ran."""
    pending, times = list(outcomes), []

    async def main() -> object:
        start = time.monotonic()

        async def attempt() -> object:
            if kw.get("pacer"):
                await kw["pacer"].wait(kw["key"])
            times.append(time.monotonic() - start)
            return pending.pop(0)

        return await retrying(attempt, **kw)

    return asyncio.run(main()), times


def test_retrying_returns_the_first_final_outcome_at_once():
    outcome, times = tried(["done", Retry("never")], retries=3, backoff=10)
    assert outcome == "done" and len(times) == 1


def test_retrying_waits_the_server_or_backs_off_then_gives_up():
    outcome, times = tried([Retry("busy", 0.1), Retry("reset"), Retry("busy again")], retries=2, backoff=0.04)
    assert outcome == Retry("busy again") and len(times) == 3  # retries + 1 attempts, the last Retry
    assert times[1] - times[0] >= 0.095  # the server's wait, not the backoff's (0.02 to 0.06)
    assert times[2] - times[1] >= 0.035  # no wait asked: backoff_delay(0.04, 1), in [0.04, 0.12)
    outcome, times = tried([Retry("busy"), 7], retries=5, backoff=0.04)
    assert outcome == 7 and len(times) == 2


def test_retrying_with_a_pacer_pauses_the_key_for_every_request():
    pacer = Pacer(1000)
    outcome, times = tried([Retry("busy", 0.2), "ok"], retries=1, backoff=0, pacer=pacer, key="api")
    assert outcome == "ok" and times[1] - times[0] >= 0.19
    assert pacer.buckets["api"].paused_until  # the wait was the key's pause: every request to it waited
    outcome, times = tried([Retry("busy", 0.2), "ok"], retries=1, backoff=0, pacer=Pacer(0), key="api")
    assert outcome == "ok" and times[1] - times[0] >= 0.19  # a pacer that paces nothing: it slept
