"""Process: per-image cleaning, and fetching + cleaning on a process pool with results in input order."""

from __future__ import annotations

import hashlib
from dataclasses import replace

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


def _identical_bodies_cases(server, product_photos) -> list[str]:
    """URLs where most bodies repeat: a photo under 3 query strings, a CMYK JPEG (re-encoded in the worker)
    and a corrupt JPEG under 2 paths each, and a PNG of the photo's pixels (same image_id, other bytes)."""
    photo = (product_photos / PHOTO).read_bytes()
    bodies = {
        "/cmyk-a.jpg": bad_images.cmyk_jpeg(6),
        "/cmyk-b.jpg": bad_images.cmyk_jpeg(6),
        "/broken-a.jpg": bad_images.corrupt_jpeg(7),
        "/broken-b.jpg": bad_images.corrupt_jpeg(7),
        "/same-pixels.png": bad_images.as_png(photo),
    }
    for path, body in bodies.items():
        server.add_route(path, Route(body=body, content_type="image/png"))
    return [server.url(f"/{PHOTO}?copy={n}") for n in range(3)] + [server.url(p) for p in bodies]


def test_identical_bodies_are_cleaned_once_with_the_same_outcomes(product_photos, tmp_path):
    crawl = CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0)
    runs = {}
    with LoopbackHTTPServer(product_photos) as server:
        urls = _identical_bodies_cases(server, product_photos)
        requests = [FetchRequest(url, url) for url in urls]
        for reuse in (True, False):
            with Spool(str(tmp_path)) as spool:
                results = fetch_and_process(
                    requests, crawl, CleanConfig(), spool, workers=2, reuse_identical_bodies=reuse
                )
                stored = [spool.read(r.image.spool_at) if r.image else None for r in results]
                runs[reuse] = (results, stored, spool.size)
    (reused, reused_bytes, reused_spool), (fresh, fresh_bytes, fresh_spool) = runs[True], runs[False]
    assert [r.fetch.key for r in reused] == [r.fetch.key for r in fresh] == urls
    for a, b in zip(reused, fresh, strict=True):  # every field but the spool slot and the fetch clock
        assert replace(a.fetch, fetched_at=None, elapsed_s=0) == replace(
            b.fetch, fetched_at=None, elapsed_s=0
        )
        assert a.rejection == b.rejection
        assert (a.image is None) == (b.image is None)
        if a.image is not None:
            assert replace(a.image, spool_at=None) == replace(b.image, spool_at=None)
    assert reused_bytes == fresh_bytes
    photo_1, photo_2, photo_3, cmyk_a, cmyk_b, broken_a, broken_b, same_pixels = reused
    # copies share one cleaning result: one spool slot, one image_id, one rejection
    assert photo_1.image.spool_at == photo_2.image.spool_at == photo_3.image.spool_at
    assert cmyk_a.image.spool_at == cmyk_b.image.spool_at and cmyk_a.image.reencoded
    assert broken_a.rejection == broken_b.rejection and broken_a.rejection.reason == Reason.DECODE_ERROR
    # other bytes, same pixels: cleaned on its own, and the image_id makes it an exact duplicate later
    assert same_pixels.image.spool_at != photo_1.image.spool_at
    assert same_pixels.image.image_id == photo_1.image.image_id
    # each distinct body is spooled once instead of once per URL
    distinct = {r.image.bytes_sha256: r.image.stored_size for r in reused if r.image is not None}
    assert reused_spool == sum(distinct.values())
    assert fresh_spool == sum(r.image.stored_size for r in fresh if r.image is not None) > reused_spool


def test_bad_worker_count_is_named():
    with Spool() as spool, pytest.raises(ValueError, match="at least one worker"):
        fetch_and_process(
            [FetchRequest("k", "file:///x.jpg")], CrawlConfig(), CleanConfig(), spool, workers=-1
        )


def test_a_bug_past_the_decoder_fails_the_run_instead_of_becoming_decode_errors(
    product_photos, tmp_path, monkeypatch
):
    """Bad bytes are still decode_error rejections; a bug in the metrics raises, in-process and from
    the pool (forked workers inherit the monkeypatch), with the URL in a note."""
    import pipeline.ingest.process as process

    corrupt = process_image(bad_images.corrupt_jpeg(8), CleanConfig())
    assert isinstance(corrupt, Rejection) and corrupt.reason == Reason.DECODE_ERROR

    def broken_metric(*args, **kwargs):
        raise ZeroDivisionError("a regression in the quality metrics")

    monkeypatch.setattr(process, "measure", broken_metric)
    data = (product_photos / PHOTO).read_bytes()
    with pytest.raises(ZeroDivisionError, match="regression"):
        process_image(data, CleanConfig())
    still_corrupt = process_image(bad_images.corrupt_jpeg(8), CleanConfig())  # never reaches the metrics
    assert isinstance(still_corrupt, Rejection) and still_corrupt.reason == Reason.DECODE_ERROR

    url = f"file://{product_photos / PHOTO}"
    with Spool(str(tmp_path)) as spool, pytest.raises(ZeroDivisionError, match="regression") as raised:
        fetch_and_process(
            [FetchRequest("photo", url)], CrawlConfig(), CleanConfig(), spool, workers=1, start_method="fork"
        )
    assert any(url in note for note in getattr(raised.value, "__notes__", []))
