"""Measure a predicted alpha matte against the true one: the matting and segmentation figures of issue #14.

In: two float arrays H x W in [0, 1] (prediction, ground truth) at the same size. Out: `matte_measures`
-> {"iou", "mae", "sad", "grad", "boundary_f"}; `mean_measures` averages a list of them (per image, then
the mean, as the matting benchmarks report).

- iou: intersection over union of the masks alpha >= 0.5 (1 when both are empty);
- mae: mean absolute alpha error; sad: its sum, in thousands (the matting convention);
- grad: sum of squared differences of the Gaussian gradient magnitudes (sigma 1.4, Rhemann et al. 2009),
  in thousands: a blurred or jagged edge costs here where MAE barely moves;
- boundary_f: the boundary F-measure of the two masks (Perazzi et al. 2016): a boundary pixel counts as
  matched within max(1, round(0.008 x diagonal)) px of the other boundary; F = 2PR / (P + R), 1 when
  neither mask has a boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage

GRAD_SIGMA = 1.4
BOUNDARY_TOLERANCE = 0.008  # of the image diagonal
NAMES = ("iou", "mae", "sad", "grad", "boundary_f")


def _boundary(mask: np.ndarray) -> np.ndarray:
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask & ~eroded.astype(bool)


def boundary_f(pred: np.ndarray, true: np.ndarray) -> float:
    """Boundary F-measure of two boolean masks (see the module docstring)."""
    bp, bt = _boundary(pred), _boundary(true)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    tolerance = max(1, round(BOUNDARY_TOLERANCE * float(np.hypot(*pred.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_t = cv2.dilate(bt.astype(np.uint8), kernel).astype(bool)
    near_p = cv2.dilate(bp.astype(np.uint8), kernel).astype(bool)
    precision = float((bp & near_t).sum() / bp.sum())
    recall = float((bt & near_p).sum() / bt.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def matte_measures(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {true.shape} differ in size")
    p, t = np.clip(pred.astype(np.float64), 0, 1), np.clip(true.astype(np.float64), 0, 1)
    mp, mt = p >= 0.5, t >= 0.5
    union = int((mp | mt).sum())
    error = np.abs(p - t)
    gp = ndimage.gaussian_gradient_magnitude(p, GRAD_SIGMA)
    gt = ndimage.gaussian_gradient_magnitude(t, GRAD_SIGMA)
    return {
        "iou": 1.0 if union == 0 else float((mp & mt).sum() / union),
        "mae": float(error.mean()),
        "sad": float(error.sum() / 1000.0),
        "grad": float(((gp - gt) ** 2).sum() / 1000.0),
        "boundary_f": boundary_f(mp, mt),
    }


def mean_measures(measures: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The per-image mean of each measure (empty input: an empty dict)."""
    if not measures:
        return {}
    return {name: float(np.mean([m[name] for m in measures])) for name in NAMES}
