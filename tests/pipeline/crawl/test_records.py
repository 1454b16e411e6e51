"""FetchRequest / FetchResult records."""

from __future__ import annotations

import dataclasses
from datetime import UTC

import pytest

from pipeline.crawl.records import FetchRequest, FetchResult


def test_records_are_frozen_and_results_are_stamped_in_utc():
    request = FetchRequest("p1", "http://shop.example/p1.jpg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "x"  # type: ignore[misc]
    result = FetchResult(
        key=request.key,
        url=request.url,
        final_url=request.url,
        ok=False,
        content=None,
        media_format=None,
        reason="http_client_error",
        detail="HTTP 404 Not Found",
        http_status=404,
        attempts=1,
        elapsed_s=0.01,
    )
    assert result.fetched_at.tzinfo is UTC
    assert [f.name for f in dataclasses.fields(FetchResult)][-1] == "fetched_at"
