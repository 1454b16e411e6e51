"""Crawl records: what goes into the crawler and what comes out for every input.

In: nothing. Out: `FetchRequest` (a caller's key and a URL) and `FetchResult` (the fetched bytes and
their sniffed image format, or the reason code from `schemas.reasons.Reason` that says why not).
Every request yields exactly one result, so the caller's ledger always adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One URL to fetch; `key` is the caller's identifier (for example a feed row id)."""

    key: str
    url: str


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of fetching one `FetchRequest`.

    `ok` results carry `content` and `media_format` (the sniffed image format, or a video's container); failed ones carry `reason` (a `Reason` value) and
    a human `detail` such as "HTTP 404 Not Found". `final_url` is the URL after redirects, `attempts`
    counts tries including retries, and `elapsed_s` includes back-off waits.
    """

    key: str
    url: str
    final_url: str
    ok: bool
    content: bytes | None
    media_format: str | None
    reason: str | None
    detail: str
    http_status: int | None
    attempts: int
    elapsed_s: float
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
