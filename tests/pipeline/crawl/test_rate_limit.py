"""Host limiter (fake clock and real asyncio), Retry-After parsing and jittered back-off."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pipeline.crawl.rate_limit import HostLimiter, backoff_delay, parse_retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_spaces_request_starts_per_host():
    clock = FakeClock()
    limiter = HostLimiter(per_host_concurrency=4, per_host_rate=10.0, clock=clock)
    assert [round(limiter.reserve("a"), 3) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    assert limiter.reserve("b") == 0.0  # hosts are independent
    clock.now += 1.0
    assert limiter.reserve("a") == 0.0  # idle time does not bank a burst


def test_unlimited_rate_never_waits():
    limiter = HostLimiter(per_host_concurrency=1, per_host_rate=0.0, clock=FakeClock())
    assert [limiter.reserve("a") for _ in range(5)] == [0.0] * 5


def test_pause_holds_back_the_whole_host():
    clock = FakeClock()
    limiter = HostLimiter(per_host_concurrency=4, clock=clock)
    limiter.pause("a", 2.0)
    assert limiter.reserve("a") == pytest.approx(2.0) and limiter.reserve("b") == 0.0
    limiter.pause("a", 0.5)  # a shorter pause never shortens a longer one
    assert limiter.reserve("a") == pytest.approx(2.0)


def test_slot_caps_concurrency_per_host():
    limiter = HostLimiter(per_host_concurrency=2)
    peak = {"a": 0, "b": 0}

    async def job(host: str) -> None:
        async with limiter.slot(host):
            peak[host] = max(peak[host], limiter.in_flight(host))
            await asyncio.sleep(0.005)

    async def run() -> None:
        await asyncio.gather(*(job(host) for host in "ab" * 6))

    asyncio.run(run())
    assert peak == {"a": 2, "b": 2}


@pytest.mark.parametrize(("count", "rate"), [(0, 1.0), (1, -1.0)])
def test_bad_limits_raise(count, rate):
    with pytest.raises(ValueError, match="per_host"):
        HostLimiter(count, rate)


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(bad, now) is None


def test_backoff_is_full_jitter_under_an_exponential_cap():
    rng = random.Random(7)
    for attempt in range(1, 8):
        cap = min(10.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # spread over the whole range


def test_retry_after_is_a_floor_and_too_long_means_give_up():
    rng = random.Random(0)
    assert all(backoff_delay(1, 0.5, 30.0, rng, retry_after_s=3.0) >= 3.0 for _ in range(50))
    assert backoff_delay(1, 0.5, 30.0, rng, retry_after_s=31.0) is None
