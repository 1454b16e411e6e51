"""Probe: open, check and fully decode one video, or say why not.

In: the video's bytes or the path of a file (the crawler's body, a file given to `crisp upscale`) and a
`VideoConfig`. Out: `probe_video` -> a `VideoProbe` (container, codec, frame size, fps, duration, decoded
frame count, audio codec, content id, sampled-frame pHashes) or a `Rejection` with a `Reason` code;
`open_checked` -> the opened container and its video stream after the header checks only (for callers that
decode the frames themselves), or a `Rejection`. Nothing is raised for bad input.

Order of the checks, cheapest first: the magic bytes (`sniff_video_format`) pick the one FFmpeg demuxer
allowed to read the file (so no probing demuxer such as HLS or concat, which can open other files, ever
sees untrusted bytes); the header then gives the codec, the frame size (against the pixel cap, before any
frame is decoded), the declared duration and frame count. Decoding checks what the header cannot prove:
every frame has the declared size, the decoded pixels stay under the total cap, the count and the last
timestamp stay under the length caps, and at least `min_frame_ratio` of the declared frames decode (a body
cut short keeps its header but loses frames).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import av

from pipeline.clean.normalize import Rejection
from pipeline.crawl.sniff import SNIFF_BYTES, sniff_video_format
from pipeline.video.config import VideoConfig
from pipeline.video.hashing import VideoHasher
from schemas.reasons import Reason

DEMUXERS = {"mp4": "mov", "mov": "mov", "webm": "matroska", "mkv": "matroska", "avi": "avi"}


@dataclass(frozen=True)
class VideoProbe:
    """One accepted video: what its header says and what decoding it proved."""

    container: str  # sniffed: mp4, mov, webm, mkv or avi
    codec: str  # FFmpeg decoder name of the video stream
    width: int
    height: int
    fps: float  # the stream's average frame rate
    duration_s: float  # from the last frame's timestamp (the header's when frames carry none)
    frames: int  # decoded
    audio_codec: str | None  # None: no audio stream
    video_id: str  # `VideoHasher.video_id`: the decoded frames' content id
    keyframe_hashes: tuple[int, ...]  # pHashes of `keyframe_samples` evenly spread frames
    bytes_sha256: str
    size: int  # bytes


Source = bytes | str | os.PathLike[str]


def open_checked(source: Source, config: VideoConfig | None = None):
    """(container, video stream) after the magic-byte and header checks, or a `Rejection`. The caller
    closes the container."""
    config = config or VideoConfig()
    head = bytes(source[:SNIFF_BYTES]) if isinstance(source, bytes) else _head(source)
    kind = sniff_video_format(head)
    if kind is None:
        return Rejection(
            Reason.NOT_A_VIDEO, f"not an MP4/MOV/WebM/MKV/AVI container: starts with {head[:12]!r}"
        )
    stream_source = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        container = av.open(stream_source, format=DEMUXERS[kind])
    except (av.FFmpegError, ValueError, OSError) as exc:
        return Rejection(Reason.DECODE_ERROR, f"{kind} container does not open: {exc}")
    rejection = _check_header(container, config)
    if rejection is not None:
        container.close()
        return rejection
    return container, container.streams.video[0]


def probe_video(source: Source, config: VideoConfig | None = None) -> VideoProbe | Rejection:
    """Check and decode every frame of one video (see the module docstring)."""
    config = config or VideoConfig()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    opened = open_checked(data, config)
    if isinstance(opened, Rejection):
        return opened
    container, stream = opened
    with container:
        decoded = _decode_all(container, stream, config)
        if isinstance(decoded, Rejection):
            return decoded
        hasher, last_time = decoded
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        duration = (
            last_time + (1.0 / fps if fps else 0.0)
            if last_time is not None
            else _declared_duration(container, stream)
        )
        return VideoProbe(
            container=sniff_video_format(data[:SNIFF_BYTES]) or "",
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            duration_s=round(duration or 0.0, 6),
            frames=hasher.frames,
            audio_codec=audio,
            video_id=hasher.video_id(),
            keyframe_hashes=hasher.keyframes(config.keyframe_samples),
            bytes_sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )


def _check_header(container, config: VideoConfig) -> Rejection | None:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        return Rejection(Reason.VIDEO_NO_STREAM, f"no video stream (streams: {kinds})")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in config.codecs:
        return Rejection(
            Reason.VIDEO_UNSUPPORTED_CODEC, f"codec {codec!r} is not one of {', '.join(config.codecs)}"
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > config.max_frame_pixels:
        return Rejection(
            Reason.VIDEO_TOO_LARGE,
            f"{width}x{height} frames exceed max_frame_pixels={config.max_frame_pixels}",
        )
    if min(width, height) < config.min_side:
        return Rejection(Reason.TOO_SMALL, f"{width}x{height}: short side under min_side={config.min_side}")
    if max(width, height) > config.max_aspect_ratio * min(width, height):
        return Rejection(
            Reason.BAD_ASPECT_RATIO, f"{width}x{height}: aspect over {config.max_aspect_ratio:g}"
        )
    duration = _declared_duration(container, stream)
    if duration is not None and duration > config.max_duration_s:
        return Rejection(
            Reason.VIDEO_TOO_LONG, f"declares {duration:.1f} s, over max_duration_s={config.max_duration_s:g}"
        )
    if stream.frames > config.max_frames:
        return Rejection(
            Reason.VIDEO_TOO_LONG, f"declares {stream.frames} frames, over max_frames={config.max_frames}"
        )
    return None


def _decode_all(container, stream, config: VideoConfig) -> tuple[VideoHasher, float | None] | Rejection:
    hasher, pixels, last_time = VideoHasher(), 0, None
    width, height = stream.codec_context.width, stream.codec_context.height
    try:
        for frame in container.decode(stream):
            if (frame.width, frame.height) != (width, height):
                return Rejection(
                    Reason.VIDEO_TOO_LARGE
                    if frame.width * frame.height > width * height
                    else Reason.DECODE_ERROR,
                    f"frame {hasher.frames} is {frame.width}x{frame.height} in a {width}x{height} stream",
                )
            pixels += width * height
            if pixels > config.max_total_pixels:
                return Rejection(
                    Reason.VIDEO_TOO_LARGE, f"over max_total_pixels={config.max_total_pixels} decoded"
                )
            if hasher.frames >= config.max_frames:
                return Rejection(
                    Reason.VIDEO_TOO_LONG, f"decodes to more than max_frames={config.max_frames}"
                )
            if frame.time is not None:
                if frame.time > config.max_duration_s:
                    return Rejection(
                        Reason.VIDEO_TOO_LONG, f"a frame at {frame.time:.1f} s, over max_duration_s"
                    )
                last_time = frame.time if last_time is None else max(last_time, frame.time)
            hasher.update(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, ValueError, MemoryError) as exc:
        if hasher.frames < stream.frames:  # the header promised more: the body was cut short
            return Rejection(
                Reason.VIDEO_TRUNCATED,
                f"{hasher.frames} of the {stream.frames} declared frames decode ({exc})",
            )
        return Rejection(Reason.DECODE_ERROR, f"frame {hasher.frames} does not decode: {exc}")
    if hasher.frames == 0:
        return Rejection(Reason.VIDEO_NO_FRAMES, "the video stream decodes to no frame")
    if stream.frames and hasher.frames < config.min_frame_ratio * stream.frames:
        return Rejection(
            Reason.VIDEO_TRUNCATED, f"{hasher.frames} of the {stream.frames} declared frames decode"
        )
    return hasher, last_time


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _head(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)
