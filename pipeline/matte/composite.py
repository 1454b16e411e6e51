"""Composite a matted product over a new background: I = alpha F + (1 - alpha) B, with exact ground truth.

In: a `MatteEstimate`'s alpha and foreground, the params `composite_params(image_id, variant)` draws (or
ones read back from an index), the canvas side, and the scene photos (uint8 H x W x 3, sorted by name;
may be empty). Out: a `Composite` of uint8 canvases: the image, its alpha (0..255, the training target),
and the placed foreground and background it was made from (for the compositional loss).

Params are plain JSON values seeded by (image_id, "matte_composites", COMPOSITE_VERSION, variant), so
`compose(estimate, params, side, scenes)` regenerates a sample bit for bit. They hold:
- background: `scene` (a square crop of one scene photo, flipped or not), `gradient` (two colours along an
  angle), `texture` (smoothed noise between two colours, at a scale), `noise` (a colour plus Gaussian
  noise) or `solid` (a colour; a third of them studio white, the case serving meets most);
- placement: the product's height share of the canvas and its centre;
- jitter of the product's brightness, contrast and saturation;
- lighting: a linear gain ramp over the whole canvas (product and background alike);
- shadow: none, or the product's alpha shifted, blurred and darkening the background by an opacity.
The image is computed from the uint8 alpha, foreground and background, so the stored four agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.degrade.recipe import seed_generator

COMPOSITES = "matte_composites"  # the sample family (pipeline/pairs/composites.py)
COMPOSITE_VERSION = 1  # the seed key's version: a change of any sample's bytes is a new version
KINDS = ("scene", "texture", "gradient", "noise", "solid")
WEIGHTS = {"scene": 0.35, "texture": 0.2, "gradient": 0.15, "noise": 0.1, "solid": 0.2}
ALPHA_FLOOR = 0.02  # the product's box: where alpha exceeds this


@dataclass(frozen=True)
class Composite:
    image: np.ndarray  # uint8 S x S x 3
    alpha: np.ndarray  # uint8 S x S
    foreground: np.ndarray  # uint8 S x S x 3 (the placed, jittered, lit product colours)
    background: np.ndarray  # uint8 S x S x 3 (with the shadow and lighting)


def _colour(rng: np.random.Generator) -> list[int]:
    return [int(v) for v in rng.integers(0, 256, 3)]


def composite_params(image_id: str, variant: int, scenes: Sequence[str] = ()) -> dict[str, Any]:
    """The recorded params of composite `variant` of `image_id`; `scenes` are the scene names (sorted)."""
    rng = seed_generator(image_id, COMPOSITES, COMPOSITE_VERSION, variant)
    kinds = [k for k in KINDS if k != "scene" or scenes]
    weights = np.array([WEIGHTS[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    if kind == "scene":
        index = int(rng.integers(0, len(scenes)))
        background = {"kind": kind, "scene": scenes[index], "side": float(rng.uniform(0.5, 1.0)),
                      "x": float(rng.uniform()), "y": float(rng.uniform()), "flip": bool(rng.integers(0, 2))}  # fmt: skip
    elif kind in ("gradient", "texture"):
        background = {"kind": kind, "c0": _colour(rng), "c1": _colour(rng), "angle": float(rng.uniform(0, 360)),
                      "scale": float(rng.uniform(4, 48)), "seed": int(rng.integers(0, 2**31))}  # fmt: skip
    elif kind == "noise":
        background = {"kind": kind, "c0": _colour(rng), "sigma": float(rng.uniform(5, 40)),
                      "seed": int(rng.integers(0, 2**31))}  # fmt: skip
    else:
        white = rng.uniform() < 1 / 3
        background = {"kind": kind, "c0": [255, 255, 255] if white else _colour(rng)}
    shadow = None
    if rng.uniform() < 0.4:
        shadow = {"dx": float(rng.uniform(-0.06, 0.06)), "dy": float(rng.uniform(0, 0.06)),
                  "blur": float(rng.uniform(0.01, 0.05)), "opacity": float(rng.uniform(0.2, 0.6))}  # fmt: skip
    return {
        "version": COMPOSITE_VERSION,
        "background": background,
        "placement": {
            "height_share": float(rng.uniform(0.55, 0.95)),
            "cx": float(rng.uniform(0.3, 0.7)),
            "cy": float(rng.uniform(0.4, 0.6)),
        },  # fmt: skip
        "jitter": {
            "brightness": float(rng.uniform(0.85, 1.15)),
            "contrast": float(rng.uniform(0.85, 1.15)),
            "saturation": float(rng.uniform(0.8, 1.2)),
        },  # fmt: skip
        "lighting": {
            "g0": float(rng.uniform(0.8, 1.1)),
            "g1": float(rng.uniform(0.8, 1.1)),
            "angle": float(rng.uniform(0, 360)),
        },  # fmt: skip
        "shadow": shadow,
    }


def _ramp(side: int, angle: float) -> np.ndarray:
    """0..1 along direction `angle` (degrees) over a side x side canvas."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) / max(1, side - 1)
    t = np.cos(np.radians(angle)) * xx + np.sin(np.radians(angle)) * yy
    return (t - t.min()) / max(np.ptp(t), 1e-12)


