"""Crawl many URLs concurrently: one pooled session, global and per-host limits, results as they finish.

In: an iterable of `FetchRequest` (read lazily, so a feed of millions never sits in memory) and a
`CrawlConfig`. Out: `crawl` yields one `FetchResult` per request in completion order; `crawl_all`
runs its own event loop and returns the results in input order.

`global_concurrency` workers pull requests from the shared iterator, so at most that many fetches
are in flight; each fetch waits for its host's slot (`per_host_concurrency`, `per_host_rate`). A
host that is slow therefore holds back at most the workers that picked its URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

from pipeline.crawl.config import CrawlConfig
from pipeline.crawl.fetch import FetchContext, fetch_one, open_fetch_context
from pipeline.crawl.records import FetchRequest, FetchResult

_DONE = object()


async def _work(
    requests: Iterator[tuple[int, FetchRequest]],
    context: FetchContext,
    results: asyncio.Queue[tuple[int, FetchResult] | object],
) -> None:
    try:
        # Workers share one iterator; next() runs without awaiting, so no request is taken twice.
        for index, request in requests:
            await results.put((index, await fetch_one(request, context)))
    finally:
        results.put_nowait(_DONE)


async def crawl_indexed(
    requests: Iterable[FetchRequest], config: CrawlConfig | None = None
) -> AsyncIterator[tuple[int, FetchResult]]:
    """Like `crawl`, but each result comes with the position of its request in the input."""
    config = config or CrawlConfig()
    numbered = enumerate(requests)
    async with open_fetch_context(config) as context:
        # Unbounded, so finishing workers never block on a slow consumer while we cancel them.
        results: asyncio.Queue[tuple[int, FetchResult] | object] = asyncio.Queue()
        workers = [
            asyncio.create_task(_work(numbered, context, results), name=f"crawl-worker-{n}")
            for n in range(config.global_concurrency)
        ]
        running = len(workers)
        try:
            while running:
                item = await results.get()
                if item is _DONE:
                    running -= 1
                    continue
                yield item
            for worker in workers:
                worker.result()  # re-raise a worker's unexpected error instead of losing requests
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


async def crawl(
    requests: Iterable[FetchRequest], config: CrawlConfig | None = None
) -> AsyncIterator[FetchResult]:
    """Fetch every request; yield one `FetchResult` per request as each completes."""
    async for _, result in crawl_indexed(requests, config):
        yield result


def crawl_all(requests: Iterable[FetchRequest], config: CrawlConfig | None = None) -> list[FetchResult]:
    """Fetch every request on a fresh event loop and return the results in input order.

    Call it from synchronous code (a CLI, a Dask task, an Airflow task); inside a running event loop
    use `crawl` instead.
    """

    async def collect() -> list[FetchResult]:
        ordered: dict[int, FetchResult] = {}
        async for index, result in crawl_indexed(requests, config):
            ordered[index] = result
        return [ordered[index] for index in range(len(ordered))]

    return asyncio.run(collect())
