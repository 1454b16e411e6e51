"""Matte estimation on real white-background product photos: a clean matte of the product, foreground colours
without the white bleed, and recorded skips for a photo that is not on white or holds no product."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.matte.estimate import MatteConfig, border_share, estimate_matte, product_mask, white_mask
from schemas.reasons import Reason


@pytest.fixture(scope="module")
def photo(shared_data):
    return np.asarray(Image.open(shared_data / "products/magento_luma/mh02-black_main.jpg").convert("RGB"))


def test_a_studio_photo_gives_a_confident_matte_of_the_product(photo):
    estimate = estimate_matte(photo, MatteConfig(work_long_side=192))
    assert estimate.reason is None and estimate.confidence > 0.85
    assert max(estimate.alpha.shape) == 192 and estimate.alpha.dtype == np.float32
    assert estimate.alpha.min() >= 0.0 and estimate.alpha.max() <= 1.0
    # the background white is alpha 0, the dark hoodie in the middle is alpha 1
    h, w = estimate.alpha.shape
    assert estimate.alpha[: h // 10, : w // 10].max() < 0.05
    assert estimate.alpha[h // 2 - 5 : h // 2 + 5, w // 2 - 5 : w // 2 + 5].min() > 0.95
    assert 0.2 < estimate.fill < 0.7


def test_foreground_colours_lose_the_white_fringe(photo):
    estimate = estimate_matte(photo, MatteConfig(work_long_side=192))
    edge = (estimate.alpha > 0.2) & (estimate.alpha < 0.8)
    assert edge.sum() > 50
    # the photo's edge pixels are mixed with white; the estimated foreground there is darker (the hoodie)
    assert estimate.foreground[edge].mean() < estimate.image[edge].mean() - 10


def test_estimation_is_deterministic(photo):
    one, two = (estimate_matte(photo, MatteConfig(work_long_side=128)) for _ in range(2))
    assert np.array_equal(one.alpha, two.alpha) and np.array_equal(one.foreground, two.foreground)


def test_a_photo_off_white_is_skipped_with_its_measure(shared_data):
    scene = np.asarray(Image.open(shared_data / "sr_train/T91/t1.png").convert("RGB"))
    estimate = estimate_matte(scene, MatteConfig())
    assert estimate.reason is Reason.MATTE_NOT_WHITE_BACKGROUND and "min_white_border=0.6" in estimate.detail


def test_a_blank_photo_is_empty():
    estimate = estimate_matte(np.full((200, 160, 3), 252, np.uint8), MatteConfig())
    assert estimate.reason is Reason.MATTE_EMPTY and estimate.fill == 0.0


def test_small_white_holes_inside_the_product_are_product():
    image = np.full((100, 100, 3), 255, np.uint8)
    image[20:80, 20:80] = 40
    image[48:52, 48:52] = 255  # a small white logo: product
    image[30:70, 60:70] = 255  # a large enclosed white area stays background
    mask = product_mask(white_mask(image, 10), max_hole_share=0.002)
    assert mask[50, 50] and not mask[50, 65] and not mask[5, 5]
    assert border_share(white_mask(image, 10)) == 1.0
