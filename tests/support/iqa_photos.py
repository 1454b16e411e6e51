"""Real product photos, pristine and distorted, for the no-reference scores' tests (NIQE, BRISQUE).

In: the product photo folder and a score function (uint8 RGB -> float). Out: `distortion_scores`, an array
(photos, 3) of the score of each of `PHOTOS` scaled to `LONG_SIDE`: pristine, Gaussian blur sigma 4,
Gaussian noise sigma 30 (seeded). 512 px, not 384: NIQE fits a 36-d Gaussian to 96 px patches, and a 384 px
product photo has at most 12, half of them white background: over all 476 catalogue photos NIQE ranks the
sigma-4 blur worse for 68 % at 384 px, 88 % at 512 (BRISQUE: 100 % at both; noise: 97-100 %).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# the first photo of each top-level catalogue category (Training, Gear, Men, Women)
PHOTOS = ("lt01.jpg", "luma-foam-roller.jpg", "mh01-black_main.jpg", "wb01-black_main.jpg")
LONG_SIDE = 512


def load(path: Path, long_side: int = LONG_SIDE) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    scale = long_side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def distortion_scores(product_photos: Path, score: Callable[[np.ndarray], float]) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = []
    for name in PHOTOS:
        pristine = load(product_photos / name)
        blurred = cv2.GaussianBlur(pristine, (0, 0), 4)
        noisy = np.clip(pristine + rng.normal(0, 30, pristine.shape), 0, 255).round().astype(np.uint8)
        rows.append([score(image) for image in (pristine, blurred, noisy)])
    return np.array(rows)


def assert_distortions_score_worse(scores: np.ndarray) -> None:
    """Blur and noise score worse (higher) than the pristine photo for most photos."""
    assert np.isfinite(scores).all(), scores
    pristine, blurred, noisy = scores.T
    assert (blurred > pristine).sum() > len(PHOTOS) / 2, scores
    assert (noisy > pristine).sum() > len(PHOTOS) / 2, scores
