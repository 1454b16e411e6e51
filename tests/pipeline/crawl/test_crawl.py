"""crawl / crawl_all against the loopback server: real photos, order, limits, retry of failures only,
and the per-host circuit breaker."""

from __future__ import annotations

import asyncio
import time

from pipeline.crawl import FetchRequest, crawl, crawl_all
from schemas.reasons import Reason, is_retryable
from tests.support.http_server import LoopbackHTTPServer


def test_crawls_200_real_product_photos_all_ok_in_input_order(server, config, photo_names, product_photos):
    names = photo_names[:200]
    requests = [
        FetchRequest(f"{name}#{n}", server.url(f"/{name}?copy={n}")) for n in range(2) for name in names[:100]
    ]
    requests += [FetchRequest(name, server.url(f"/{name}")) for name in names[100:]]
    results = crawl_all(requests, config.model_copy(update={"global_concurrency": 32}))
    assert [result.key for result in results] == [request.key for request in requests]
    assert all(result.ok for result in results), [r.detail for r in results if not r.ok][:3]
    for request, result in zip(requests[::37], results[::37], strict=True):
        name = request.url.rsplit("/", 1)[1].split("?")[0]
        assert result.content == (product_photos / name).read_bytes()
    assert server.target_hits(f"/{names[0]}?copy=1") == 1 and server.hits(f"/{names[0]}") == 2


def test_crawl_yields_every_result_as_it_completes(server, config, photo_names, photo_bytes):
    server.add_route(
        "/slow.jpg", body=photo_bytes[:64], content_type="image/jpeg", drip_interval_s=0.005, drip_chunk=2
    )
    requests = [FetchRequest("slow", server.url("/slow.jpg"))]
    requests += [FetchRequest(name, server.url(f"/{name}")) for name in photo_names[:5]]

    async def collect() -> list[str]:
        return [result.key async for result in crawl(requests, config)]

    keys = asyncio.run(collect())
    assert sorted(keys) == sorted(request.key for request in requests)
    assert keys[-1] == "slow"  # the slow body finishes after the fast ones


def test_per_host_concurrency_is_respected(server, config, photo_bytes):
    server.add_route(
        "/slow.jpg", body=photo_bytes[:40], content_type="image/jpeg", drip_interval_s=0.002, drip_chunk=4
    )
    limited = config.model_copy(update={"global_concurrency": 16, "per_host_concurrency": 3})
    results = crawl_all([FetchRequest(str(n), server.url(f"/slow.jpg?{n}")) for n in range(24)], limited)
    assert all(result.ok for result in results)
    assert 1 <= server.peak_in_flight() <= 3


def test_global_concurrency_bounds_requests_in_flight(server, config, photo_bytes):
    server.add_route(
        "/slow.jpg", body=photo_bytes[:40], content_type="image/jpeg", drip_interval_s=0.002, drip_chunk=4
    )
    limited = config.model_copy(update={"global_concurrency": 2, "per_host_concurrency": 2})
    results = crawl_all([FetchRequest(str(n), server.url(f"/slow.jpg?{n}")) for n in range(12)], limited)
    assert all(result.ok for result in results) and server.peak_in_flight() <= 2


def test_retrying_only_the_failed_urls(server, config, photo_names, photo_bytes):
    server.add_route("/flaky.jpg", statuses=(500, 200), body=photo_bytes, content_type="image/jpeg")
    requests = [FetchRequest(name, server.url(f"/{name}")) for name in photo_names[:3]]
    requests += [
        FetchRequest("flaky", server.url("/flaky.jpg")),
        FetchRequest("gone", server.url("/gone.jpg")),
    ]
    no_retries = config.model_copy(update={"max_retries": 0})
    first = crawl_all(requests, no_retries)
    assert [r.reason for r in first] == [None, None, None, Reason.HTTP_SERVER_ERROR, Reason.HTTP_CLIENT_ERROR]

    retry = [
        request
        for request, result in zip(requests, first, strict=True)
        if result.reason and is_retryable(result.reason)
    ]
    second = crawl_all(retry, no_retries)
    assert [(r.key, r.ok) for r in second] == [("flaky", True)]
    assert [server.hits(f"/{name}") for name in photo_names[:3]] == [1, 1, 1]
    assert server.hits("/flaky.jpg") == 2 and server.hits("/gone.jpg") == 1


def test_robots_txt_is_fetched_once_per_host(server, config, photo_names):
    server.set_robots("User-agent: *\nAllow: /\n")
    results = crawl_all([FetchRequest(name, server.url(f"/{name}")) for name in photo_names[:40]], config)
    assert all(result.ok for result in results) and server.hits("/robots.txt") == 1


