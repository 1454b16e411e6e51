"""Tests for pipeline.distort.canvas: the fixed-scale canvas the quality model sees, train and serve."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.distort import CANVAS_LONG_SIDE, CANVAS_VERSION, quality_canvas
from pipeline.distort.canvas import MIN_SHORT_SIDE, canvas_size


@pytest.fixture(scope="module")
def photo(product_photos: Path) -> np.ndarray:
    """A real portrait product photo (1066 x 1500 in the Magento Luma set)."""
    return np.array(Image.open(sorted(product_photos.glob("*.jpg"))[0]).convert("RGB"))


def test_long_side_becomes_the_canvas_side_and_aspect_is_kept(photo: np.ndarray) -> None:
    height, width = photo.shape[:2]
    canvas = quality_canvas(photo)
    assert canvas.dtype == np.uint8 and canvas.shape[2] == 3
    assert max(canvas.shape[:2]) == CANVAS_LONG_SIDE == 384
    assert canvas.shape[:2] == (384, int(min(height, width) * 384 / max(height, width) + 0.5))
    landscape = quality_canvas(np.ascontiguousarray(photo.transpose(1, 0, 2)), long_side=128)
    assert landscape.shape == (int(min(height, width) * 128 / max(height, width) + 0.5), 128, 3)


def test_the_canvas_is_deterministic_and_a_canvas_is_left_as_it_is(photo: np.ndarray) -> None:
    canvas = quality_canvas(photo)
    np.testing.assert_array_equal(quality_canvas(photo), canvas)
    again = quality_canvas(canvas)
    np.testing.assert_array_equal(again, canvas)
    assert again is not canvas  # a copy: a caller writing into it cannot change the input


def test_shrinking_averages_pixel_areas(photo: np.ndarray) -> None:
    small = quality_canvas(photo, long_side=96)
    doubled = np.kron(small, np.ones((2, 2, 1), np.uint8))  # every pixel a 2x2 block
    np.testing.assert_array_equal(quality_canvas(doubled, long_side=96), small)


def test_version_1_is_one_area_pass_from_the_photo(photo: np.ndarray) -> None:
    expected = cv2.resize(photo, (273, 384), interpolation=cv2.INTER_AREA)  # what version-1 models saw
    np.testing.assert_array_equal(quality_canvas(photo, version=1), expected)


def test_version_2_halves_by_a_2x2_box_first_and_stays_close_to_version_1(photo: np.ndarray) -> None:
    assert CANVAS_VERSION == 2
    odd = photo[:1499, :1065]  # odd sides: the last row and column are left out of the halving
    pairs = odd[:1498, :1064].astype(np.int32)
    box = (pairs[0::2, 0::2] + pairs[1::2, 0::2] + pairs[0::2, 1::2] + pairs[1::2, 1::2] + 2) // 4
    expected = cv2.resize(box.astype(np.uint8), (273, 384), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(quality_canvas(odd), expected)
    difference = np.abs(quality_canvas(photo).astype(int) - quality_canvas(photo, version=1))
    assert 0 < difference.mean() < 1.5  # another filter, the same kind of area average


def test_version_2_equals_version_1_below_twice_the_canvas(photo: np.ndarray) -> None:
    under_twice = quality_canvas(photo, long_side=700, version=1)  # 700 px: under 2 x 384
    np.testing.assert_array_equal(quality_canvas(under_twice), quality_canvas(under_twice, version=1))


def test_a_small_photo_is_upscaled_bicubically(photo: np.ndarray) -> None:
    small = quality_canvas(photo, long_side=64)
    grown = quality_canvas(small)
    assert grown.shape == (384, 270, 3)  # 45 x 64 grows by exactly 6
    np.testing.assert_array_equal(grown, cv2.resize(small, (270, 384), interpolation=cv2.INTER_CUBIC))
    assert np.abs(quality_canvas(grown, long_side=64).astype(int) - small).mean() < 5.0


def test_a_thin_strip_keeps_the_minimum_short_side() -> None:
    strip = np.full((10, 1000, 3), 200, np.uint8)
    assert quality_canvas(strip).shape == (MIN_SHORT_SIDE, 384, 3)
    assert canvas_size(1000, 10) == (384, MIN_SHORT_SIDE)
    assert canvas_size(1500, 1066) == (384, 273)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((40, 40, 3), np.float32), "uint8"),
        (np.zeros((40, 40), np.uint8), "HxWx3"),
        (np.zeros((40, 40, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 40, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_are_refused(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quality_canvas(image)


def test_bad_long_sides_are_refused() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 32"):
        quality_canvas(image, long_side=16)
    with pytest.raises(ValueError, match="integer"):
        quality_canvas(image, long_side=100.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="canvas version must be one of"):
        quality_canvas(image, version=3)
