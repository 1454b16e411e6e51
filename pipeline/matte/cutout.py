"""Cut a product out of its photo with a predicted matte: the RGBA cut-out and renders on new backgrounds.

In: the photo (uint8 H x W x 3), its full-resolution alpha (float32 H x W in [0, 1], pipeline/matte/predict.py)
and, for a render, a `Background` (`parse_background`: transparent, white, #RRGGBB or an image file), the
fill (the product's extent over the canvas along its limiting side) and whether to cast a drop shadow.
Out: `cutout_rgba` -> uint8 H x W x 4 (alpha = round(255 alpha), colours = the estimated foreground, so
a cut-out laid on a dark page has no white fringe); `render` -> uint8 H x W x 3: the product cropped to its
box, scaled to `fill`, centred on the background of the photo's size, shadow beneath it if asked.

Foreground colours: the photo's own where alpha is (nearly) 1; at the edges pymatting's multilevel
estimate, fitted at the matte's canvas size and upsampled, replaces the white the edge pixels were mixed with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.matte.estimate import work_size
from schemas.errors import InputError

SOLID = re.compile(r"^#[0-9a-fA-F]{6}$")
OPAQUE = 0.99  # above this the photo's colours are the product's
BOX_FLOOR = 0.02  # the product's box: where alpha exceeds this
SHADOW = {"dy": 0.02, "blur": 0.02, "opacity": 0.35}  # of the canvas short side


@dataclass(frozen=True)
class Background:
    name: str  # what the output file is named after: white, ffcc00, the image's stem
    colour: tuple[int, int, int] | None = None
    image: Path | None = None


def parse_background(text: str) -> Background | None:
    """None for `transparent`; a Background for white, #RRGGBB or an existing image file; else InputError."""
    if text == "transparent":
        return None
    if text == "white":
        return Background("white", (255, 255, 255))
    if SOLID.match(text):
        return Background(text[1:].lower(), tuple(int(text[i : i + 2], 16) for i in (1, 3, 5)))
    path = Path(text)
    if path.is_file():
        return Background(path.stem, image=path)
    raise InputError(f"--background {text!r} is none of transparent, white, #RRGGBB or an image file")


def foreground(photo: np.ndarray, alpha: np.ndarray, long_side: int = 384) -> np.ndarray:
    """uint8 H x W x 3 product colours: the photo where opaque, the multilevel estimate at the edges."""
    from pymatting import estimate_foreground_ml

    h, w = work_size(*photo.shape[:2], min(long_side, max(photo.shape[:2])))
    small = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    small_alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
    estimate = estimate_foreground_ml(small, small_alpha)
    up = cv2.resize(estimate.astype(np.float32), photo.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    edge = (alpha < OPAQUE)[..., None]
    return np.where(edge, np.clip(np.rint(up * 255.0), 0, 255).astype(np.uint8), photo)


def cutout_rgba(photo: np.ndarray, alpha: np.ndarray, colours: np.ndarray | None = None) -> np.ndarray:
    colours = foreground(photo, alpha) if colours is None else colours
    a = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    return np.dstack([colours, a])


def _canvas(background: Background, height: int, width: int) -> np.ndarray:
    if background.image is None:
        return np.broadcast_to(np.array(background.colour, np.float64), (height, width, 3)).copy()
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(background.image) as img:
            pixels = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"--background {background.image}: not a readable image ({exc})") from None
    scale = max(height / pixels.shape[0], width / pixels.shape[1])  # cover the canvas, then centre-crop
    h, w = max(height, round(pixels.shape[0] * scale)), max(width, round(pixels.shape[1] * scale))
    pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = (h - height) // 2, (w - width) // 2
    return pixels[y : y + height, x : x + width].astype(np.float64)


def render(
    photo: np.ndarray, alpha: np.ndarray, background: Background, fill: float = 0.85, shadow: bool = False,
    colours: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The product centred at `fill` on `background`, on a canvas of the photo's size (see module doc)."""
    if not 0 < fill <= 1:
        raise InputError(f"--fill {fill} must be in (0, 1]")
    height, width = alpha.shape
    ys, xs = np.nonzero(alpha > BOX_FLOOR)
    canvas = _canvas(background, height, width)
    if not len(ys):  # no product found: the background alone, as the matte says
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    colours = foreground(photo, alpha) if colours is None else colours
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    scale = fill * min(height / (y1 - y0), width / (x1 - x0))
    h, w = max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    box_a = np.clip(cv2.resize(alpha[y0:y1, x0:x1], (w, h), interpolation=interpolation), 0, 1)
    box_f = cv2.resize(colours[y0:y1, x0:x1], (w, h), interpolation=interpolation).astype(np.float64)
    top, left = (height - h) // 2, (width - w) // 2
    a = np.zeros((height, width), np.float64)
    f = np.zeros((height, width, 3), np.float64)
    a[top : top + h, left : left + w], f[top : top + h, left : left + w] = box_a, box_f
    if shadow:
        side = min(height, width)
        cast = cv2.warpAffine(a, np.float64([[1, 0, 0], [0, 1, SHADOW["dy"] * side]]), (width, height))
        cast = cv2.GaussianBlur(cast, (0, 0), max(0.5, SHADOW["blur"] * side))
        canvas = canvas * (1.0 - SHADOW["opacity"] * cast[..., None])
    out = a[..., None] * f + (1.0 - a[..., None]) * canvas
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
