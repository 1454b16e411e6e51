"""Predict the alpha matte of a photo of any size with the exported matte model (an ONNX file), without torch.

In: the path of an ONNX model that follows the matte contract (input `image` float32 N x 3 x H x W RGB in
[0, 1], H and W dynamic; output `alpha` float32 N x 1 x H x W in [0, 1]; metadata `canvas_long_side`, the
size the model predicts at: pipeline/quality/model_file.py `open_session`), and an RGB uint8 H x W x 3
photo. Out: `MattePredictor.alpha(photo)`: float32 H x W in [0, 1] at the photo's full resolution.

The photo is shrunk (area) to the model's canvas, the matte predicted there, then brought back to full
resolution edge-aware with the fast guided filter (He & Sun 2015): the local linear model alpha = a I + b
of the matte on the photo's luma is fitted at the canvas size, and only `a` and `b` are upsampled, so the
full-resolution matte follows the photo's own edges. Memory is a few float32 planes of the full photo;
the network never runs above the canvas size, so a 24 MP photo costs what a 1 MP one does in the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.matte.estimate import work_size
from pipeline.quality.model_file import INPUT_NAME, open_session

OUTPUT = "alpha"
GUIDE_RADIUS = 2  # px at the canvas size
GUIDE_EPS = 1e-4  # the guided filter's regularizer on luma in [0, 1]: smaller follows edges more closely
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.blur(x, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_upsample(alpha: np.ndarray, small_guide: np.ndarray, full_guide: np.ndarray) -> np.ndarray:
    """float32 alpha at `full_guide`'s size from `alpha` at `small_guide`'s (guides: luma in [0, 1])."""
    mean_i, mean_p = _box(small_guide, GUIDE_RADIUS), _box(alpha, GUIDE_RADIUS)
    cov = _box(small_guide * alpha, GUIDE_RADIUS) - mean_i * mean_p
    var = _box(small_guide * small_guide, GUIDE_RADIUS) - mean_i * mean_i
    a = cov / (var + GUIDE_EPS)
    b = mean_p - a * mean_i
    h, w = full_guide.shape
    a_full = cv2.resize(_box(a, GUIDE_RADIUS), (w, h), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(_box(b, GUIDE_RADIUS), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(a_full * full_guide + b_full, 0.0, 1.0)


class MattePredictor:
    """One onnxruntime session on a matte model; `alpha(photo)` at full resolution, `canvas_alpha` at its own."""

    def __init__(self, onnx_path: str | Path, threads: int = 1) -> None:
        self.onnx_path = Path(onnx_path)
        self.session, self.canvas_long_side = open_session(self.onnx_path, threads, output=OUTPUT)

    def canvas(self, photo: np.ndarray) -> np.ndarray:
        """The photo shrunk (or grown) to the model's canvas, long side `canvas_long_side`."""
        h, w = work_size(*photo.shape[:2], self.canvas_long_side)
        return photo if (h, w) == photo.shape[:2] else cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)

    def canvas_alpha(self, canvas: np.ndarray) -> np.ndarray:
        """float32 alpha of an RGB uint8 canvas, at its size."""
        batch = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        (alpha,) = self.session.run([OUTPUT], {INPUT_NAME: batch})
        alpha = np.asarray(alpha)
        if alpha.shape != (1, 1, *canvas.shape[:2]) or not np.isfinite(alpha).all():
            raise ValueError(f"the matte model returned {OUTPUT!r} of shape {alpha.shape} (or non-finite values) "
                             f"for a {canvas.shape[1]}x{canvas.shape[0]} canvas")  # fmt: skip
        return np.clip(alpha[0, 0], 0.0, 1.0).astype(np.float32)

    def alpha(self, photo: Any) -> np.ndarray:
        """float32 H x W alpha of an RGB uint8 H x W x 3 photo at its full resolution."""
        photo = np.asarray(photo)
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"a photo is uint8 H x W x 3 RGB, got {photo.dtype} {photo.shape}")
        canvas = self.canvas(photo)
        small = self.canvas_alpha(canvas)
        if canvas.shape == photo.shape:
            return small
        luma = lambda image: (image.astype(np.float32) @ LUMA) / 255.0  # noqa: E731
        return guided_upsample(small, luma(canvas), luma(photo))
