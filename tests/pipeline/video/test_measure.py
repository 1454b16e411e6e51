"""Temporal error and warps on a real synthetic clip: the truth scores 0, flicker scores its size, a steady
method scores low; the recorded motion lines frames up."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.degrade.bicubic import bicubic_upscale
from pipeline.video.clips import clip_params, product_box, render_clip
from pipeline.video.config import ClipsConfig
from pipeline.video.measure import flow_warping_error, frame_psnr_y, temporal_error, warp_to


@pytest.fixture(scope="module")
def clip(product_photos):
    photo = np.asarray(Image.open(product_photos / "wj03-red_back.jpg").convert("RGB"))
    config = ClipsConfig(frames=5, side=96)
    params = clip_params("wj03", 0, photo.shape, config, product_box(photo))
    return render_clip(photo, params, config), params["matrices"]


def test_the_truth_is_steady_flicker_is_not_and_bicubic_is_close(clip):
    frames, matrices = clip
    assert temporal_error(frames.hr, frames.hr, matrices) == 0.0
    rng = np.random.default_rng(0)
    flicker = np.clip(frames.hr + rng.normal(0, 4, frames.hr.shape), 0, 255).astype(np.uint8)
    bicubic = np.stack([bicubic_upscale(f, 4) for f in frames.lr])
    assert temporal_error(flicker, frames.hr, matrices) > 3.0
    assert temporal_error(bicubic, frames.hr, matrices) < 1.0
    psnrs = frame_psnr_y(bicubic, frames.hr, 4)
    assert len(psnrs) == 5 and all(20 < p < 60 for p in psnrs)
    with pytest.raises(ValueError, match="matching clips"):
        temporal_error(frames.hr[:1], frames.hr[:1], matrices[:1])


def test_the_known_motion_lines_frames_up(clip):
    frames, matrices = clip
    inner = (slice(16, -16), slice(16, -16))
    moved = warp_to(frames.hr[1], matrices[1], matrices[2]).astype(float)
    assert (
        np.abs(moved - frames.hr[2])[inner].mean()
        < 0.5 * np.abs(frames.hr[1].astype(float) - frames.hr[2])[inner].mean()
    )


def test_the_flow_warping_error_sees_flicker_on_a_real_clip():
    import av

    from pipeline.reference_data import reference_clip

    with av.open(str(reference_clip("carphone_pristine"))) as clip:
        frames = np.stack(
            [f.to_ndarray(format="rgb24") for _, f in zip(range(6), clip.decode(video=0), strict=False)]
        )
    steady = flow_warping_error(frames, frames)
    rng = np.random.default_rng(0)
    flicker = np.clip(frames + rng.normal(0, 6, frames.shape), 0, 255).astype(np.uint8)
    assert 0 < steady < flow_warping_error(flicker, frames)
