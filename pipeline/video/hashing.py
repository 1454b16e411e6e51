"""Video hashing: a content id over every decoded frame and perceptual hashes of evenly spread frames.

In: decoded RGB frames (HxWx3 uint8) in presentation order, fed one at a time to a `VideoHasher`. Out:
`VideoHasher.video_id()` (sha256 hex of the frame size, the count and every frame's pixels: one video
remuxed into another container, or served under two URLs, gets one id) and `keyframes(k)` (the images'
64-bit pHash, `pipeline.clean.hashing.phash`, of k frames spread evenly over the video); `keyframe_distance`
and `near_duplicate` compare two such lists (a re-encode at another bitrate or size keeps every sampled
frame within a few bits).

Every frame's pHash is taken (a 32x32 resize, about a millisecond for 720p) and kept as one int, so the
samples can be chosen once the frame count is known without a second decode; `VideoConfig.max_frames`
bounds that list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from pipeline.clean.hashing import hamming, phash


class VideoHasher:
    """Feed frames with `update`; read `video_id()` and `keyframes(k)` after the last one."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._hashes: list[int] = []
        self._shape: tuple[int, ...] | None = None

    def update(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"frame of shape {frame.shape} in a video of {self._shape} frames")
        self._digest.update(frame)
        self._hashes.append(phash(frame))

    @property
    def frames(self) -> int:
        return len(self._hashes)

    def video_id(self) -> str:
        if self._shape is None:
            raise ValueError("no frame was hashed")
        height, width, _ = self._shape
        header = hashlib.sha256(f"crisp-video-rgb8:{height}x{width}x3;{self.frames}".encode())
        header.update(self._digest.digest())
        return header.hexdigest()

    def keyframes(self, samples: int) -> tuple[int, ...]:
        """The pHashes of `samples` frames at the centres of equal slices of the video (fewer when it
        has fewer frames)."""
        count = len(self._hashes)
        if count == 0:
            return ()
        picks = sorted({min(count - 1, int((k + 0.5) * count / samples)) for k in range(samples)})
        return tuple(self._hashes[i] for i in picks)


def keyframe_distance(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The largest pHash distance between corresponding sampled frames, or None when the lists differ in
    length (too different in frame count to compare sample by sample)."""
    if len(a) != len(b) or not a:
        return None
    return max(hamming(x, y) for x, y in zip(a, b, strict=True))


def near_duplicate(
    a_hashes: Sequence[int],
    a_duration_s: float,
    b_hashes: Sequence[int],
    b_duration_s: float,
    radius: int,
    duration_tolerance: float,
) -> bool:
    """True when two videos show the same content: close durations and every sampled frame within
    `radius` bits of its counterpart."""
    longer = max(a_duration_s, b_duration_s)
    if longer > 0 and abs(a_duration_s - b_duration_s) > duration_tolerance * longer:
        return False
    distance = keyframe_distance(a_hashes, b_hashes)
    return distance is not None and distance <= radius
