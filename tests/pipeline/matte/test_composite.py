"""Composites: params are seeded and JSON-plain, a composite is exactly alpha F + (1 - alpha) B of its own
stored layers, regenerates bit for bit from its params, and a product the photo cuts off stays cut off."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pipeline.matte.composite import KINDS, compose, composite_params
from pipeline.matte.estimate import MatteConfig, estimate_matte


@pytest.fixture(scope="module")
def estimate(shared_data):
    photo = np.asarray(Image.open(shared_data / "products/magento_luma/mp06-green_main.jpg").convert("RGB"))
    return estimate_matte(photo, MatteConfig(work_long_side=160))


@pytest.fixture(scope="module")
def scenes(shared_data):
    names = ("t1.png", "t2.png")
    return {n: np.asarray(Image.open(shared_data / "sr_train/T91" / n).convert("RGB")) for n in names}


def test_params_are_seeded_by_image_and_variant_and_round_trip_through_json(scenes):
    one = composite_params("img1", 0, sorted(scenes))
    assert one == composite_params("img1", 0, sorted(scenes)) == json.loads(json.dumps(one))
    assert one != composite_params("img1", 1, sorted(scenes)) and one != composite_params(
        "img2", 0, sorted(scenes)
    )
    kinds = {composite_params(f"img{i}", 0, sorted(scenes))["background"]["kind"] for i in range(60)}
    assert kinds == set(KINDS)
    assert all(composite_params(f"img{i}", 0)["background"]["kind"] != "scene" for i in range(30))


def test_a_composite_is_its_layers_mixed_by_its_alpha_and_regenerates(estimate, scenes):
    for variant in range(6):
        params = json.loads(json.dumps(composite_params("mp06", variant, sorted(scenes))))
        sample = compose(estimate.alpha, estimate.foreground, params, 96, scenes)
        assert sample.image.shape == (96, 96, 3) and sample.alpha.shape == (96, 96)
        a = sample.alpha.astype(np.float64)[..., None] / 255
        mixed = np.rint(a * sample.foreground + (1 - a) * sample.background)
        assert np.array_equal(mixed.astype(np.uint8), sample.image)
        again = compose(estimate.alpha, estimate.foreground, params, 96, scenes)
        assert all(
            np.array_equal(x, y) for x, y in zip(vars(sample).values(), vars(again).values(), strict=True)
        )
        assert 0.05 < sample.alpha.mean() / 255 < 0.8


def test_a_product_cut_off_at_the_top_of_the_photo_stays_at_the_top(estimate, scenes):
    assert estimate.alpha[0].max() > 0.5  # the model is cropped at the top of the photo
    sample = compose(
        estimate.alpha, estimate.foreground, composite_params("mp06", 0, sorted(scenes)), 96, scenes
    )
    assert sample.alpha[0].max() > 128


def test_an_empty_matte_is_refused():
    with pytest.raises(ValueError, match="empty"):
        compose(
            np.zeros((10, 10), np.float32), np.zeros((10, 10, 3), np.uint8), composite_params("x", 0), 32, {}
        )
