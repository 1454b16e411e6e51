"""Tests for pipeline.degrade.tiles: aligned HR/LR tiles splitting each axis evenly, border to border."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.degrade import bicubic_downscale, get_recipe
from pipeline.degrade.tiles import TileConfig, tile_pair, tile_span
from schemas.reasons import Reason


@pytest.fixture(scope="module")
def photo(product_photos: Path) -> np.ndarray:
    path = sorted(product_photos.glob("*.jpg"))[1]
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_tile_span_splits_an_axis_evenly() -> None:
    assert tile_span(1064, 480, 0, 4) == (356, [0, 352, 708])
    assert tile_span(960, 480, 0, 4) == (480, [0, 480])
    assert tile_span(484, 480, 0, 4) == (244, [0, 240])  # never below half a tile
    assert tile_span(480, 480, 0, 4) == (480, [0])
    assert tile_span(300, 480, 0, 4) == (300, [0])
    assert tile_span(1000, 480, 32, 4) == (356, [0, 320, 644])  # overlaps 36 and 32


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("tile,overlap", [(96, 0), (96, 8), (192, 0), (480, 0), (480, 32)])
def test_tile_span_covers_every_axis_length(scale: int, tile: int, overlap: int) -> None:
    tile = tile // scale * scale
    for length in range(scale, 3000, scale):
        size, starts = tile_span(length, tile, overlap, scale)
        assert size <= tile and starts[0] == 0 and starts[-1] + size == length
        assert all(start % scale == 0 for start in starts)
        assert all(0 < b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False))
        if len(starts) > 1:
            assert size > tile // 2 - scale
            if overlap == 0:  # the image once, plus at most the rounding to the scale per tile
                assert size * len(starts) - length < scale * len(starts)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiles_cover_the_image_once_and_align_with_the_lr(photo: np.ndarray, scale: int) -> None:
    recipe = get_recipe(f"bicubic_x{scale}")
    hr, lr = recipe.crop_hr(photo), recipe.apply(photo, {})
    result = tile_pair(hr, lr, scale)
    assert result.skip_reason is None and len(result.tiles) > 4
    coverage = np.zeros(hr.shape[:2], int)
    for tile in result.tiles:
        assert tile.y % scale == 0 and tile.x % scale == 0
        tile_h, tile_w = tile.hr.shape[:2]
        assert tile_h <= 480 and tile_w <= 480 and tile.lr.shape == (tile_h // scale, tile_w // scale, 3)
        np.testing.assert_array_equal(tile.hr, hr[tile.y : tile.y + tile_h, tile.x : tile.x + tile_w])
        # the LR tile is the bicubic LR of its own HR tile, except the 2 LR pixels at its edge whose filter
        # support reaches past the tile
        own = bicubic_downscale(tile.hr, scale)
        np.testing.assert_array_equal(tile.lr[2:-2, 2:-2], own[2:-2, 2:-2])
        coverage[tile.y : tile.y + tile_h, tile.x : tile.x + tile_w] += 1
    assert coverage.min() == 1 and coverage.mean() < 1.03


def test_image_smaller_than_a_tile_becomes_one_tile() -> None:
    hr = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    lr = bicubic_downscale(hr, 4)
    result = tile_pair(hr, lr, 4)
    assert len(result.tiles) == 1
    tile = result.tiles[0]
    assert (tile.y, tile.x) == (0, 0) and tile.hr.shape == hr.shape and tile.lr.shape == lr.shape


def test_narrow_image_gets_full_height_tiles() -> None:
    hr = np.zeros((120, 1000, 3), np.uint8)
    result = tile_pair(hr, np.zeros((60, 500, 3), np.uint8), 2)
    assert [(t.y, t.x) for t in result.tiles] == [(0, 0), (0, 332), (0, 666)]
    assert all(t.hr.shape == (120, 334, 3) and t.lr.shape == (60, 167, 3) for t in result.tiles)


def test_too_small_image_is_skipped_with_a_reason() -> None:
    hr = np.zeros((80, 400, 3), np.uint8)
    result = tile_pair(hr, np.zeros((20, 100, 3), np.uint8), 4)
    assert result.tiles == [] and result.skip_reason is Reason.TOO_SMALL
    assert "80x400" in result.skip_detail and "min_hr_side=96" in result.skip_detail
    assert len(tile_pair(hr, np.zeros((20, 100, 3), np.uint8), 4, TileConfig(min_hr_side=80)).tiles) == 1


def test_scale_one_and_gray_pairs() -> None:
    hr = np.zeros((500, 500), np.uint8)
    result = tile_pair(hr, hr.copy(), 1)
    assert [(t.y, t.x) for t in result.tiles] == [(0, 0), (0, 250), (250, 0), (250, 250)]


def test_misaligned_pairs_and_bad_configs_raise() -> None:
    hr = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        tile_pair(hr, np.zeros((49, 50, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="multiple of scale"):
        tile_pair(np.zeros((202, 200, 3), np.uint8), np.zeros((50, 50, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="hr_tile=250 must be a multiple of scale 4"):
        tile_pair(hr, np.zeros((50, 50, 3), np.uint8), 4, TileConfig(hr_tile=250))
    with pytest.raises(ValueError, match="overlap"):
        TileConfig(overlap=480)
    with pytest.raises(ValueError, match="min_hr_side"):
        TileConfig(min_hr_side=0)
