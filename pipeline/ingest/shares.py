"""Shares: split a partition's distinct URLs into per-host shares of batches for the Dask workers, so that
each host's politeness limits hold across the whole cluster.

In: `FetchRequest`s, the `CrawlConfig`, the number of workers and the batch size. Out: `Share`s, each
holding URLs of one host (host:port; `file://` / `s3://` sources group by bucket or folder root, an
unparsable URL goes with the others that cannot be parsed), a crawl config whose per-host concurrency and
rate are this share's part of the host's limits (the parts add up to the host's limits), and its URLs
cut into batches of at most `batch_urls`, each item keeping its position in the input.

A host gets as many shares as can run at once (at most the worker count, its per-host concurrency, and
its number of batches). The driver keeps one batch of a share in flight at a time, so however Dask places
the batches, a host never has more than `per_host_concurrency` requests in flight or more than
`per_host_rate` requests a second from the cluster. robots.txt is read once per worker process and host;
a `Retry-After` slows the share that received it, and the host's other shares when they are told too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL

from pipeline.crawl import CrawlConfig, FetchRequest

Batch = list[tuple[int, FetchRequest]]  # (position in the partition's requests, request)


@dataclass(frozen=True)
class Share:
    host: str
    crawl: CrawlConfig  # per_host_concurrency / per_host_rate: this share's part of the host's limits
    batches: list[Batch]


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
        for number in range(count):
            part = items[number::count]  # round robin: every share's URLs stay in input order
            concurrency = crawl.per_host_concurrency // count + (number < crawl.per_host_concurrency % count)
            limits = {
                "per_host_concurrency": concurrency,
                "per_host_rate": crawl.per_host_rate / count,
                # a share fetches from its host only (redirects aside): no more in flight than the host allows
                "global_concurrency": min(crawl.global_concurrency, concurrency),
            }
            batches = [part[at : at + batch_urls] for at in range(0, len(part), batch_urls)]
            shares.append(Share(host, crawl.model_copy(update=limits), batches))
    return shares
