"""transcode_frames: frame by frame through a transform, timing and sound kept, bad files refused."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.video.probe import probe_video
from pipeline.video.stream import transcode_frames
from tests.support.videos import moving_frames, real_clip_excerpt, write_audio_only, write_video


def _twice(frames: list[np.ndarray]) -> np.ndarray:
    return frames[0].repeat(2, axis=0).repeat(2, axis=1)


def test_a_real_clip_keeps_its_frames_timing_and_sound(tmp_path):
    source = real_clip_excerpt(tmp_path / "clip.mp4", frames=6, width=64)
    opened = []
    result = transcode_frames(source, tmp_path / "out.mp4", _twice, 2, on_open=lambda *a: opened.append(a))
    assert opened == [(64, 36, 6)]
    assert (result.frames, result.width, result.height, result.fps, result.audio) == (
        6,
        128,
        72,
        25.0,
        "copy aac",
    )
    with av.open(str(source)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        assert b.streams.video[0].frames == 6 and b.streams.video[0].average_rate == 25
        assert [p.pts for p in a.demux(a.streams.audio[0]) if p.dts is not None] == [
            p.pts for p in b.demux(b.streams.audio[0]) if p.dts is not None
        ]
    # the content is the transform's, up to the H.264 re-encode (crf 18)
    with av.open(str(source)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            want = _twice([x.to_ndarray(format="rgb24")]).astype(float)
            assert np.abs(y.to_ndarray(format="rgb24") - want).mean() < 4.0


def test_odd_output_sides_and_variable_frame_timing_are_kept(tmp_path):
    source = tmp_path / "odd.mkv"
    frames = [f[:63, :95] for f in moving_frames(5)]  # odd sides: stored as 4:4:4
    with av.open(str(source), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 95, 63, "yuv444p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for pts, pixels in zip((0, 100, 150, 400, 450), frames, strict=True):  # milliseconds apart, uneven
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    result = transcode_frames(source, tmp_path / "x3.mp4", lambda f: f[0].repeat(3, 0).repeat(3, 1), 3)
    assert (result.width, result.height, result.audio) == (285, 189, None)
    with av.open(str(tmp_path / "x3.mp4")) as b:
        assert b.streams.video[0].codec_context.pix_fmt == "yuv444p"
        times = [round(f.time, 3) for f in b.decode(video=0)]
    assert times == [0.0, 0.1, 0.15, 0.4, 0.45]


def test_bad_files_and_a_wrong_transform_raise_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="^not_a_video: "):
        transcode_frames(__file__, tmp_path / "o.mp4", _twice, 2)
    with pytest.raises(ValueError, match="^video_no_stream: "):
        transcode_frames(write_audio_only(tmp_path / "s.mp4"), tmp_path / "o.mp4", _twice, 2)
    clip = write_video(tmp_path / "c.mp4", moving_frames(3))
    with pytest.raises(ValueError, match="transform gave"):
        transcode_frames(clip, tmp_path / "o.mp4", lambda f: f[0], 2)
    with pytest.raises(ValueError, match="must be odd"):
        transcode_frames(clip, tmp_path / "o.mp4", _twice, 2, window=2)
    assert probe_video(clip).frames == 3


def test_a_window_centres_each_frame_and_repeats_the_ends(tmp_path):
    frames = [np.full((16, 16, 3), 10 * (i + 1), np.uint8) for i in range(5)]
    clip = write_video(tmp_path / "flat.mp4", frames, codec="libx264")
    with av.open(str(clip)) as a:
        levels = [int(np.median(f.to_ndarray(format="rgb24"))) for f in a.decode(video=0)]
    windows = []

    def record(window):
        windows.append([int(np.median(f)) for f in window])
        return window[1]

    result = transcode_frames(clip, tmp_path / "out.mp4", record, 1, window=3)
    assert result.frames == 5
    assert windows == [[levels[max(0, min(4, i + d))] for d in (-1, 0, 1)] for i in range(5)]


def test_a_video_shorter_than_the_window_still_gets_full_windows(tmp_path):
    frames = [np.full((16, 16, 3), level, np.uint8) for level in (40, 200)]
    clip = write_video(tmp_path / "two.mp4", frames, codec="libx264")
    seen = []

    def record(window):
        seen.append(len(window))
        return window[2]

    assert transcode_frames(clip, tmp_path / "out.mp4", record, 1, window=5).frames == 2
    assert seen == [5, 5]
