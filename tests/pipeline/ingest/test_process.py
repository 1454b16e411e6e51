"""Process: per-image cleaning (learned score and compliance included), and one batch fetched and cleaned
with results in input order."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from pipeline.clean import COLOR_SIGNATURE_BYTES, CleanConfig, QualityMetrics, Rejection, check_compliance
from pipeline.clean.normalize import decode_rgb
from pipeline.crawl import CrawlConfig, FetchRequest
from pipeline.ingest.process import ProcessedImage, crawl_and_clean, process_image
from pipeline.ingest.scoring import QualityModel
from pipeline.quality import QualityScorer
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


def test_the_learned_score_is_the_scorers_on_the_decoded_pixels_and_low_ones_are_rejected(
    product_photos, quality_model_file
):
    data = (product_photos / PHOTO).read_bytes()
    onnx = quality_model_file.read_bytes()
    model = QualityModel(str(quality_model_file), onnx, hashlib.sha256(onnx).hexdigest())
    pixels = np.asarray(decode_rgb(data))
    expected = QualityScorer(quality_model_file).score_rgb(pixels)  # a scorer of its own, on the file
    scored = process_image(data, CleanConfig(), model)
    assert isinstance(scored, ProcessedImage) and 0.0 <= scored.quality_learned <= 5.0
    assert scored.quality_learned == pytest.approx(expected, abs=1e-6)
    assert model.scorer() is model.scorer()  # one scorer per process and model
    # the compliance measures come from the same pixels, with or without a model
    unscored = process_image(data, CleanConfig())
    assert scored.compliance == unscored.compliance == check_compliance(pixels, CleanConfig().compliance)
    assert unscored.quality_learned is None and replace(scored, quality_learned=None) == unscored
    assert (
        not scored.compliance.compliant and scored.compliance.long_side == 1580
    )  # apparel: runs off the frame

    strict = replace(model, min_quality=round(expected + 0.001, 4))
    rejected = process_image(data, CleanConfig(), strict)
    assert isinstance(rejected, Rejection) and rejected.reason == Reason.LOW_QUALITY
    assert f"learned quality {expected:.4f}" in rejected.detail
    assert f"below ingest.min_quality {strict.min_quality:g}" in rejected.detail
    at_the_threshold = process_image(data, CleanConfig(), replace(model, min_quality=scored.quality_learned))
    assert isinstance(at_the_threshold, ProcessedImage)  # only scores below the threshold are rejected


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


def test_a_batch_keeps_input_order_and_carries_the_bytes_to_store(product_photos):
    png = bad_images.png(4)
    with LoopbackHTTPServer(product_photos) as server:
        server.add_route("/gone.jpg", Route(statuses=(404,)))
        server.add_route("/blocks.png", Route(body=png, content_type="image/png"))
        server.add_route("/broken.jpg", Route(body=bad_images.corrupt_jpeg(5), content_type="image/jpeg"))
        server.add_route("/cmyk.jpg", Route(body=bad_images.cmyk_jpeg(9), content_type="image/jpeg"))
        urls = [server.url(p) for p in (f"/{PHOTO}", "/gone.jpg", "/blocks.png", "/broken.jpg", "/cmyk.jpg")]
        urls.append(f"file://{product_photos / PHOTO}")
        requests = [FetchRequest(url, url) for url in urls]
        results = crawl_and_clean(
            requests, CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0), CleanConfig()
        )
    assert [r.fetch.key for r in results] == urls
    photo, gone, blocks, broken, cmyk, local = results
    assert gone.fetch.reason == Reason.HTTP_CLIENT_ERROR and gone.image is None
    assert broken.fetch.ok and broken.rejection.reason == Reason.DECODE_ERROR
    assert all(r.fetch.content is None for r in results)  # the fetched body is dropped...
    assert photo.image.stored_bytes == (product_photos / PHOTO).read_bytes()  # ...and kept as stored bytes
    assert blocks.image.stored_bytes == png
    assert (
        cmyk.image.reencoded
        and hashlib.sha256(cmyk.image.stored_bytes).hexdigest() == cmyk.image.bytes_sha256
    )
    assert local.image.image_id == photo.image.image_id


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


def test_identical_bodies_are_cleaned_once_with_the_same_outcomes(product_photos, monkeypatch):
    import pipeline.ingest.process as process

    crawl = CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0)
    runs, cleaned = {}, []
    real_process_image = process.process_image
    monkeypatch.setattr(
        process, "process_image", lambda *args: cleaned.append(1) or real_process_image(*args)
    )
    with LoopbackHTTPServer(product_photos) as server:
        urls = _identical_bodies_cases(server, product_photos)
        requests = [FetchRequest(url, url) for url in urls]
        for reuse in (True, False):
            cleaned.clear()
            runs[reuse] = (crawl_and_clean(requests, crawl, CleanConfig(), reuse), len(cleaned))
    (reused, reused_cleanings), (fresh, fresh_cleanings) = runs[True], runs[False]
    assert [r.fetch.key for r in reused] == [r.fetch.key for r in fresh] == urls
    for a, b in zip(reused, fresh, strict=True):  # every field but the fetch clock
        assert replace(a.fetch, fetched_at=None, elapsed_s=0) == replace(
            b.fetch, fetched_at=None, elapsed_s=0
        )
        assert a.rejection == b.rejection and a.image == b.image
    photo_1, photo_2, photo_3, cmyk_a, cmyk_b, broken_a, broken_b, same_pixels = reused
    # copies share one cleaning result: the same object (sent back once), one rejection
    assert photo_1.image is photo_2.image is photo_3.image
    assert cmyk_a.image is cmyk_b.image and cmyk_a.image.reencoded
    assert broken_a.rejection == broken_b.rejection and broken_a.rejection.reason == Reason.DECODE_ERROR
    # other bytes, same pixels: cleaned on its own, and the image_id makes it an exact duplicate later
    assert same_pixels.image is not photo_1.image and same_pixels.image.image_id == photo_1.image.image_id
    assert (reused_cleanings, fresh_cleanings) == (4, 8)  # distinct bodies vs every URL


def test_a_bug_past_the_decoder_fails_the_run_instead_of_becoming_decode_errors(
    product_photos, tmp_path, monkeypatch
):
    """Bad bytes are still decode_error rejections; a bug in the metrics raises, for one image and from a
    batch, with the URL in a note."""
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
    with pytest.raises(ZeroDivisionError, match="regression") as raised:
        crawl_and_clean([FetchRequest("photo", url)], CrawlConfig(), CleanConfig())
    assert any(url in note for note in getattr(raised.value, "__notes__", []))


def test_batches_in_one_process_read_a_hosts_robots_txt_once(product_photos):
    crawl = CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0)
    with LoopbackHTTPServer(product_photos) as server:
        server.set_robots("User-agent: *\nDisallow: /*.png$\n")
        server.add_route("/blocked.png", Route(body=bad_images.png(11), content_type="image/png"))
        for copy in range(3):  # three batches, as a Dask worker runs them one after another
            photo, blocked = crawl_and_clean(
                [FetchRequest(u, u) for u in (server.url(f"/{PHOTO}?b={copy}"), server.url("/blocked.png"))],
                crawl,
                CleanConfig(),
                run="one-run",
            )
            assert photo.image is not None and blocked.fetch.reason == Reason.ROBOTS_DISALLOWED
        assert server.hits("/robots.txt") == 1 and server.hits("/blocked.png") == 0
