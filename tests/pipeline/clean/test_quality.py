"""quality: metrics and flags on real photos and on degraded copies of them."""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipeline.clean import (
    FLAG_NAMES,
    NormalizedImage,
    QualityThresholds,
    estimate_jpeg_quality,
    flags,
    measure,
)
from pipeline.clean.quality import DegradationMetrics, measure_degradation
from tests.pipeline.clean.conftest import encode

THRESHOLDS = QualityThresholds()


def flags_of(pixels: np.ndarray, stored_format: str = "png", stored_bytes: bytes | None = None) -> list[str]:
    height, width, _ = pixels.shape
    return flags(measure(pixels, stored_format, stored_bytes), width, height, THRESHOLDS)


def test_real_originals_raise_no_flags(apparel: NormalizedImage, gear_bytes: bytes) -> None:
    assert flags_of(apparel.pixels, "jpeg", apparel.stored_bytes) == []
    gear = np.asarray(Image.open(io.BytesIO(gear_bytes)).convert("RGB"))
    assert flags_of(gear, "jpeg", gear_bytes) == []


def test_real_photo_metrics_are_in_their_documented_ranges(
    apparel: NormalizedImage, gear_bytes: bytes
) -> None:
    metrics = measure(apparel.pixels, "jpeg", apparel.stored_bytes)
    assert metrics.jpeg_quality is not None and 80 <= metrics.jpeg_quality <= 100
    assert 0.0 <= metrics.brightness <= 1.0 and 0.0 <= metrics.contrast <= 0.5
    assert 0.0 <= metrics.entropy <= np.log2(768) and metrics.colorfulness >= 0.0
    assert metrics.aspect_ratio == pytest.approx(1274 / 1580)
    gear = np.asarray(Image.open(io.BytesIO(gear_bytes)).convert("RGB"))
    assert measure(gear, "jpeg", gear_bytes).white_background_ratio > 0.9  # a foam roller on white
    assert all(isinstance(getattr(metrics, f.name), float) for f in dataclasses.fields(metrics))


def test_darkened_copy_is_flagged_dark(apparel: NormalizedImage) -> None:
    darkened = (apparel.pixels.astype(np.float32) * 0.25).astype(np.uint8)
    assert "dark" in flags_of(darkened)


def test_blurred_copy_is_flagged_blurry(apparel: NormalizedImage) -> None:
    blurred = np.asarray(Image.fromarray(apparel.pixels).filter(ImageFilter.GaussianBlur(6)))
    metrics = measure(blurred, "png")
    assert metrics.sharpness < measure(apparel.pixels, "png").sharpness / 10
    assert "blurry" in flags_of(blurred) and "blurry" not in flags_of(apparel.pixels)


def test_noisy_copy_is_flagged_noisy(apparel: NormalizedImage) -> None:
    rng = np.random.default_rng(0)
    noisy = np.clip(apparel.pixels + rng.normal(0.0, 12.0, apparel.pixels.shape), 0, 255).astype(np.uint8)
    assert measure(noisy, "png").noise_sigma == pytest.approx(12.0, rel=0.2)
    assert "noisy" in flags_of(noisy) and "noisy" not in flags_of(apparel.pixels)


def test_washed_out_copy_is_flagged_light(apparel: NormalizedImage) -> None:
    washed = (255 - (255 - apparel.pixels.astype(np.float32)) * 0.04).astype(np.uint8)
    assert "light" in flags_of(washed)


def test_gray_copy_is_flagged_grayscale_and_colour_measured(apparel: NormalizedImage) -> None:
    gray = np.repeat(np.asarray(Image.fromarray(apparel.pixels).convert("L"))[..., None], 3, axis=2)
    assert "grayscale" in flags_of(gray)
    assert measure(gray, "png").colorfulness == pytest.approx(0.0, abs=1e-6)
    assert measure(apparel.pixels, "png").colorfulness > 5.0


def test_flat_image_is_low_information_and_low_contrast() -> None:
    flat = np.full((600, 600, 3), (120, 130, 140), dtype=np.uint8)
    raised = flags_of(flat)
    assert {"low_information", "low_contrast", "blurry"} <= set(raised)


