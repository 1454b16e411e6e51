"""Estimate an alpha matte and foreground colours from a studio photo on a white background.

In: a product photo (uint8 H x W x 3, as ingest stores it) and a `MatteConfig`. Out: a `MatteEstimate` at
the config's working size (long side `work_long_side`): the alpha (float32 H x W in [0, 1]), the
foreground colours (uint8 H x W x 3, background bleed removed so a composite has no white fringe), the
measures it was judged on and `reason`: None for a usable matte, else the `Reason` it is skipped with and
a detail line. Deterministic: the same pixels and config give the same bytes.

Steps: background = pixels whose every channel is within `white_tolerance` of 255; morphological
clean-up (an opening removes JPEG specks from the background, enclosed white holes smaller than
`max_hole_share` of the image become product: a white logo is not background); a trimap whose unknown
band is `trimap_radius` px either side of the edge; pymatting's closed-form alpha in the band (Levin et al.)
and its multilevel foreground estimate. Skips, each with its measure in the detail:
- matte_not_white_background: under `min_white_border` of the border band is background white;
- matte_empty: the product covers under `min_fill` or over `max_fill` of the frame;
- matte_unreliable: the matte's soft band (0.05 < alpha < 0.95) is over `max_soft_share` of the product
  area (white product on white, heavy shadow), reported as `confidence` = 1 - soft share.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from schemas.reasons import Reason

logger = logging.getLogger(__name__)

SOFT_LOW, SOFT_HIGH = 0.05, 0.95  # alpha strictly between these is the matte's soft band
BORDER_SHARE = 0.02  # of each side: the band the white-background test reads


class MatteConfig(BaseModel):
    """How mattes are estimated from white-background photos; every field changes the output bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_long_side: int = Field(default=384, ge=64, le=2048)  # the matte's resolution
    white_tolerance: int = Field(default=14, ge=0, le=64)  # JPEG studio white is 241..255, not exactly 255
    min_white_border: float = Field(default=0.6, ge=0, le=1)  # product photos are cropped at the model's feet
    trimap_radius: int = Field(default=3, ge=1, le=32)
    max_hole_share: float = Field(default=0.002, ge=0, le=1)
    min_fill: float = Field(default=0.02, gt=0, lt=1)
    max_fill: float = Field(default=0.9, gt=0, le=1)
    max_soft_share: float = Field(default=0.25, gt=0, le=1)


@dataclass(frozen=True)
class MatteEstimate:
    alpha: np.ndarray  # float32 H x W, [0, 1]
    foreground: np.ndarray  # uint8 H x W x 3
    image: np.ndarray  # the photo at the working size, uint8 H x W x 3
    white_border: float
    fill: float
    confidence: float  # 1 - the soft band's share of the product area
    reason: Reason | None
    detail: str = ""


def work_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) with the long side at `long_side`, aspect kept (never below 1 px)."""
    factor = long_side / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def white_mask(image: np.ndarray, tolerance: int) -> np.ndarray:
    """True where every channel is within `tolerance` of 255."""
    return image.min(axis=2) >= 255 - tolerance


def border_share(mask: np.ndarray) -> float:
    """Share of the border band (BORDER_SHARE of each side, at least 1 px) where `mask` holds."""
    h, w = mask.shape
    by, bx = max(1, round(h * BORDER_SHARE)), max(1, round(w * BORDER_SHARE))
    band = np.concatenate(
        [mask[:by].ravel(), mask[-by:].ravel(), mask[:, :bx].ravel(), mask[:, -bx:].ravel()]
    )
    return float(band.mean())


def product_mask(background: np.ndarray, max_hole_share: float) -> np.ndarray:
    """The product: not background, JPEG specks opened away, small enclosed white holes filled."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    product = cv2.morphologyEx((~background).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    # background components that do not touch the border and are small are part of the product
    count, labels, stats, _ = cv2.connectedComponentsWithStats((1 - product).astype(np.uint8), connectivity=4)
    h, w = product.shape
    limit = max_hole_share * h * w
    for label in range(1, count):
        x, y, cw, ch, area = stats[label]
        touches = x == 0 or y == 0 or x + cw == w or y + ch == h
        if not touches and area <= limit:
            product[labels == label] = 1
    return product.astype(bool)


def trimap(product: np.ndarray, radius: int) -> np.ndarray:
    """float64 trimap: 1 sure product, 0 sure background, 0.5 the band `radius` px either side of the edge."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    sure_fg = cv2.erode(product.astype(np.uint8), kernel).astype(bool)
    sure_bg = ~cv2.dilate(product.astype(np.uint8), kernel).astype(bool)
    out = np.full(product.shape, 0.5)
    out[sure_fg], out[sure_bg] = 1.0, 0.0
    return out


def estimate_matte(photo: np.ndarray, config: MatteConfig) -> MatteEstimate:
    """The photo's matte at the working size; `reason` says why it is not usable (see the module doc)."""
    from pymatting import estimate_alpha_cf, estimate_foreground_ml  # numba: compiled once, cached on disk

    h, w = work_size(*photo.shape[:2], config.work_long_side)
    image = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != photo.shape[:2] else photo
    image = np.ascontiguousarray(image)
    background = white_mask(image, config.white_tolerance)
    white = border_share(background)
    product = product_mask(background, config.max_hole_share)
    fill = float(product.mean())

    def result(alpha, foreground, confidence, reason=None, detail=""):
        return MatteEstimate(alpha, foreground, image, white, fill, confidence, reason, detail)

    empty = np.zeros((h, w), np.float32)
    if white < config.min_white_border:
        detail = f"white border share {white:.3f} < matte.min_white_border={config.min_white_border}"
        return result(empty, image, 0.0, Reason.MATTE_NOT_WHITE_BACKGROUND, detail)
    if not config.min_fill <= fill <= config.max_fill:
        detail = (
            f"product fill {fill:.3f} outside matte.min_fill..max_fill = {config.min_fill}..{config.max_fill}"
        )
        return result(empty, image, 0.0, Reason.MATTE_EMPTY, detail)
    pixels = image.astype(np.float64) / 255.0
    chatter = io.StringIO()  # pymatting prints its preconditioner's retries; they go to the debug log
    with contextlib.redirect_stdout(chatter):
        alpha = np.clip(estimate_alpha_cf(pixels, trimap(product, config.trimap_radius)), 0.0, 1.0)
    if chatter.getvalue():
        logger.debug("pymatting: %s", " ".join(chatter.getvalue().split()))
    soft = float(((alpha > SOFT_LOW) & (alpha < SOFT_HIGH)).sum() / max(1, product.sum()))
    confidence = 1.0 - min(soft, 1.0)
    foreground = estimate_foreground_ml(pixels, alpha)
    foreground = np.clip(np.rint(foreground * 255.0), 0, 255).astype(np.uint8)
    alpha = alpha.astype(np.float32)
    if soft > config.max_soft_share:
        detail = f"soft matte band {soft:.3f} of the product > matte.max_soft_share={config.max_soft_share}"
        return result(alpha, foreground, confidence, Reason.MATTE_UNRELIABLE, detail)
    return result(alpha, foreground, confidence)