def background(spec: Mapping[str, Any], side: int, scenes: Mapping[str, np.ndarray]) -> np.ndarray:
    """float64 side x side x 3 background (0..255) of a params' `background` entry."""
    kind = spec["kind"]
    if kind == "scene":
        photo = scenes[spec["scene"]]
        h, w = photo.shape[:2]
        crop = max(8, round(min(h, w) * spec["side"]))
        y, x = round((h - crop) * spec["y"]), round((w - crop) * spec["x"])
        out = cv2.resize(photo[y : y + crop, x : x + crop], (side, side), interpolation=cv2.INTER_AREA)
        return (out[:, ::-1] if spec["flip"] else out).astype(np.float64)
    c0 = np.array(spec["c0"], np.float64)
    if kind == "solid":
        return np.broadcast_to(c0, (side, side, 3)).copy()
    rng = np.random.default_rng(spec["seed"])
    if kind == "noise":
        return np.clip(c0 + rng.normal(0, spec["sigma"], (side, side, 3)), 0, 255)
    c1 = np.array(spec["c1"], np.float64)
    if kind == "gradient":
        t = _ramp(side, spec["angle"])
    else:  # texture: noise at a coarse grid, smoothly upsampled
        cells = max(2, round(side / spec["scale"]))
        t = cv2.resize(rng.uniform(0, 1, (cells, cells)), (side, side), interpolation=cv2.INTER_CUBIC)
        t = np.clip(t, 0, 1)
    return c0 + (c1 - c0) * t[..., None]


def _jitter(colours: np.ndarray, spec: Mapping[str, float]) -> np.ndarray:
    luma = colours @ np.array([0.299, 0.587, 0.114])
    out = luma[..., None] + (colours - luma[..., None]) * spec["saturation"]
    out = (out - 128.0) * spec["contrast"] + 128.0
    return out * spec["brightness"]


def compose(
    alpha: np.ndarray, foreground: np.ndarray, params: Mapping[str, Any], side: int,
    scenes: Mapping[str, np.ndarray],
) -> Composite:  # fmt: skip
    """The composite of `params` on a side x side canvas (alpha float [0, 1], foreground uint8)."""
    ys, xs = np.nonzero(alpha > ALPHA_FLOOR)
    if not len(ys):
        raise ValueError("the matte is empty: nothing to composite")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box_a, box_f = alpha[y0:y1, x0:x1], foreground[y0:y1, x0:x1]
    place = params["placement"]
    height = max(1, round(side * place["height_share"]))
    width = max(1, round(box_a.shape[1] * height / box_a.shape[0]))
    if width > side:  # a wide product: fit the width instead
        width, height = side, max(1, round(box_a.shape[0] * side / box_a.shape[1]))
    small_a = cv2.resize(box_a, (width, height), interpolation=cv2.INTER_AREA)
    small_f = cv2.resize(box_f, (width, height), interpolation=cv2.INTER_AREA)
    top = min(max(0, round(place["cy"] * side - height / 2)), side - height)
    left = min(max(0, round(place["cx"] * side - width / 2)), side - width)
    # a product the photo cuts off (a model cropped at the waist) stays cut off at the same canvas edge
    h, w = alpha.shape
    top = 0 if y0 == 0 else side - height if y1 == h else top
    left = 0 if x0 == 0 else side - width if x1 == w else left
    a = np.zeros((side, side), np.float64)
    f = np.zeros((side, side, 3), np.float64)
    a[top : top + height, left : left + width] = np.clip(small_a, 0, 1)
    f[top : top + height, left : left + width] = _jitter(small_f.astype(np.float64), params["jitter"])
    b = background(params["background"], side, scenes)
    shadow = params.get("shadow")
    if shadow:
        shift = np.float64([[1, 0, shadow["dx"] * side], [0, 1, shadow["dy"] * side]])
        cast = cv2.warpAffine(a, shift, (side, side))
        sigma = max(0.5, shadow["blur"] * side)
        cast = cv2.GaussianBlur(cast, (0, 0), sigma)
        b = b * (1.0 - shadow["opacity"] * cast[..., None])
    light = params["lighting"]
    gain = light["g0"] + (light["g1"] - light["g0"]) * _ramp(side, light["angle"])
    to_u8 = lambda v: np.clip(np.rint(v), 0, 255).astype(np.uint8)  # noqa: E731
    alpha_u8, fg_u8, bg_u8 = to_u8(a * 255.0), to_u8(f * gain[..., None]), to_u8(b * gain[..., None])
    q = alpha_u8.astype(np.float64)[..., None] / 255.0
    image = to_u8(q * fg_u8 + (1.0 - q) * bg_u8)
    return Composite(image, alpha_u8, fg_u8, bg_u8)
