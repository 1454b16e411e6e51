"""Process: per-image cleaning, and fetching + cleaning on a process pool with results in input order."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.clean import COLOR_SIGNATURE_BYTES, CleanConfig, QualityMetrics, Rejection
from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.process import ProcessedImage, Spool, fetch_and_process, process_image
from schemas.image_index import QUALITY_METRIC_COLUMNS
from schemas.reasons import Reason
from tests.support import bad_images
from tests.support.http_server import LoopbackHTTPServer, Route

PHOTO = "mh01-black_main.jpg"


def test_real_photo_keeps_its_original_bytes(product_photos):
    data = (product_photos / PHOTO).read_bytes()
    image = process_image(data, CleanConfig())
    assert isinstance(image, ProcessedImage)
    assert (image.width, image.height, image.stored_format, image.reencoded) == (1274, 1580, "jpeg", False)
    # the caller holds the original bytes, so they are not sent back from the worker
    assert image.stored_bytes is None and image.stored_size == len(data)
    assert image.bytes_sha256 == hashlib.sha256(data).hexdigest()
    assert set(image.metrics) == set(QualityMetrics.__dataclass_fields__) == set(QUALITY_METRIC_COLUMNS)
    assert 0 <= image.phash < 2**64 and len(image.image_id) == 64
    assert len(image.color_signature) == COLOR_SIGNATURE_BYTES


def test_changed_pixels_are_stored_losslessly_and_bad_bytes_are_rejections():
    cmyk = process_image(bad_images.cmyk_jpeg(1), CleanConfig())
    assert isinstance(cmyk, ProcessedImage)
    assert cmyk.reencoded and cmyk.stored_format == "png" and "cmyk" in cmyk.normalize_flags
    assert (
        cmyk.stored_bytes is not None and hashlib.sha256(cmyk.stored_bytes).hexdigest() == cmyk.bytes_sha256
    )
    assert cmyk.metrics["jpeg_quality"] is None  # stored as PNG: the JPEG metric does not apply

    for data, reason in [
        (bad_images.corrupt_jpeg(2), Reason.DECODE_ERROR),
        (bad_images.bomb_png(), Reason.DECOMPRESSION_BOMB),
        (bad_images.jpeg(3, 100, 100), Reason.TOO_SMALL),
    ]:
        result = process_image(data, CleanConfig())
        assert isinstance(result, Rejection) and result.reason == reason


def test_fetch_and_process_spools_bytes_and_keeps_input_order(product_photos, tmp_path):
    png = bad_images.png(4)
    with LoopbackHTTPServer(product_photos) as server, Spool(str(tmp_path)) as spool:
        server.add_route("/gone.jpg", Route(statuses=(404,)))
        server.add_route("/blocks.png", Route(body=png, content_type="image/png"))
        server.add_route("/broken.jpg", Route(body=bad_images.corrupt_jpeg(5), content_type="image/jpeg"))
        urls = [
            server.url(f"/{PHOTO}"),
            server.url("/gone.jpg"),
            server.url("/blocks.png"),
            server.url("/broken.jpg"),
        ]
        urls.append(f"file://{product_photos / PHOTO}")
        requests = [FetchRequest(url, url) for url in urls]
        seen: list[tuple[int, int]] = []
        results = fetch_and_process(
            requests,
            CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0),
            CleanConfig(),
            spool,
            workers=1,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert [r.fetch.key for r in results] == urls
        photo, gone, blocks, broken, local = results
        assert gone.fetch.reason == Reason.HTTP_CLIENT_ERROR and gone.image is None
        assert broken.fetch.ok and broken.rejection.reason == Reason.DECODE_ERROR
        assert all(r.fetch.content is None for r in results)  # bytes live in the spool, not in results
        assert spool.read(photo.image.spool_at) == (product_photos / PHOTO).read_bytes()
        assert spool.read(blocks.image.spool_at) == png
        assert local.image.image_id == photo.image.image_id
        assert seen[-1] == (5, 5) and len(seen) == 5


def test_bad_worker_count_is_named():
    with Spool() as spool, pytest.raises(ValueError, match="at least one worker"):
        fetch_and_process(
            [FetchRequest("k", "file:///x.jpg")], CrawlConfig(), CleanConfig(), spool, workers=-1
        )
