"""Fixtures for the crawl tests: a loopback server over the real product photos and fast configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.crawl import CrawlConfig, FetchRequest, FetchResult, crawl_all
from tests.support.http_server import LoopbackHTTPServer


@pytest.fixture
def server(product_photos: Path) -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer(product_photos) as running:
        yield running


@pytest.fixture(scope="session")
def photo_names(product_photos: Path) -> list[str]:
    names = sorted(path.name for path in product_photos.glob("*.jpg"))
    assert len(names) >= 200, f"expected the 476 product photos in {product_photos}"
    return names


@pytest.fixture(scope="session")
def photo_bytes(product_photos: Path, photo_names: list[str]) -> bytes:
    return (product_photos / photo_names[0]).read_bytes()


@pytest.fixture
def config() -> CrawlConfig:
    """Loopback allowed, tiny back-off and short timeouts so failure paths finish fast."""
    return CrawlConfig(
        allow_hosts=["127.0.0.1"],
        max_retries=2,
        backoff_base_s=0.01,
        backoff_max_s=2.0,
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
        total_timeout_s=5.0,
    )


@pytest.fixture
def fetch() -> Callable[[str, CrawlConfig], FetchResult]:
    """Fetch one URL through the public crawl API."""

    def fetch_one_url(url: str, config: CrawlConfig) -> FetchResult:
        (result,) = crawl_all([FetchRequest("k", url)], config)
        return result

    return fetch_one_url
