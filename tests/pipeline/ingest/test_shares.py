"""Shares: a host's limits split across its shares and add up to the host's; batches keep input order and
shrink towards the end of a host's URLs."""

from __future__ import annotations

import pytest

from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.shares import MIN_BATCH_URLS, HostQueue, host_of, plan_shares


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
    assert shares[0].queue is shares[1].queue  # one host, one queue
    batches = []
    while batch := shares[len(batches) % 2].queue.take():
        batches.append([p for p, _ in batch])
    assert [p for batch in batches for p in batch] == list(range(10))  # every URL once, in input order
    assert all(len(b) <= 3 for b in batches)


def test_batches_shrink_so_a_hosts_shares_finish_together():
    queue = HostQueue([(n, None) for n in range(476)], shares=2, batch_urls=64)
    sizes = []
    while batch := queue.take():
        sizes.append(len(batch))
    assert sum(sizes) == 476 and sizes[:4] == [64] * 4
    assert sizes == sorted(sizes, reverse=True)  # full batches first, then ever smaller ones
    assert all(size >= MIN_BATCH_URLS for size in sizes[:-1]) and sizes[-1] <= MIN_BATCH_URLS
    assert len(sizes) <= 12  # a few more round trips than 476 / 64, not one per URL


def test_hosts_are_kept_apart_and_small_hosts_get_one_share():
    urls = ["http://a.example/1.jpg", "https://b.example/1.jpg", "http://a.example/2.jpg", "file:///x/y.jpg"]
    shares = plan_shares(requests_for(urls), CrawlConfig(per_host_concurrency=1), workers=4, batch_urls=64)
    assert [(s.host, [p for p, _ in s.queue.take()]) for s in shares] == [
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
