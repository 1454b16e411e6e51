"""Request pacing: per-host concurrency and rate limits, and the back-off before a retry.

In: a host name (and, from responses, Retry-After pauses). Out: an async context manager slot that
waits until the host has a free connection slot and its next request time has come. The rate limit is
a minimum interval of 1/rate seconds between request starts to one host (a token bucket holding one
token), so requests to a host never burst above the configured rate; a 429/503 Retry-After pauses the
whole host, not just the URL that got it. All state lives in one `HostLimiter` per crawl.
`parse_retry_after` and `backoff_delay` say how long to wait before retrying one URL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class HostLimiter:
    """Per-host semaphores plus a per-host schedule of the earliest time the next request may start."""

    def __init__(
        self,
        per_host_concurrency: int,
        per_host_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_host_concurrency < 1:
            raise ValueError(f"per_host_concurrency must be >= 1, got {per_host_concurrency}")
        if per_host_rate < 0:
            raise ValueError(f"per_host_rate must be >= 0 (0 = unlimited), got {per_host_rate}")
        self._concurrency = per_host_concurrency
        self._interval = 1.0 / per_host_rate if per_host_rate > 0 else 0.0
        self._clock = clock
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}

    def _semaphore(self, host: str) -> asyncio.Semaphore:
        semaphore = self._semaphores.get(host)
        if semaphore is None:
            semaphore = self._semaphores[host] = asyncio.Semaphore(self._concurrency)
        return semaphore

    def reserve(self, host: str) -> float:
        """Book the host's next start time and return how many seconds to wait for it."""
        now = self._clock()
        start = max(now, self._next_start.get(host, now))
        if self._interval or start > now:
            self._next_start[host] = start + self._interval
        return start - now

    def pause(self, host: str, seconds: float) -> None:
        """Hold back every request to `host` for `seconds` (a Retry-After answer)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._next_start.get(host, 0.0):
            self._next_start[host] = until

    def in_flight(self, host: str) -> int:
        """Requests to `host` holding a slot right now."""
        return self._in_flight.get(host, 0)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Wait for a free slot on `host` and for its rate schedule, then hold the slot."""
        async with self._semaphore(host):
            # Booked after the slot is taken so waiting for a slot does not burn rate budget.
            delay = self.reserve(host)
            if delay > 0:
                await asyncio.sleep(delay)
            self._in_flight[host] = self._in_flight.get(host, 0) + 1
            try:
                yield
            finally:
                self._in_flight[host] -= 1


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks us to wait (delta-seconds or an HTTP-date), None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: random.Random, retry_after_s: float | None = None
) -> float | None:
    """Seconds to wait before try `attempt + 1`, or None when the server asked for longer than `max_s`.

    Exponential back-off with full jitter (uniform in [0, min(max_s, base_s * 2**(attempt-1))]) spreads
    retries of many URLs apart; a Retry-After is a floor, because waiting less than the server asked
    would be rude and likely refused again.
    """
    jittered = rng.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))
    if retry_after_s is None:
        return jittered
    if retry_after_s > max_s:
        return None
    return max(retry_after_s, jittered)
