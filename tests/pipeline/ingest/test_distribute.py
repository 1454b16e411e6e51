"""Distribute: a partition's URLs fetched and cleaned on a real 2-worker Dask LocalCluster: input order and
spooled bytes, one host's concurrency held across both workers, and a worker killed mid-partition."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, get_task_stream

from pipeline.clean import CleanConfig
from pipeline.cluster import start_local_cluster
from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.distribute import fetch_and_process
from pipeline.ingest.process import Spool
from pipeline.ingest.run import ingest_partition
from tests.support import bad_images
from tests.support.catalog_feed import catalog_rows, write_feed
from tests.support.http_server import LoopbackHTTPServer, Route

PHOTO = "mh01-black_main.jpg"


@pytest.fixture(scope="module")
def client():
    cluster = start_local_cluster(2)
    with Client(cluster) as running:
        yield running
    cluster.close()


def test_results_come_back_in_input_order_with_their_bytes_spooled(client, product_photos, tmp_path):
    with LoopbackHTTPServer(product_photos) as server, Spool(str(tmp_path)) as spool:
        server.add_route("/gone.jpg", Route(statuses=(404,)))
        urls = [server.url(f"/{PHOTO}?copy={n}") for n in range(3)] + [server.url("/gone.jpg")]
        urls.append(f"file://{product_photos / PHOTO}")
        seen = []
        results = fetch_and_process(
            [FetchRequest(u, u) for u in urls],
            CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0),
            CleanConfig(),
            spool,
            client,
            batch_urls=2,
            progress=lambda done, total: seen.append((done, total)),
        )
        photo = (product_photos / PHOTO).read_bytes()
        assert all(spool.read(r.image.spool_at) == photo for r in results if r.image is not None)
    assert [r.fetch.key for r in results] == urls
    assert results[3].image is None and results[3].fetch.reason == "http_client_error"
    assert all(r.image is None or r.image.stored_bytes is None for r in results)  # bytes live in the spool
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_one_hosts_concurrency_holds_across_both_workers(client):
    """16 slow URLs of one host with per_host_concurrency=2: both workers fetch, never more than 2 at once."""
    with LoopbackHTTPServer() as server, Spool() as spool:
        for n in range(16):
            body = bad_images.jpeg(100 + n)
            server.add_route(
                f"/{n}.jpg",
                Route(body=body, content_type="image/jpeg", drip_interval_s=0.05, drip_chunk=2048),
            )
        crawl = CrawlConfig(
            allow_hosts=["127.0.0.1"], per_host_concurrency=2, global_concurrency=8, max_retries=0
        )
        requests = [FetchRequest(server.url(f"/{n}.jpg"), server.url(f"/{n}.jpg")) for n in range(16)]
        with get_task_stream(client) as stream:
            results = fetch_and_process(requests, crawl, CleanConfig(), spool, client, batch_urls=2)
        peak = server.peak_in_flight()
    ran_on = {t["worker"] for t in stream.data if str(t["key"]).startswith("ingest-batch")}
    assert all(r.image is not None for r in results)
    assert len(ran_on) == 2, ran_on  # the host's URLs were spread over both workers...
    assert 1 <= peak <= 2, peak  # ...and its limit held across them: 16 slow URLs, never more than 2 at once


def test_a_worker_killed_mid_partition_changes_nothing_committed(
    client, product_photos, local_storage, tmp_path
):
    rows = catalog_rows(product_photos)[:24]
    config = IngestConfig(crawl=CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0), batch_urls=2)
    with LoopbackHTTPServer(product_photos) as server:
        feed = str(write_feed(tmp_path / "feed.csv", rows, server.base_url))
        clean = ingest_partition(feed, "2026-04-01", local_storage, config, client=client)

        killed: list[int] = []

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [
                    w
                    for w, keys in client.processing().items()
                    if any("ingest-batch" in str(k) for k in keys)
                ]
                if busy and server.total_hits() > 6:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.01)

        server.reset_hits()
        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        again = ingest_partition(feed, "2026-04-01", local_storage, config, client=client)
        killer.join()
    assert killed, "the test must have killed a worker while it held a batch"
    assert again.unchanged and again.manifest.content_digest == clean.manifest.content_digest
    assert (again.accepted, again.duplicates, again.rejected) == (
        clean.accepted,
        clean.duplicates,
        clean.rejected,
    )
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