def test_odd_aspect_and_odd_size_come_from_the_dimensions(apparel: NormalizedImage) -> None:
    metrics = measure(apparel.pixels, "png")
    assert "odd_aspect" in flags(metrics, 3000, 1000, THRESHOLDS)
    assert "odd_size" in flags(metrics, 300, 400, THRESHOLDS)
    assert "odd_size" in flags(metrics, 8000, 6000, THRESHOLDS)
    assert not {"odd_aspect", "odd_size"} & set(flags(metrics, 1274, 1580, THRESHOLDS))


@pytest.mark.parametrize("quality", [10, 30, 50, 70, 90, 95])
def test_jpeg_quality_is_read_from_quantization_tables(apparel: NormalizedImage, quality: int) -> None:
    data = encode(apparel.pixels, "JPEG", quality=quality)
    assert estimate_jpeg_quality(data) == quality
    reencoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    raised = flags_of(reencoded, "jpeg", data)
    assert ("low_jpeg_quality" in raised) == (quality < THRESHOLDS.low_jpeg_quality_max)
    assert measure(reencoded, "png").jpeg_quality is None


def test_unreadable_jpeg_header_gives_no_quality() -> None:
    assert estimate_jpeg_quality(b"\xff\xd8\xff\xe0 garbage") is None


def test_blockiness_rises_with_jpeg_compression() -> None:
    rows, cols = np.mgrid[0:512, 0:512].astype(np.float32)
    wave = 128 + 100 * np.sin(cols / 23.0) * np.cos(rows / 31.0)  # smooth, steep enough to show blocks
    smooth = np.stack([wave, 255 - wave, np.full_like(wave, 128)], axis=2).astype(np.uint8)
    scores = [measure(smooth, "png").blockiness]
    for quality in (90, 50, 10):
        data = encode(smooth, "JPEG", quality=quality)
        scores.append(measure(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), "png").blockiness)
    assert scores[0] < 1.1 and scores[-1] > 3.0
    assert scores == sorted(scores), scores


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 9), (48, 48), (120, 90)])
def test_tiny_images_measure_without_errors(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    metrics = measure(pixels, "png")
    assert all(
        np.isfinite(getattr(metrics, f.name)) for f in dataclasses.fields(metrics) if f.name != "jpeg_quality"
    )


def test_bad_arguments_raise_value_error(apparel: NormalizedImage) -> None:
    with pytest.raises(ValueError, match="stored_bytes"):
        measure(apparel.pixels, "jpeg")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        measure(apparel.pixels.astype(np.float32), "png")
    assert apparel.image is not None
    with pytest.raises(ValueError, match="RGB Pillow image"):
        measure(apparel.pixels, "png", image=apparel.image.convert("L"))
    with pytest.raises(ValueError, match="RGB Pillow image"):
        measure(apparel.pixels, "png", image=apparel.image.crop((0, 0, 100, 100)))


def test_metrics_from_the_decoded_image_equal_metrics_from_pixels(apparel: NormalizedImage) -> None:
    from_image = measure(apparel.pixels, "jpeg", apparel.stored_bytes, image=apparel.image)
    assert from_image == measure(apparel.pixels, "jpeg", apparel.stored_bytes)


@pytest.mark.parametrize("size", [None, (120, 90), (20, 30)])
def test_degradation_metrics_equal_measure(apparel: NormalizedImage, size: tuple[int, int] | None) -> None:
    pixels = apparel.pixels if size is None else np.asarray(apparel.image.resize(size))
    full = measure(pixels, "png")
    assert measure_degradation(pixels) == DegradationMetrics(
        full.sharpness, full.noise_sigma, full.blockiness
    )
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        measure_degradation(pixels[..., 0])


def test_flag_names_are_the_documented_set() -> None:
    assert FLAG_NAMES == (
        "dark",
        "light",
        "blurry",
        "low_information",
        "low_contrast",
        "grayscale",
        "odd_aspect",
        "odd_size",
        "noisy",
        "low_jpeg_quality",
    )


def test_measure_costs_a_few_ms_on_a_real_photo(apparel: NormalizedImage) -> None:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        measure(apparel.pixels, "jpeg", apparel.stored_bytes)
        best = min(best, time.process_time() - started)
    print(f"\nmeasure on a {apparel.width}x{apparel.height} photo: {best * 1000:.1f} ms CPU")
    assert best < 0.025  # measured about 5 ms on a 2-core CI machine
