"""file:// and s3:// sources: real bytes, missing objects, folders, size limit; S3 on a moto server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pipeline.crawl import CrawlConfig, FetchRequest, crawl_all
from pipeline.crawl.storage_source import read_storage_object
from schemas.reasons import Reason


def test_file_uri_reads_the_exact_bytes(product_photos, photo_names, photo_bytes):
    reason, detail, data = read_storage_object((product_photos / photo_names[0]).as_uri(), {}, 2**26)
    assert (reason, detail, data) == (None, "ok", photo_bytes)


def test_missing_file_and_folder_are_source_not_found(tmp_path):
    assert read_storage_object((tmp_path / "nope.jpg").as_uri(), {}, 100)[0] == Reason.SOURCE_NOT_FOUND
    assert read_storage_object(tmp_path.as_uri(), {}, 100)[0] == Reason.SOURCE_NOT_FOUND


def test_object_over_the_limit_is_too_large(tmp_path):
    (tmp_path / "big.jpg").write_bytes(b"\xff\xd8\xff" + bytes(1000))
    reason, _, data = read_storage_object((tmp_path / "big.jpg").as_uri(), {}, 1000)
    assert reason == Reason.TOO_LARGE and data is None
    assert read_storage_object((tmp_path / "big.jpg").as_uri(), {}, 1003)[0] is None


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_source_ok_and_missing(s3_endpoint, photo_bytes, monkeypatch):
    import fsspec

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint}}
    s3 = fsspec.filesystem("s3", **options)
    s3.mkdir("crawl-bucket")
    s3.pipe("crawl-bucket/feed/p1.jpg", photo_bytes)
    s3.pipe("crawl-bucket/feed/p2.jpg", b"<html>not an image</html>")

    config = CrawlConfig(storage_options=options)
    requests = [FetchRequest(name, f"s3://crawl-bucket/feed/{name}.jpg") for name in ("p1", "p2", "p3")]
    ok, not_image, missing = crawl_all(requests, config)
    assert ok.ok and ok.content == photo_bytes and ok.media_format == "jpeg" and ok.http_status is None
    assert not_image.reason == Reason.NOT_AN_IMAGE
    assert missing.reason == Reason.SOURCE_NOT_FOUND and missing.attempts == 1
