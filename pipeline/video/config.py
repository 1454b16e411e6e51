"""Video configuration: what `probe_video` accepts and when two videos are near duplicates.

In: keyword arguments (all optional). Out: a frozen, validated `VideoConfig`; a bad value raises ValueError
naming the field. The caps bound the work one hostile file can cause: the frame size is checked from the
container's header before any frame is decoded, the frame count and duration both from the header and while
decoding, and the decoded pixels in total (frames x width x height) while decoding, so a small file that
declares little and decodes to much (a decoding bomb) is stopped at the cap, not at the end.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VideoConfig(BaseModel):
    """Admission rules and dedup knobs for product videos (short clips and 360-degree spins).

    - max_frame_pixels: width x height of a frame above this is video_too_large (default 3840 x 2160).
    - max_total_pixels: decoded pixels over the whole video above this is video_too_large (default 8e9:
      2 minutes of 1080p at 30 fps).
    - max_duration_s / max_frames: a longer video is video_too_long (defaults 120 s, 7200 frames).
    - min_side / max_aspect_ratio: as for images (too_small, bad_aspect_ratio; defaults 64 px, 4.0).
    - codecs: the video codecs accepted (FFmpeg decoder names); others are video_unsupported_codec.
    - keyframe_samples: frames, evenly spread over the video, whose pHashes are kept for dedup (default 8).
    - min_frame_ratio: fewer decoded frames than this share of the declared count is video_truncated.
    - phash_radius: two videos are near duplicates when every pair of corresponding sampled frames is at
      most this many pHash bits apart (default 6, the images' radius plus the drift of a re-encode)
      and their durations differ by at most duration_tolerance (a share of the longer one, default 0.05).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_frame_pixels: int = Field(default=3840 * 2160, ge=1)
    max_total_pixels: int = Field(default=8_000_000_000, ge=1)
    max_duration_s: float = Field(default=120.0, gt=0.0)
    max_frames: int = Field(default=7200, ge=1)
    min_side: int = Field(default=64, ge=1)
    max_aspect_ratio: float = Field(default=4.0, ge=1.0)
    codecs: tuple[str, ...] = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "prores")
    keyframe_samples: int = Field(default=8, ge=1, le=64)
    min_frame_ratio: float = Field(default=0.98, ge=0.0, le=1.0)
    phash_radius: int = Field(default=6, ge=0, le=32)
    duration_tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
