"""Shares: a host's limits split across its shares and add up to the host's; batches keep input order."""

from __future__ import annotations

import pytest

from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.shares import host_of, plan_shares


def requests_for(urls):
    return [FetchRequest(url, url) for url in urls]


def test_one_host_is_split_into_shares_whose_limits_add_up():
    urls = [f"http://a.example:8080/{n}.jpg" for n in range(10)]
    crawl = CrawlConfig(per_host_concurrency=5, per_host_rate=3.0, global_concurrency=64)
    shares = plan_shares(requests_for(urls), crawl, workers=2, batch_urls=3)
    assert [s.host for s in shares] == ["http://a.example:8080"] * 2
    assert sum(s.crawl.per_host_concurrency for s in shares) == 5
    assert sum(s.crawl.per_host_rate for s in shares) == pytest.approx(3.0)
    assert all(s.crawl.global_concurrency == s.crawl.per_host_concurrency for s in shares)
    positions = [p for s in shares for batch in s.batches for p, _ in batch]
    assert sorted(positions) == list(range(10))  # every URL once
    for share in shares:
        flat = [p for batch in share.batches for p, _ in batch]
        assert flat == sorted(flat) and all(len(b) <= 3 for b in share.batches)


def test_hosts_are_kept_apart_and_small_hosts_get_one_share():
    urls = ["http://a.example/1.jpg", "https://b.example/1.jpg", "http://a.example/2.jpg", "file:///x/y.jpg"]
    shares = plan_shares(requests_for(urls), CrawlConfig(per_host_concurrency=1), workers=4, batch_urls=64)
    assert [(s.host, [p for p, _ in s.batches[0]]) for s in shares] == [
        ("http://a.example", [0, 2]),
        ("https://b.example", [1]),
        ("file://", [3]),
    ]
    assert host_of("s3://bucket/k.jpg") == "s3://bucket" and host_of("no scheme") == "://"


def test_shares_never_outnumber_the_host_concurrency_or_workers():
    urls = [f"http://a.example/{n}.jpg" for n in range(100)]
    assert len(plan_shares(requests_for(urls), CrawlConfig(per_host_concurrency=1), 8, 4)) == 1
    assert len(plan_shares(requests_for(urls), CrawlConfig(per_host_concurrency=16), 3, 4)) == 3
    with pytest.raises(ValueError, match="at least 1"):
        plan_shares(requests_for(urls), CrawlConfig(), 0, 4)
