"""HostBreaker: consecutive failures per host open it, an answer resets it, refusals say why."""

from __future__ import annotations

import logging

import pytest

from pipeline.crawl.breaker import HostBreaker
from schemas.reasons import Reason


def test_opens_after_threshold_consecutive_failures_of_one_host():
    breaker = HostBreaker(3)
    for n in range(2):
        breaker.record("a:80", Reason.HTTP_SERVER_ERROR, 503, f"HTTP 503 #{n}")
        assert breaker.refusal("a:80") is None
    breaker.record("a:80", Reason.TIMEOUT, None, "timed out")
    refusal = breaker.refusal("a:80")
    assert refusal is not None and "a:80" in refusal and "3 consecutive failures" in refusal
    assert "last: timeout: timed out" in refusal
    assert breaker.refusal("b:80") is None  # per host


def test_an_answer_resets_the_count_and_refusals_before_a_request_do_not():
    breaker = HostBreaker(2)
    breaker.record("a:80", Reason.CONNECTION_ERROR, None, "refused")
    breaker.record("a:80", Reason.HTTP_CLIENT_ERROR, 404, "HTTP 404 Not Found")  # the host answered
    breaker.record("a:80", Reason.CONNECTION_ERROR, None, "refused")
    assert breaker.refusal("a:80") is None
    breaker.record("a:80", Reason.ROBOTS_DISALLOWED, None, "robots.txt disallows /x")  # no request made
    breaker.record("a:80", Reason.CONNECTION_ERROR, None, "refused")
    assert breaker.refusal("a:80") is not None
    breaker.record("b:80", Reason.TIMEOUT, None, "timed out")
    breaker.record("b:80", Reason.HTTP_RATE_LIMITED, 429, "HTTP 429")  # busy, but it answered
    breaker.record("b:80", Reason.TIMEOUT, None, "timed out")
    assert breaker.refusal("b:80") is None


def test_an_in_flight_answer_after_opening_closes_it():
    breaker = HostBreaker(1)
    breaker.record("a:80", Reason.HTTP_SERVER_ERROR, 500, "HTTP 500")
    assert breaker.refusal("a:80") is not None
    breaker.record("a:80", None, 200, "ok")
    assert breaker.refusal("a:80") is None


def test_threshold_zero_is_off_and_negative_is_refused():
    breaker = HostBreaker(0)
    for _ in range(100):
        breaker.record("a:80", Reason.TIMEOUT, None, "timed out")
    assert breaker.refusal("a:80") is None
    with pytest.raises(ValueError, match="0 = off"):
        HostBreaker(-1)


def test_opening_is_logged_once_as_a_warning(caplog):
    breaker = HostBreaker(2)
    with caplog.at_level(logging.WARNING, logger="pipeline.crawl.breaker"):
        for _ in range(4):
            breaker.record("a:80", Reason.HTTP_SERVER_ERROR, 503, "HTTP 503")
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "a:80" in caplog.records[0].getMessage() and "host_unavailable" in caplog.records[0].getMessage()
