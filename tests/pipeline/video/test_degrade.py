"""h264_roundtrip on the LR frames of a real synthetic clip: same shape, a repeatable result, more loss at a
higher CRF; the real-world clip variant records its CRF and regenerates bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.video.clips import clip_params, product_box, render_clip
from pipeline.video.config import ClipsConfig
from pipeline.video.degrade import h264_roundtrip


@pytest.fixture(scope="module")
def photo(product_photos):
    return np.asarray(Image.open(product_photos / "wj03-red_back.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def frames(photo):
    config = ClipsConfig(frames=5, side=128)
    return render_clip(photo, clip_params("wj03", 0, photo.shape, config, product_box(photo)), config).lr


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b) ** 2)))


def test_a_roundtrip_keeps_the_shape_repeats_and_loses_more_at_a_higher_crf(frames):
    mild, harsh = h264_roundtrip(frames, 18), h264_roundtrip(frames, 40)
    assert mild.shape == harsh.shape == frames.shape and mild.dtype == np.uint8
    assert np.array_equal(h264_roundtrip(frames, 40), harsh)  # what bit-exact regeneration rests on
    assert not np.array_equal(mild, frames)
    assert _psnr(mild, frames) > _psnr(harsh, frames) + 3, (_psnr(mild, frames), _psnr(harsh, frames))


def test_odd_sides_and_a_crf_out_of_range_are_refused(frames):
    with pytest.raises(ValueError, match="even frame sides"):
        h264_roundtrip(frames[:, :31], 30)
    with pytest.raises(ValueError, match="crf=52"):
        h264_roundtrip(frames, 52)


def test_the_real_world_variant_records_its_crf_and_regenerates_bit_for_bit(photo, frames):
    config = ClipsConfig(frames=5, side=128, lr_reencode=True, lr_crf=(30, 34))
    params = clip_params("wj03", 0, photo.shape, config, product_box(photo))
    bicubic = clip_params("wj03", 0, photo.shape, ClipsConfig(frames=5, side=128), product_box(photo))
    assert 30 <= params.pop("lr_crf") <= 34 and params == bicubic  # the same motion, one more draw
    params = clip_params("wj03", 0, photo.shape, config, product_box(photo))
    clip, again = render_clip(photo, params, config), render_clip(photo, params, config)
    assert np.array_equal(clip.lr, again.lr) and np.array_equal(clip.hr, again.hr)
    assert np.array_equal(clip.lr, h264_roundtrip(frames, params["lr_crf"]))


def test_a_crf_range_outside_libx264_is_a_config_error():
    with pytest.raises(ValueError, match="lr_crf"):
        ClipsConfig(lr_crf=(30, 60))
