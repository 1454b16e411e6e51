"""Distribute: fetch and clean a partition's URLs as Dask tasks, and spool what comes back on the driver.

In: the partition's distinct `FetchRequest`s, the crawl and clean configs, a `Spool`, a `distributed.Client`
(a LocalCluster or any cluster by address), the batch size, an optional progress callback and the run's
learned quality model (`scoring.QualityModel`, or None). Out: one `Processed` per request, in input order,
its image bytes in the spool (`spool_at`) and not in memory.

This is the thin Dask adapter around `process.crawl_and_clean`: `shares.plan_shares` splits the URLs by
host, each share runs one batch at a time (the host's limits hold across workers), and the driver submits
a share's next batch (taken from its host's queue) when its last one is back, spooling results as they
arrive, so at most one batch per share sits in the driver's memory. A worker that dies mid-batch loses
nothing: the scheduler runs the batch again elsewhere (fetching and cleaning are idempotent), so the
outcomes, and the partition built from them, are those of a run without the failure. A task that raises
(a bug past the decoder) fails the run with the URL in a note.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pipeline.clean import CleanConfig
from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.process import Processed, Spool, crawl_and_clean
from pipeline.ingest.scoring import QualityModel
from pipeline.ingest.shares import Batch, plan_shares
from pipeline.video.config import VideoConfig

log = logging.getLogger(__name__)


def worker_count(client: Any) -> int:
    """Workers the cluster has now (at least 1: the scheduler queues work until one joins)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


def fetch_and_process(
    requests: Sequence[FetchRequest],
    crawl: CrawlConfig,
    clean: CleanConfig,
    spool: Spool,
    client: Any,
    batch_urls: int = 64,
    progress: Callable[[int, int], None] | None = None,
    reuse_identical_bodies: bool = True,
    quality: QualityModel | None = None,
    video: VideoConfig | None = None,
) -> list[Processed]:
    """Fetch and clean every request on the cluster (see the module docstring); results in input order."""
    from distributed import as_completed

    if not requests:
        return []
    # one copy of the model per worker, not one per task (hash=False: a fresh key, released below)
    model = client.scatter(quality, broadcast=True, hash=False) if quality is not None else None
    shares = plan_shares(requests, crawl, worker_count(client), batch_urls)
    run = uuid.uuid4().hex[:12]  # names the tasks, and scopes the workers' robots.txt memo
    results: list[Processed | None] = [None] * len(requests)
    in_flight: dict[Any, tuple[int, Batch]] = {}  # future -> (share, its batch)
    submitted = [0] * len(shares)  # batches each share has submitted: names its tasks
    arrived = as_completed()

    def submit(share: int) -> None:
        items = shares[share].queue.take()
        if not items:
            return  # the host's URLs are all handed out
        future = client.submit(
            crawl_and_clean,
            [request for _, request in items],
            shares[share].crawl,
            clean,
            reuse_identical_bodies,
            run,
            model,
            video,
            key=f"ingest-batch-{run}-{share}-{submitted[share]}",
            pure=False,
        )
        submitted[share] += 1
        in_flight[future] = (share, items)
        arrived.add(future)

    log.info(
        "ingest: %d URL(s) in %d share(s) over %d host(s), batches of up to %d, on %d Dask worker(s)",
        len(requests), len(shares), len({s.host for s in shares}), batch_urls, worker_count(client),
    )  # fmt: skip
    for share in range(len(shares)):
        submit(share)
    done = 0
    try:
        for future in arrived:
            share, items = in_flight.pop(future)
            outcomes = future.result()  # re-raises the task's exception, with its URL note
            future.release()
            slots: dict[int, Any] = {}
            for (position, _), processed in zip(items, outcomes, strict=True):
                results[position] = _spooled(processed, spool, slots)
            del outcomes, slots  # the batch's bytes are in the spool now
            done += len(items)
            if progress is not None:
                progress(done, len(requests))
            submit(share)
    finally:
        client.cancel(list(in_flight))  # a failed run leaves nothing running on the cluster
        if model is not None:
            model.release()
    missing = [requests[i].key for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} request(s) got no result, e.g. {missing[:3]}: this is a bug")
    return [r for r in results if r is not None]


def _spooled(processed: Processed, spool: Spool, slots: dict[int, Any]) -> Processed:
    """`processed` with its image's or video's bytes appended to the spool; copies of one body in a batch
    arrive as one unpickled object (`slots`: id -> spooled item, for the batch being read) and share one
    slot."""
    field = "image" if processed.image is not None else "video"
    item = getattr(processed, field)
    if item is None or item.stored_bytes is None:
        return processed
    if id(item) not in slots:
        slots[id(item)] = replace(item, stored_bytes=None, spool_at=spool.append(item.stored_bytes))
    return replace(processed, **{field: slots[id(item)]})
