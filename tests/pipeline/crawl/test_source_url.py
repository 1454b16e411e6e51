"""Source URL validation: accepted schemes and hosts, and every kind of refusal."""

from __future__ import annotations

import pytest

from pipeline.crawl.source_url import parse_source_url
from schemas.reasons import Reason


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("HTTP://Example.com/x.jpg", "http://example.com/x.jpg"),
        ("https://shop.example/a b.jpg", "https://shop.example/a%20b.jpg"),
        ("http://bücher.example/x.jpg", "http://xn--bcher-kva.example/x.jpg"),
        ("http://[::1]:8080/x.jpg", "http://[::1]:8080/x.jpg"),
        ("  http://127.0.0.1:5/x.jpg  ", "http://127.0.0.1:5/x.jpg"),
        ("s3://bucket/key.jpg", "s3://bucket/key.jpg"),
        ("file:///data/x.jpg", "file:///data/x.jpg"),
    ],
)
def test_fetchable_urls_are_parsed(url, normalized):
    parsed, reason, detail = parse_source_url(url)
    assert (str(parsed), reason, detail) == (normalized, None, "")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.jpg", Reason.UNSUPPORTED_SCHEME),
        ("data:image/png;base64,AAAA", Reason.UNSUPPORTED_SCHEME),
        ("javascript:alert(1)", Reason.UNSUPPORTED_SCHEME),
        ("not a url", Reason.FEED_BAD_URL),
        ("http://", Reason.FEED_BAD_URL),
        ("http://example.com:notaport/a.jpg", Reason.FEED_BAD_URL),
        ("http://exa mple.com/a.jpg", Reason.FEED_BAD_URL),
        ("http://shop..example/a.jpg", Reason.FEED_BAD_URL),
        ("http://shop.example/a.jpg\r\nX-Injected: 1", Reason.FEED_BAD_URL),
        ("s3:///no-bucket.jpg", Reason.FEED_BAD_URL),
        ("", Reason.FEED_BAD_URL),
        (None, Reason.FEED_BAD_URL),
        ("//example.com/x.jpg", Reason.FEED_BAD_URL),
        ("http://-bad.example/x.jpg", Reason.FEED_BAD_URL),
    ],
)
def test_bad_urls_are_refused(url, reason):
    parsed, refusal, detail = parse_source_url(url)
    assert (parsed, refusal) == (None, reason) and detail
