"""Degrade: LR clip frames re-encoded by H.264 at a low quality, the way a product video reaches a shop.

In: frames x h x w x 3 uint8 RGB frames (even sides: 4:2:0 needs them) and a constant rate factor (CRF,
0..51, higher is worse). Out: `h264_roundtrip` -> the same frames after one libx264 encode (4:2:0 chroma,
preset medium, one thread, an I frame then P/B frames) and a decode back to RGB: uint8, the same shape.

One thread and no macroblock-tree lookahead (which, on frames this small, gave other bytes from one process
to the next) make the encode repeatable, so a clip's LR frames are a function of (its bicubic frames, crf) and
regenerate bit for bit on any worker count of the same build (pipeline/video/clips.py `render_clip`).
"""

from __future__ import annotations

import io

import av
import numpy as np

RATE = 25  # frames per second of the encode: x264's rate control budgets bits per second of video


def h264_roundtrip(frames: np.ndarray, crf: int) -> np.ndarray:
    """`frames` after an H.264 encode at `crf` and a decode (see the module docstring)."""
    count, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 4:2:0 needs even frame sides, not {width}x{height}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf={crf} is outside libx264's 0..51")
    encoded = io.BytesIO()
    with av.open(encoded, "w", format="h264") as out:  # a raw Annex B stream: no container to write
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # no macroblock-tree rate control: on frames this small it made the bytes differ from run to run
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "mbtree=0"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode(None))
    encoded.seek(0)
    with av.open(encoded, "r", format="h264") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if len(decoded) != count:
        raise RuntimeError(f"libx264 gave back {len(decoded)} of {count} frames")
    return np.stack(decoded)
