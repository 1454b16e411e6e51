"""Video configuration: what `probe_video` accepts, when two videos are near duplicates, how clips are made.

In: keyword arguments (all optional). Out: a frozen, validated `VideoConfig` (admission and dedup) or
`ClipsConfig` (the synthetic clip samples); a bad value raises ValueError naming the field. The caps bound the work one hostile file can cause: the frame size is checked from the
container's header before any frame is decoded, the frame count and duration both from the header and while
decoding, and the decoded pixels in total (frames x width x height) while decoding, so a small file that
declares little and decodes to much (a decoding bomb) is stopped at the cap, not at the end.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class ClipsConfig(BaseModel):
    """The `synthetic_clips_x4` sample family (`pipeline/video/clips.py`): clips of a product photo filmed by
    a known camera motion. Every field changes the output bytes (the family's part of the content key).

    - frames: frames per clip, odd so a sliding window has a centre frame (default 7).
    - side: the HR frame side in px, a multiple of the x4 scale (default 128: 32 px LR frames).
    - variants: clips per photo, each with its own seeded motion (default 2).
    - reduce: the photo is first shrunk by a factor drawn in this range, so a frame shows product detail at
      the scale of a video frame rather than a studio photo's (default 1.5 .. 3).
    - max_speed_lr: the pan's speed per frame, drawn up to this many LR px (default 2.0): sub-pixel steps
      are what multi-frame SR can use.
    - max_turn_deg / max_zoom: the turn per frame (degrees) and the relative zoom change per frame.
    - flat_std: a clip whose centre HR frame has a luma std below this is skipped as flat_tile (blank
      studio background: nothing to learn).
    - lr_reencode: the real-world variant: the LR frames are re-encoded by H.264 (pipeline/video/degrade.py)
      at a CRF drawn per clip in lr_crf (default 26 .. 36, higher is worse), after the bicubic downscale, as
      an uploaded product video is (default off: bicubic LR only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: int = Field(default=7, ge=3, le=31)
    side: int = Field(default=128, ge=32, le=1024, multiple_of=4)
    variants: int = Field(default=2, ge=1, le=64)
    reduce: tuple[float, float] = (1.5, 3.0)
    max_speed_lr: float = Field(default=2.0, gt=0.0, le=16.0)
    max_turn_deg: float = Field(default=0.6, ge=0.0, le=10.0)
    max_zoom: float = Field(default=0.006, ge=0.0, le=0.1)
    flat_std: float = Field(default=2.0, ge=0.0)
    lr_reencode: bool = False
    lr_crf: tuple[int, int] = (26, 36)

    @model_validator(mode="after")
    def _odd_frames_and_ranges(self) -> ClipsConfig:
        if self.frames % 2 == 0:
            raise ValueError(f"frames={self.frames} must be odd: a sliding window needs a centre frame")
        low, high = self.reduce
        if not 1.0 <= low <= high:
            raise ValueError(f"reduce={self.reduce} must be a range (low, high) with 1 <= low <= high")
        if not 0 <= self.lr_crf[0] <= self.lr_crf[1] <= 51:
            raise ValueError(f"lr_crf={self.lr_crf} must be a range (low, high) within libx264's 0 .. 51")
        return self
