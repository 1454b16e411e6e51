"""Fetch-level bad-input matrix against the real loopback server (issue 3), plus scheme handling."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from schemas.reasons import Reason, is_retryable
from tests.support.http_server import LoopbackHTTPServer

HTML = b"<!doctype html><html><head><title>Not found</title></head><body>gone</body></html>"


def test_real_product_jpeg_is_fetched_intact(server, config, fetch, photo_names, photo_bytes):
    result = fetch(server.url(f"/{photo_names[0]}"), config)
    assert result.ok and result.reason is None
    assert result.content == photo_bytes
    assert (result.media_format, result.http_status, result.attempts) == ("jpeg", 200, 1)
    assert result.fetched_at.tzinfo is not None and result.elapsed_s > 0


def test_404_is_a_client_error_not_retried(server, config, fetch):
    result = fetch(server.url("/missing.jpg"), config)
    assert (result.ok, result.reason, result.http_status) == (False, Reason.HTTP_CLIENT_ERROR, 404)
    assert result.detail == "HTTP 404 Not Found"
    assert result.attempts == 1 and server.hits("/missing.jpg") == 1
    assert result.content is None


def test_500_then_200_is_retried_and_accepted(server, config, fetch, photo_bytes):
    url = server.add_route("/flaky.jpg", statuses=(500, 200), body=photo_bytes, content_type="image/jpeg")
    result = fetch(url, config)
    assert result.ok and result.content == photo_bytes
    assert result.attempts == 2 and server.hits("/flaky.jpg") == 2


def test_500_forever_gives_up_after_max_retries(server, config, fetch):
    url = server.add_route("/down.jpg", statuses=(503,))
    result = fetch(url, config)
    assert (result.reason, result.http_status) == (Reason.HTTP_SERVER_ERROR, 503)
    assert result.attempts == config.max_retries + 1 == server.hits("/down.jpg")
    assert is_retryable(result.reason)


def test_429_waits_for_retry_after(server, config, fetch, photo_bytes):
    url = server.add_route(
        "/busy.jpg",
        statuses=(429, 200),
        body=photo_bytes,
        content_type="image/jpeg",
        status_headers={429: {"Retry-After": "1"}},
    )
    result = fetch(url, config)
    assert result.ok and result.attempts == 2
    assert result.elapsed_s >= 1.0


def test_429_with_retry_after_beyond_backoff_max_is_not_hammered(server, config, fetch):
    url = server.add_route("/away.jpg", statuses=(429,), status_headers={429: {"Retry-After": "3600"}})
    result = fetch(url, config)
    assert (result.reason, result.attempts) == (Reason.HTTP_RATE_LIMITED, 1)
    assert "Retry-After 3600" in result.detail and result.elapsed_s < 2


@pytest.fixture
def drip_url(server, photo_bytes) -> str:
    """A JPEG sent a byte per 20 ms: never silent past read_timeout_s, always past a short total_timeout_s."""
    return server.add_route(
        "/drip.jpg", body=photo_bytes[:400], content_type="image/jpeg", drip_interval_s=0.02, drip_chunk=1
    )


def test_drip_past_total_timeout_is_tried_once_by_default(server, config, fetch, drip_url):
    quick = config.model_copy(update={"total_timeout_s": 0.3, "read_timeout_s": 0.25})
    result = fetch(drip_url, quick)
    assert (result.ok, result.reason) == (False, Reason.TIMEOUT) and "total_timeout_s 0.3" in result.detail
    assert result.attempts == 1 == server.hits("/drip.jpg")
    assert is_retryable(result.reason)  # a later run may still try it


def test_drip_past_total_timeout_is_retried_when_configured(server, config, fetch, drip_url):
    quick = config.model_copy(
        update={"total_timeout_s": 0.3, "read_timeout_s": 0.25, "retry_total_timeout": True}
    )
    result = fetch(drip_url, quick)
    assert result.reason == Reason.TIMEOUT
    assert result.attempts == quick.max_retries + 1 == server.hits("/drip.jpg")


def test_silence_past_read_timeout_times_out_and_is_retried(server, config, fetch, photo_bytes):
    url = server.add_route("/stall.jpg", body=photo_bytes[:4], content_type="image/jpeg", drip_interval_s=2.0)
    quick = config.model_copy(update={"read_timeout_s": 0.2, "max_retries": 1})
    result = fetch(url, quick)
    assert result.reason == Reason.TIMEOUT and "total_timeout_s" not in result.detail
    assert result.attempts == 2 == server.hits("/stall.jpg") and result.elapsed_s < 1.5


def test_truncated_body_is_retryable(server, config, fetch, photo_bytes):
    url = server.add_route(
        "/short.jpg", body=photo_bytes[:5000], content_type="image/jpeg", declared_length=len(photo_bytes)
    )
    result = fetch(url, config)
    assert result.reason == Reason.TRUNCATED and is_retryable(result.reason)
    assert result.attempts == config.max_retries + 1


def test_html_served_as_image_is_not_an_image(server, config, fetch):
    url = server.add_route("/photo.jpg", body=HTML, content_type="image/jpeg")
    result = fetch(url, config)
    assert (result.reason, result.http_status, result.attempts) == (Reason.NOT_AN_IMAGE, 200, 1)
    assert "image/jpeg" in result.detail and result.content is None


def test_non_image_bytes_with_jpg_name_from_a_directory(tmp_path: Path, config, fetch):
    (tmp_path / "fake.jpg").write_bytes(b"MZ\x90\x00 this is an executable, not a photo" * 10)
    with LoopbackHTTPServer(tmp_path) as plain:
        result = fetch(plain.url("/fake.jpg"), config)
    assert result.reason == Reason.NOT_AN_IMAGE


def test_body_over_the_size_limit_by_content_length(server, config, fetch, photo_names, photo_bytes):
    small = config.model_copy(update={"max_body_bytes": len(photo_bytes) - 1})
    result = fetch(server.url(f"/{photo_names[0]}"), small)
    assert (result.reason, result.attempts) == (Reason.TOO_LARGE, 1)
    assert "Content-Length" in result.detail


def test_body_over_the_size_limit_while_streaming(server, config, fetch):
    # gzip: Content-Length is the small compressed size; the decompressed stream passes the limit.
    body = gzip.compress(b"\xff\xd8\xff\xe0" + bytes(4 * 2**20))
    url = server.add_route(
        "/bomb.jpg", body=body, content_type="image/jpeg", headers={"Content-Encoding": "gzip"}
    )
    result = fetch(url, config.model_copy(update={"max_body_bytes": 2**20}))
    assert result.reason == Reason.TOO_LARGE and "passed max_body_bytes" in result.detail


def test_gzip_encoded_image_within_limit_is_decoded(server, config, fetch, photo_bytes):
    url = server.add_route(
        "/gz.jpg",
        body=gzip.compress(photo_bytes),
        content_type="image/jpeg",
        headers={"Content-Encoding": "gzip"},
    )
    result = fetch(url, config)
    assert result.ok and result.content == photo_bytes


def test_redirect_loop(server, config, fetch):
    server.add_route("/loop/a", statuses=(302,), location="/loop/b")
    url = server.add_route("/loop/b", statuses=(301,), location="/loop/a")
    result = fetch(url, config)
    assert (result.reason, result.attempts) == (Reason.REDIRECT_LOOP, 1)
    assert server.hits("/loop/a") == 1 and server.hits("/loop/b") == 1


def test_redirect_chain_over_the_limit(server, config, fetch, photo_names):
    url = server.add_redirect_chain("/chain", hops=config.max_redirects + 1, target=f"/{photo_names[0]}")
    result = fetch(url, config)
    assert result.reason == Reason.TOO_MANY_REDIRECTS
    assert server.hits(f"/{photo_names[0]}") == 0


def test_redirect_chain_at_the_limit_is_followed(server, config, fetch, photo_names, photo_bytes):
    url = server.add_redirect_chain("/chain", hops=config.max_redirects, target=f"/{photo_names[0]}?x=1")
    result = fetch(url, config)
    assert result.ok and result.content == photo_bytes
    assert result.final_url == server.url(f"/{photo_names[0]}?x=1")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", Reason.BLOCKED_ADDRESS),
        ("http://[fd00:ec2::254]/latest/meta-data/", Reason.BLOCKED_ADDRESS),
        ("http://10.0.0.1/internal.jpg", Reason.BLOCKED_ADDRESS),
        ("http://metadata.google.internal/computeMetadata/v1/", Reason.BLOCKED_ADDRESS),
        ("file:///etc/passwd", Reason.UNSUPPORTED_SCHEME),
    ],
)
def test_redirect_to_private_metadata_or_local_file_is_refused(server, config, fetch, location, reason):
    url = server.add_route("/out.jpg", statuses=(302,), location=location)
    result = fetch(url, config)
    assert result.reason == reason and result.http_status is None
    assert result.final_url == location


def test_loopback_refused_when_not_allow_listed(server, config, fetch, photo_names):
    result = fetch(server.url(f"/{photo_names[0]}"), config.model_copy(update={"allow_hosts": []}))
    assert result.reason == Reason.BLOCKED_ADDRESS and "loopback" in result.detail
    assert server.total_hits() == 0  # not even robots.txt was requested


def test_robots_disallow(server, config, fetch, photo_names):
    server.set_robots("User-agent: *\nDisallow: /\n\nUser-agent: CrispBot\nDisallow: /private/\n")
    server.add_route("/private/p.jpg", body=b"\xff\xd8\xff", content_type="image/jpeg")
    refused = fetch(server.url("/private/p.jpg"), config)
    allowed = fetch(server.url(f"/{photo_names[0]}"), config)
    assert refused.reason == Reason.ROBOTS_DISALLOWED and server.hits("/private/p.jpg") == 0
    assert allowed.ok
    ignoring = fetch(server.url("/private/p.jpg"), config.model_copy(update={"respect_robots": False}))
    assert ignoring.ok


def test_redirect_into_a_robots_disallowed_path_is_refused(server, config, fetch):
    server.set_robots("User-agent: crispbot\nDisallow: /secret\n")
    url = server.add_route("/public.jpg", statuses=(302,), location="/secret/x.jpg")
    assert fetch(url, config).reason == Reason.ROBOTS_DISALLOWED
    assert server.hits("/secret/x.jpg") == 0


def test_robots_wildcard_rule_blocks_through_the_fetch_path(server, config, fetch, photo_names):
    server.set_robots("User-agent: *\nAllow: /\n\nUser-agent: crispbot\nDisallow: /*.jpg$\n")
    refused = fetch(server.url(f"/{photo_names[0]}"), config)
    assert refused.reason == Reason.ROBOTS_DISALLOWED and server.hits(f"/{photo_names[0]}") == 0
    assert fetch(server.url(f"/{photo_names[0]}?v=1"), config).ok  # `$`: the query escapes the rule


@pytest.mark.parametrize("tag", ["noai", "noimageai, noindex", "CrispBot: noai"])
def test_x_robots_tag_noai(server, config, fetch, photo_bytes, tag):
    url = server.add_route(
        "/tagged.jpg", body=photo_bytes, content_type="image/jpeg", headers={"X-Robots-Tag": tag}
    )
    result = fetch(url, config)
    assert result.reason == Reason.X_ROBOTS_NOAI and result.content is None
    assert fetch(url, config.model_copy(update={"respect_x_robots_tag": False})).ok


def test_x_robots_tag_for_another_bot_is_ignored(server, config, fetch, photo_bytes):
    url = server.add_route(
        "/other.jpg", body=photo_bytes, content_type="image/jpeg", headers={"X-Robots-Tag": "otherbot: noai"}
    )
    assert fetch(url, config).ok


def test_connection_refused_is_a_retryable_connection_error(config, fetch):
    with LoopbackHTTPServer() as closing:
        url = closing.url("/gone.jpg")
    result = fetch(url, config)
    assert result.reason == Reason.CONNECTION_ERROR and result.attempts == config.max_retries + 1


def test_file_uri_source_ok_and_missing(product_photos, config, fetch, photo_names, photo_bytes):
    present = fetch((product_photos / photo_names[0]).as_uri(), config)
    assert present.ok and present.content == photo_bytes and present.media_format == "jpeg"
    missing = fetch((product_photos / "no-such-photo.jpg").as_uri(), config)
    assert (missing.reason, missing.attempts) == (Reason.SOURCE_NOT_FOUND, 1)


def test_bad_urls_are_refused_before_any_request(config, fetch):
    for url, reason in [
        ("ftp://example.com/a.jpg", Reason.UNSUPPORTED_SCHEME),
        ("http://", Reason.FEED_BAD_URL),
    ]:
        result = fetch(url, config)
        assert (result.reason, result.attempts, result.http_status) == (reason, 0, None)


def test_unresolvable_host_is_a_dns_error(config, fetch):
    result = fetch("http://no-such-host.invalid/a.jpg", config)
    assert result.reason == Reason.DNS_ERROR and result.attempts == 1
