"""Video hashing: the content id, the sampled pHashes and near-duplicate decisions on real clips."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.reference_data import reference_clip
from pipeline.video.config import VideoConfig
from pipeline.video.hashing import VideoHasher, keyframe_distance, near_duplicate
from pipeline.video.probe import probe_video
from tests.support.videos import moving_frames


def test_samples_are_spread_over_the_video():
    hasher = VideoHasher()
    frames = moving_frames(30)
    for frame in frames:
        hasher.update(frame)
    assert hasher.frames == 30
    assert len(hasher.keyframes(8)) == 8
    assert len(hasher.keyframes(64)) == 30  # never more samples than frames
    assert hasher.keyframes(1) == (VideoHasher_for(frames[15:16]).keyframes(1))


def VideoHasher_for(frames):  # noqa: N802 - reads as the class it builds
    hasher = VideoHasher()
    for frame in frames:
        hasher.update(frame)
    return hasher


def test_the_id_depends_on_every_frame_and_their_order():
    frames = moving_frames(6)
    base = VideoHasher_for(frames).video_id()
    assert VideoHasher_for(list(frames)).video_id() == base
    assert VideoHasher_for(frames[::-1]).video_id() != base
    changed = [f.copy() for f in frames]
    changed[3][0, 0, 0] ^= 1
    assert VideoHasher_for(changed).video_id() != base
    assert VideoHasher_for(frames[:5]).video_id() != base


def test_a_frame_of_another_size_is_refused():
    hasher = VideoHasher_for(moving_frames(2))
    with pytest.raises(ValueError, match="shape"):
        hasher.update(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no frame"):
        VideoHasher().video_id()


def test_a_heavily_compressed_copy_is_a_near_duplicate_and_another_clip_is_not():
    config = VideoConfig()
    pristine = probe_video(reference_clip("carphone_pristine"))
    distorted = probe_video(reference_clip("carphone_distorted"))  # 7 KB for 120 frames
    bikes = probe_video(reference_clip("bikes"))

    def same(a, b):
        return near_duplicate(
            a.keyframe_hashes,
            a.duration_s,
            b.keyframe_hashes,
            b.duration_s,
            config.phash_radius,
            config.duration_tolerance,
        )

    assert pristine.video_id != distorted.video_id
    assert keyframe_distance(pristine.keyframe_hashes, distorted.keyframe_hashes) <= config.phash_radius
    assert same(pristine, distorted)
    assert not same(pristine, bikes)
    assert keyframe_distance(pristine.keyframe_hashes, bikes.keyframe_hashes) > 3 * config.phash_radius
    assert not near_duplicate(pristine.keyframe_hashes, 4.0, distorted.keyframe_hashes, 6.0, 64, 0.05)
    assert keyframe_distance((1, 2), (1,)) is None
