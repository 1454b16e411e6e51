"""Compliance: main-image measures on the real product photos (studio shots on white), a grey or off-white
frame, a photo under the size rule, exactness against a plain full-image computation, and the cost."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from PIL import Image

from pipeline.clean import CleanConfig, Compliance, ComplianceConfig, check_compliance
from pipeline.clean.compliance import border_band
from tests.pipeline.clean.conftest import APPAREL, GEAR

STRAP = "luma-yoga-strap.jpg"  # a gear photo that meets every rule: 1200x1200, pure white, fills the frame


def pixels_of(product_photos, name: str) -> np.ndarray:
    return np.asarray(Image.open(product_photos / name).convert("RGB"))


def reference(pixels: np.ndarray, config: ComplianceConfig) -> tuple[float, float]:
    """The same two measures the slow, obvious way: every pixel of the image looked at."""
    height, width, _ = pixels.shape
    rows, columns = border_band(height, config.border_share), border_band(width, config.border_share)
    band = np.ones((height, width), dtype=bool)
    if 2 * rows < height and 2 * columns < width:
        band[rows : height - rows, columns : width - columns] = False
    white = (pixels == 255).all(axis=2)
    product = (pixels < 255 - config.background_tolerance).any(axis=2)
    extents = []
    for axis, side in ((0, height), (1, width)):
        lines = np.flatnonzero(product.any(axis=1 - axis))
        extent = (lines[-1] - lines[0] + 1) / side if lines.size else 0.0
        extents.append(extent if side == max(height, width) else 0.0)
    return float(white[band].mean()), max(extents)


def test_real_photos_on_white_measure_what_they_show(product_photos, catalog):
    config = ComplianceConfig()
    names = sorted(catalog)[::12] + [APPAREL, GEAR, STRAP]
    for name in names:
        pixels = pixels_of(product_photos, name)
        result = check_compliance(pixels, config)
        assert (result.white_border_share, result.product_fill) == reference(pixels, config), name
        assert 0.55 <= result.white_border_share <= 1.0 and 0.4 <= result.product_fill <= 1.0, name
        assert result.long_side == max(pixels.shape[:2]) >= 1000, name

    apparel = check_compliance(pixels_of(product_photos, APPAREL))
    # the model runs off the top and bottom of the frame: the product fills it, the border is not all white
    assert apparel.product_fill > 0.95 and 0.8 < apparel.white_border_share < 0.95 and not apparel.compliant
    gear = check_compliance(pixels_of(product_photos, GEAR))
    assert gear.white_border_share == 1.0 and gear.product_fill > 0.85 and gear.compliant
    strap = check_compliance(pixels_of(product_photos, STRAP))
    assert strap == Compliance(1.0, strap.product_fill, 1200, True) and strap.product_fill >= 0.85


def test_a_grey_or_off_white_frame_is_not_a_white_background(product_photos):
    pixels = pixels_of(product_photos, STRAP).copy()
    assert check_compliance(pixels).compliant
    band = border_band(1200, ComplianceConfig().border_share)  # 12 px: the measured band, clear of the strap
    for colour, fill in ((200, 1.0), (250, None)):
        framed = pixels.copy()
        framed[:band], framed[-band:], framed[:, :band], framed[:, -band:] = colour, colour, colour, colour
        result = check_compliance(framed)
        assert result.white_border_share == 0.0 and not result.compliant
        # grey is not background, so the "product" reaches the frame; 250 is background within tolerance
        expected = fill if fill is not None else check_compliance(pixels).product_fill
        assert result.product_fill == pytest.approx(expected)


def test_a_crop_or_a_downscale_under_1000_px_fails_the_size_rule(product_photos):
    photo = Image.open(product_photos / STRAP).convert("RGB")
    smaller = np.asarray(photo.resize((900, 900), Image.Resampling.LANCZOS))
    result = check_compliance(smaller)
    assert result.long_side == 900 and not result.compliant
    assert result.white_border_share > 0.95 and result.product_fill >= 0.85  # only the size rule fails
    assert check_compliance(smaller, ComplianceConfig(min_long_side=800)).compliant
    cropped = check_compliance(np.asarray(photo.crop((150, 150, 1050, 1050))))  # the middle 900 px
    assert cropped.long_side == 900 and not cropped.compliant


def test_blank_tiny_and_square_images_and_the_config():
    blank = np.full((40, 30, 3), 255, dtype=np.uint8)
    assert check_compliance(blank) == Compliance(1.0, 0.0, 40, False)  # no product at all
    bar = np.full((1200, 1200, 3), 255, dtype=np.uint8)
    bar[550:650, 60:1140] = (20, 40, 200)  # square: the longer extent counts (here the width, 90 %)
    assert check_compliance(bar).product_fill == pytest.approx(0.9)
    tiny = np.zeros((1, 2, 3), dtype=np.uint8)
    assert check_compliance(tiny) == Compliance(0.0, 1.0, 2, False)  # all border, all product
    tiny[0, 0] = 255
    assert check_compliance(tiny).white_border_share == 0.5
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        check_compliance(np.zeros((10, 10), dtype=np.uint8))
    assert CleanConfig().compliance == ComplianceConfig()
    assert (ComplianceConfig().min_white_border_share, ComplianceConfig().min_product_fill) == (0.95, 0.85)
    with pytest.raises(ValueError, match="border_share"):
        ComplianceConfig(border_share=0)
    with pytest.raises(ValueError, match="extra"):
        ComplianceConfig(min_fill=0.5)


def test_a_1_8_megapixel_photo_costs_well_under_a_few_ms(product_photos):
    pixels = pixels_of(product_photos, APPAREL)  # 1274 x 1580 = 2.0 MP
    assert pixels.shape[0] * pixels.shape[1] > 1.8e6
    check_compliance(pixels)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        check_compliance(pixels)
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.005  # measured 0.3 ms; the bound leaves room for a busy machine
