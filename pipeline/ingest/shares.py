"""Shares: split a partition's distinct URLs into per-host shares for the Dask workers, so that each host's
politeness limits hold across the whole cluster, and hand them out in batches that keep every worker busy.

In: `FetchRequest`s, the `CrawlConfig`, the number of workers and the batch size. Out: `Share`s, each
serving URLs of one host (host:port; `file://` / `s3://` sources group by bucket or folder root, an
unparsable URL goes with the others that cannot be parsed) with a crawl config whose per-host concurrency
and rate are this share's part of the host's limits (the parts add up to the host's limits). A host's
shares take their batches from one `HostQueue`, in input order, each item keeping its position in the
input.

A host gets as many shares as can run at once (at most the worker count, its per-host concurrency, and
its number of batches). The driver keeps one batch of a share in flight at a time, so however Dask
places the batches, a host never has more than `per_host_concurrency` requests in flight or more than
`per_host_rate` requests a second from the cluster. robots.txt is read once per worker process and host;
a `Retry-After` slows the share that received it, and the host's other shares when they are told too.

Batches are sized by guided self-scheduling: the next batch is the host's remaining URLs divided by its
shares, at most `batch_urls` and at least `MIN_BATCH_URLS`. A share that ran faster (cheaper images, a
worker with less else to do) simply takes more batches, and the last batches shrink, so a host's shares
finish at about the same time instead of one worker idling through another's last full batch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL

from pipeline.crawl import CrawlConfig, FetchRequest

Batch = list[tuple[int, FetchRequest]]  # (position in the partition's requests, request)
MIN_BATCH_URLS = 8  # below this a task's round trip costs more than the balance it buys


class HostQueue:
    """One host's URLs not handed out yet, in input order; its `shares` take batches from the front."""

    def __init__(self, items: Batch, shares: int, batch_urls: int):
        self._items = deque(items)
        self._shares = shares
        self._batch_urls = batch_urls

    def take(self) -> Batch:
        """The next batch (empty once every URL was handed out)."""
        size = min(self._batch_urls, max(MIN_BATCH_URLS, math.ceil(len(self._items) / self._shares)))
        return [self._items.popleft() for _ in range(min(size, len(self._items)))]


@dataclass(frozen=True)
class Share:
    host: str
    crawl: CrawlConfig  # per_host_concurrency / per_host_rate: this share's part of the host's limits
    queue: HostQueue  # shared with the host's other shares


def host_of(url: str) -> str:
    """The politeness key of a URL: scheme and host:port (`file`/`s3` sources: scheme and first part)."""
    try:
        parsed = URL(url)
        if parsed.scheme in ("http", "https"):
            return f"{parsed.scheme}://{parsed.host_port_subcomponent}"
        return f"{parsed.scheme}://{parsed.host or ''}"
    except (ValueError, TypeError):
        return "unparsable"


def plan_shares(
    requests: Sequence[FetchRequest], crawl: CrawlConfig, workers: int, batch_urls: int
) -> list[Share]:
    """The shares of `requests` (see the module docstring), hosts in order of first appearance."""
    if workers < 1 or batch_urls < 1:
        raise ValueError(f"workers={workers} and batch_urls={batch_urls} must both be at least 1")
    by_host: dict[str, Batch] = {}
    for position, request in enumerate(requests):
        by_host.setdefault(host_of(request.url), []).append((position, request))
    shares = []
    for host, items in by_host.items():
        count = max(1, min(workers, crawl.per_host_concurrency, math.ceil(len(items) / batch_urls)))
        queue = HostQueue(items, count, batch_urls)
        for number in range(count):
            concurrency = crawl.per_host_concurrency // count + (number < crawl.per_host_concurrency % count)
            limits = {
                "per_host_concurrency": concurrency,
                "per_host_rate": crawl.per_host_rate / count,
                # a share fetches from its host only (redirects aside): no more in flight than the host allows
                "global_concurrency": min(crawl.global_concurrency, concurrency),
            }
            shares.append(Share(host, crawl.model_copy(update=limits), queue))
    return shares
