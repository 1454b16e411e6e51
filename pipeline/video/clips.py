"""Synthetic clips: a product photo filmed by a known, smooth camera motion, at HR and at bicubic x4 LR.

In: a photo (uint8 H x W x 3, as ingest stored it), the params `clip_params(image_id, variant, photo
shape, config)` draws (or ones read back from an index) and a `ClipsConfig`. Out: `render_clip` -> a
`Clip` of `frames` HR frames (side x side x 3) and their LR frames (side/4), each LR frame Pillow's
antialiased bicubic of its HR frame (the `bicubic_x4` recipe's downscale), all uint8; in the real-world
variant (`lr_reencode`) the LR frames are then re-encoded by H.264 at the clip's recorded `lr_crf`.

The photo is first shrunk by `reduce` (OpenCV area interpolation, once) so a frame shows product detail at
the scale of a video frame. Frame t then maps its output pixel p (about the frame centre) to the shrunk
photo's pixel A_t p + c_t: a similarity with turn theta_t = omega t, zoom z_t = 1 + zeta t, and a pan
c_t = c_0 + v t + a t^2 / 2 (sub-pixel steps, v up to `max_speed_lr` LR px per frame, a gentle
acceleration), rendered with OpenCV's bicubic `warpAffine` (reflected borders). t runs from -(frames-1)/2
to (frames-1)/2, so the centre frame is the untouched view. The params hold every frame's 2 x 3 matrix
(photo <- frame), so the motion between any two frames is known exactly; they are seeded by (image_id,
"synthetic_clips_x4", CLIPS_VERSION, variant), and `render_clip` regenerates a clip bit for bit.
The start c_0 is drawn inside the product's bounding box (pixels darker than near white), so clips film
the product, not the studio background; a clip that still comes out blank is the caller's flat_tile skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.degrade.bicubic import bicubic_downscale
from pipeline.degrade.recipe import seed_generator
from pipeline.video.config import ClipsConfig

CLIPS = "synthetic_clips_x4"
CLIPS_VERSION = 1
SCALE = 4
_PRODUCT_BELOW = 245  # a channel under this is product, not studio white


@dataclass(frozen=True)
class Clip:
    hr: np.ndarray  # frames x side x side x 3
    lr: np.ndarray  # frames x side/4 x side/4 x 3


def clip_params(image_id: str, variant: int, photo_shape: tuple[int, ...], config: ClipsConfig,
                product_box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The recorded params of clip `variant` of the photo `image_id` of shape `photo_shape`.
    `product_box` (x0, y0, x1, y1 in photo pixels, `product_box(photo)`) is where the pan starts."""
    rng = seed_generator(image_id, CLIPS, CLIPS_VERSION, variant)
    reduce = float(rng.uniform(*config.reduce))
    height, width = (photo_shape[0] / reduce, photo_shape[1] / reduce)
    x0, y0, x1, y1 = (v / reduce for v in product_box) if product_box else (0.0, 0.0, width, height)
    half = config.side / 2
    cx = float(rng.uniform(min(x0 + half, width / 2), max(x1 - half, width / 2)))
    cy = float(rng.uniform(min(y0 + half, height / 2), max(y1 - half, height / 2)))
    speed = float(rng.uniform(0.25, config.max_speed_lr)) * SCALE  # HR px per frame
    direction = float(rng.uniform(0, 2 * math.pi))
    accel = float(rng.uniform(-0.05, 0.05)) * speed
    omega = math.radians(float(rng.uniform(-config.max_turn_deg, config.max_turn_deg)))
    zeta = float(rng.uniform(-config.max_zoom, config.max_zoom))
    centre_t = (config.frames - 1) / 2
    matrices = []
    for frame in range(config.frames):
        t = frame - centre_t
        shift = speed * t + accel * t * t / 2
        cx_t, cy_t = cx + shift * math.cos(direction), cy + shift * math.sin(direction)
        zoom, angle = 1.0 + zeta * t, omega * t
        a, b = zoom * math.cos(angle), zoom * math.sin(angle)
        # photo <- frame: p_photo = R p_frame + (c_t - R * frame centre)
        matrices.append([[a, -b, cx_t - (a * half - b * half)], [b, a, cy_t - (b * half + a * half)]])
    params = {
        "version": CLIPS_VERSION,
        "reduce": reduce,
        "centre": [cx, cy],
        "speed_hr": speed,
        "direction": direction,
        "accel_hr": accel,
        "omega_rad": omega,
        "zeta": zeta,
        "matrices": matrices,
    }
    if config.lr_reencode:  # drawn last, so a bicubic clip's params are the same with or without it
        params["lr_crf"] = int(rng.integers(config.lr_crf[0], config.lr_crf[1] + 1))
    return params


def product_box(photo: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels with some channel under near white, or None for a blank photo."""
    mask = (np.asarray(photo) < _PRODUCT_BELOW).any(axis=2)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render_clip(photo: np.ndarray, params: dict[str, Any], config: ClipsConfig) -> Clip:
    """The HR and LR frames of the clip `params` describe (see the module docstring)."""
    reduce = float(params["reduce"])
    height, width = photo.shape[:2]
    size = (max(1, round(width / reduce)), max(1, round(height / reduce)))
    shrunk = cv2.resize(np.ascontiguousarray(photo), size, interpolation=cv2.INTER_AREA)
    side = config.side
    hr = np.empty((len(params["matrices"]), side, side, 3), np.uint8)
    for i, matrix in enumerate(params["matrices"]):
        hr[i] = cv2.warpAffine(
            shrunk, np.array(matrix, np.float64), (side, side),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
    lr = np.stack([bicubic_downscale(frame, SCALE) for frame in hr])
    if "lr_crf" in params:
        from pipeline.video.degrade import h264_roundtrip  # loads FFmpeg: only this variant needs it

        lr = h264_roundtrip(lr, int(params["lr_crf"]))
    return Clip(hr, lr)


def stack_frames(frames: np.ndarray) -> np.ndarray:
    """frames x h x w x 3 -> one (frames*h) x w x 3 image (how a clip is stored: one PNG member)."""
    return np.ascontiguousarray(frames.reshape(-1, *frames.shape[2:]))


def unstack_frames(image: np.ndarray, frames: int) -> np.ndarray:
    """Inverse of `stack_frames`."""
    return image.reshape(frames, image.shape[0] // frames, *image.shape[1:])


def mean_motion_lr(params: dict[str, Any]) -> float:
    """The centre's mean displacement per frame, in LR px (how far apart neighbouring frames are)."""
    centres = np.array([[m[0][2], m[1][2]] for m in params["matrices"]])
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).mean() / SCALE)
