"""Per-host circuit breaker: stop sending requests to a host that keeps failing.

In: the final outcome of each URL (after its retries) per host: a failure (timeout, 5xx, connection
error) or an answer. Out: `refusal(host)`, None while the host may be tried, else the detail for the
`host_unavailable` rejection of each of its remaining URLs, given without any network I/O.

The breaker opens after `threshold` consecutive failures and no new request goes to the host for the
rest of the crawl (one breaker per fetch context): a crawl is a batch, and host_unavailable is
retryable, so a later `--retry-failed` run tries those URLs again. An answer resets the count, even
one to a request that was already in flight when the breaker opened (the host is evidently up again).
threshold 0 turns the breaker off.
"""

from __future__ import annotations

import logging

from schemas.reasons import Reason

log = logging.getLogger(__name__)

HOST_FAILURES = frozenset({Reason.TIMEOUT, Reason.HTTP_SERVER_ERROR, Reason.CONNECTION_ERROR})


class HostBreaker:
    """Consecutive-failure counts per host and the hosts given up on."""

    def __init__(self, threshold: int) -> None:
        if threshold < 0:
            raise ValueError(f"breaker threshold must be >= 0 (0 = off), got {threshold}")
        self._threshold = threshold
        self._failures: dict[str, int] = {}
        self._last_failure: dict[str, str] = {}

    def refusal(self, host: str) -> str | None:
        """None while `host` may be tried; once the breaker is open, why its URLs are rejected."""
        count = self._failures.get(host, 0)
        if not self._threshold or count < self._threshold:
            return None
        last = self._last_failure[host]
        return (
            f"{host}: circuit breaker open after {count} consecutive failures (last: {last}); not requested"
        )

    def record(self, host: str, reason: str | None, status: int | None, detail: str) -> None:
        """Note how a URL of `host` ended: a `HOST_FAILURES` reason counts, any other HTTP answer resets.

        Outcomes with neither (refused before a request: robots.txt, address guard) say nothing.
        """
        if reason in HOST_FAILURES:
            self.failed(host, f"{reason}: {detail}")
        elif status is not None:
            self.answered(host)

    def failed(self, host: str, detail: str) -> None:
        """Count a URL of `host` that failed for good with a timeout, 5xx or connection error."""
        count = self._failures[host] = self._failures.get(host, 0) + 1
        self._last_failure[host] = detail
        if count == self._threshold:
            log.warning(
                "host %s failed %d times in a row (last: %s): its remaining URLs are rejected as "
                "host_unavailable", host, count, detail,
            )  # fmt: skip

    def answered(self, host: str) -> None:
        """A response from `host` that was not a server error: it is up, so the count starts over."""
        self._failures.pop(host, None)
