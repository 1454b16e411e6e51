"""Stream: re-encode a video frame by frame through a transform, keeping its timing and its audio.

In: the path of a video, the output path, a transform from a window of RGB frames (a list of `window`
HxWx3 uint8 frames, the one to transform in the middle) to that frame's result ((H*s)x(W*s)x3 for a scale
s), the window (1: each frame alone) and an optional `on_open(width, height, declared_frames)` callback,
called once the input's header is read (to size a progress bar). Near the ends the window repeats the first
or last frame, so every frame gets a full window and the output has as many frames as the input. Out: an H.264 MP4 with
the input's frame timestamps (so its fps, constant or variable, is kept) and its first audio stream (copied
packet for packet when MP4 can carry the codec, else re-encoded as AAC); a `TranscodeResult` saying what
was written. A file that does not open, or a frame that does not decode, raises ValueError naming the
reason code; the caller removes the partial output.

Memory does not grow with the video's length: `window` decoded frames and one result are held at a time,
plus the encoder's look-ahead (`LOOKAHEAD_FRAMES` frames at the output size). Only the frame-size cap and the
codec list of the admission rules apply (`SERVING`): a video of any length is served.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from pipeline.clean.normalize import Rejection
from pipeline.video.config import VideoConfig
from pipeline.video.probe import open_checked

# Ingest's length and shape rules decide what enters the dataset, not what can be served.
SERVING = VideoConfig(
    max_total_pixels=2**62, max_duration_s=1e12, max_frames=2**62, min_side=1, max_aspect_ratio=1e6
)
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})  # copied as they are
LOOKAHEAD_FRAMES = 10  # x264's default is 40 frames: at 4x of 720p that alone would be 0.5 GB
DEFAULT_RATE = Fraction(25)


@dataclass(frozen=True)
class TranscodeResult:
    frames: int
    width: int
    height: int
    fps: float
    audio: str | None  # "copy <codec>", "aac from <codec>", or None without an audio stream


def transcode_frames(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    transform: Callable[[list[np.ndarray]], np.ndarray],
    scale: int,
    on_open: Callable[[int, int, int], object] | None = None,
    crf: int = 18,
    config: VideoConfig = SERVING,
    window: int = 1,
) -> TranscodeResult:
    """Write `transform` of every frame's window of `source` to `target` (see the module docstring)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window={window} must be odd: the transformed frame sits in its middle")
    opened = open_checked(source, config)
    if isinstance(opened, Rejection):
        raise ValueError(f"{opened.reason}: {opened.detail}")
    container, video_in = opened
    if on_open is not None:
        on_open(video_in.codec_context.width, video_in.codec_context.height, video_in.frames)
    with container, av.open(str(target), "w", format="mp4") as out:
        width, height = video_in.codec_context.width * scale, video_in.codec_context.height * scale
        rate = video_in.average_rate or video_in.guessed_rate or DEFAULT_RATE
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width, video_out.height = width, height
        video_out.pix_fmt = (
            "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        )  # 4:2:0 needs even sides
        # the encoder's clock too: at its default of 1 / rate, uneven timestamps would snap to the grid
        video_out.time_base = video_out.codec_context.time_base = video_in.time_base or Fraction(1, int(rate))
        video_out.options = {"crf": str(crf), "preset": "medium", "rc-lookahead": str(LOOKAHEAD_FRAMES)}
        audio_in = container.streams.audio[0] if container.streams.audio else None
        audio_out, audio_note = _audio_stream(out, audio_in)
        ticks = max(1, round(1 / (float(rate) * float(video_out.time_base))))  # one frame, in time_base units
        frames, decoded = 0, 0
        half = window // 2
        pixels: deque[np.ndarray] = deque(maxlen=window)  # the window: past, centre, future frames
        stamps: deque[int] = deque()  # pts of the frames decoded but not yet written

        def write_centre() -> None:
            nonlocal frames
            result = np.ascontiguousarray(transform(list(pixels)))
            if result.shape != (height, width, 3):
                raise ValueError(f"the transform gave a {result.shape} frame, not {(height, width, 3)}")
            encoded = av.VideoFrame.from_ndarray(result, format="rgb24")
            encoded.pts, encoded.time_base = stamps.popleft(), video_out.time_base
            out.mux(video_out.encode(encoded))
            frames += 1

        try:
            for packet in container.demux(*(s for s in (video_in, audio_in) if s is not None)):
                if packet.stream is audio_in:
                    _write_audio(out, packet, audio_out, copy=audio_note.startswith("copy"))
                    continue
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format="rgb24")
                    if not pixels:  # the first frame stands in for the frames before it
                        pixels.extend([rgb] * half)
                    pixels.append(rgb)
                    stamps.append(frame.pts if frame.pts is not None else decoded * ticks)
                    decoded += 1
                    if len(pixels) == window:
                        write_centre()
            while stamps:  # the last frame stands in for the frames after it
                pixels.append(pixels[-1])
                while len(pixels) < window:  # a video shorter than half the window
                    pixels.append(pixels[-1])
                write_centre()
            out.mux(video_out.encode(None))
            if audio_out is not None and not audio_note.startswith("copy"):
                out.mux(audio_out.encode(None))
        except av.FFmpegError as exc:
            raise ValueError(f"decode_error: frame {frames} does not decode: {exc}") from exc
    if frames == 0:
        raise ValueError("video_no_frames: the video stream decodes to no frame")
    return TranscodeResult(frames, width, height, float(rate), audio_note or None)


def _audio_stream(out, audio_in):
    """The output audio stream for `audio_in` and how it is carried ("" without audio)."""
    if audio_in is None:
        return None, ""
    codec = audio_in.codec_context.name
    if codec in MP4_AUDIO_CODECS:
        return out.add_stream_from_template(audio_in), f"copy {codec}"
    stream = out.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
    return stream, f"aac from {codec}"


def _write_audio(out, packet, audio_out, copy: bool) -> None:
    if copy:
        if packet.dts is None:  # the demuxer's flush packet carries no data
            return
        packet.stream = audio_out
        out.mux(packet)
        return
    for frame in packet.decode():
        frame.pts = None  # the encoder re-times the resampled frames
        out.mux(audio_out.encode(frame))