def test_empty_input_and_early_stop(server, config, photo_names):
    assert crawl_all([], config) == []

    async def first_only() -> str:
        requests = (FetchRequest(name, server.url(f"/{name}")) for name in photo_names)
        async for result in crawl(requests, config):
            return result.key  # leaving early must cancel the other workers cleanly
        return ""

    assert asyncio.run(first_only()) in photo_names
    assert server.total_hits() < len(photo_names)


def test_lazy_input_is_read_as_workers_free_up(server, config, photo_names):
    taken: list[int] = []

    def requests():
        for n, name in enumerate(photo_names[:20]):
            taken.append(n)
            yield FetchRequest(name, server.url(f"/{name}"))

    results = crawl_all(
        requests(), config.model_copy(update={"global_concurrency": 4, "per_host_concurrency": 4})
    )
    assert len(results) == 20 == len(taken) and all(result.ok for result in results)


def test_per_host_rate_spaces_requests(server, config, photo_names):
    paced = config.model_copy(update={"per_host_rate": 20.0, "respect_robots": False})
    started = time.perf_counter()
    results = crawl_all([FetchRequest(name, server.url(f"/{name}")) for name in photo_names[:6]], paced)
    assert all(result.ok for result in results)
    assert time.perf_counter() - started >= 5 / 20.0 * 0.9  # 6 starts at 20/s span at least 0.25 s


def test_breaker_stops_requests_to_a_failing_host_but_not_to_others(
    server, config, product_photos, photo_names
):
    down = server.add_route("/down.jpg", statuses=(503,))
    one_at_a_time = config.model_copy(
        update={"global_concurrency": 1, "per_host_concurrency": 1, "max_retries": 1, "breaker_failures": 3}
    )
    with LoopbackHTTPServer(product_photos) as healthy:
        requests = []
        for n in range(10):
            requests += [
                FetchRequest(f"down{n}", f"{down}?n={n}"),
                FetchRequest(f"up{n}", healthy.url(f"/{photo_names[n]}")),
            ]
        results = crawl_all(requests, one_at_a_time)
    failing, others = results[::2], results[1::2]
    assert [r.reason for r in failing] == [Reason.HTTP_SERVER_ERROR] * 3 + [Reason.HOST_UNAVAILABLE] * 7
    assert server.hits("/down.jpg") == 3 * 2  # three URLs with their retry each, then nothing
    refused = failing[-1]
    assert (refused.http_status, refused.content, is_retryable(refused.reason)) == (None, None, True)
    assert "3 consecutive failures" in refused.detail and "HTTP 503" in refused.detail
    assert all(result.ok for result in others)


def test_an_answer_resets_the_breaker_count(server, config, photo_bytes):
    url = server.add_route(
        "/flaky.jpg", statuses=(503, 503, 200, 503), body=photo_bytes, content_type="image/jpeg"
    )
    serial = config.model_copy(
        update={"global_concurrency": 1, "per_host_concurrency": 1, "max_retries": 0, "breaker_failures": 3}
    )
    results = crawl_all([FetchRequest(str(n), f"{url}?n={n}") for n in range(8)], serial)
    assert [r.reason for r in results] == [
        *[Reason.HTTP_SERVER_ERROR] * 2,
        None,
        *[Reason.HTTP_SERVER_ERROR] * 3,
        *[Reason.HOST_UNAVAILABLE] * 2,
    ]
    assert server.hits("/flaky.jpg") == 6


def test_breaker_bounds_requests_to_a_dead_host_under_concurrency(server, config):
    down = server.add_route("/down.jpg", statuses=(500,))
    parallel = config.model_copy(
        update={"global_concurrency": 8, "per_host_concurrency": 8, "max_retries": 1, "breaker_failures": 3}
    )
    results = crawl_all([FetchRequest(str(n), f"{down}?n={n}") for n in range(60)], parallel)
    reasons = [result.reason for result in results]
    assert set(reasons) == {Reason.HTTP_SERVER_ERROR, Reason.HOST_UNAVAILABLE}
    # Only URLs started before the breaker opened (3 + at most 7 others in flight) reach the server,
    # and a retry due after the opening is refused too.
    assert reasons.count(Reason.HOST_UNAVAILABLE) >= 50 and server.hits("/down.jpg") <= 2 * 10


def test_breaker_off_tries_every_url(server, config):
    down = server.add_route("/down.jpg", statuses=(503,))
    off = config.model_copy(update={"global_concurrency": 4, "max_retries": 0, "breaker_failures": 0})
    results = crawl_all([FetchRequest(str(n), f"{down}?n={n}") for n in range(12)], off)
    assert {result.reason for result in results} == {Reason.HTTP_SERVER_ERROR}
    assert server.hits("/down.jpg") == 12
