"""Score product photos with the learned no-reference quality model (an ONNX file), without torch.

In: the path of an ONNX model that follows the quality model contract (pipeline/quality/model_file.py:
input `image` float32 N x 3 x H x W RGB in [0, 1], H and W dynamic; output `score` float32 N or N x 1,
0-5), and RGB uint8 H x W x 3 photos decoded by ingest's normalizer (`pipeline.clean.normalize.decode_rgb`).
Out: one float per photo in [0, 5], higher is better.

A photo is prepared exactly as the training grid prepared its images: `quality_canvas(rgb, side, version)`
(pipeline/distort/canvas.py) with the long side and canvas version recorded in the model's metadata
(`canvas_long_side`, default 384; `canvas_version`, default 1), then scaled to [0, 1] and laid out as
1 x 3 x H x W. One image per run: canvases of different aspect ratios have different shapes, and padding
them into a batch would change what the model sees. The session runs on the CPU with `threads` intra-op
threads and one inter-op thread, so a worker process that runs one scorer uses the cores it was given and
no more.

Scores outside [0, 5] (a head without a squashing function) are clipped; a NaN or infinite score, or an
output that is not one value per image, is a ValueError naming what came back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.distort.canvas import check_rgb, quality_canvas
from pipeline.quality.model_file import INPUT_NAME, OUTPUT_NAME, canvas_version, open_session

log = logging.getLogger(__name__)

MIN_SCORE, MAX_SCORE = 0.0, 5.0


class QualityScorer:
    """One onnxruntime session on a quality model; `score_rgb` for photos, `score_canvas` for canvases."""

    def __init__(self, onnx_path: str | Path, threads: int = 1) -> None:
        self.onnx_path = Path(onnx_path)
        self.threads = threads
        self.session, self.canvas_long_side = open_session(self.onnx_path, threads)
        self.canvas_version = canvas_version(self.session, self.onnx_path)
        log.debug(
            "quality model %s: canvas long side %d (version %d), %d thread(s)",
            self.onnx_path,
            self.canvas_long_side,
            self.canvas_version,
            threads,
        )

    def score_rgb(self, rgb: Any) -> float:
        """The score of one RGB uint8 H x W x 3 photo (any size; an RGB Pillow image works too)."""
        canvas = quality_canvas(np.asarray(rgb), self.canvas_long_side, self.canvas_version)
        return self.score_canvas(canvas)

    def score_canvas(self, canvas: Any) -> float:
        """The score of one photo already on the quality canvas (long side = `canvas_long_side`)."""
        pixels = check_rgb(canvas, "score_canvas")
        if max(pixels.shape[:2]) != self.canvas_long_side:
            # another scale would mean another blur to the model: the canvas is the one preparation
            raise ValueError(
                f"score_canvas expects a quality canvas with long side {self.canvas_long_side} px, "
                f"got {pixels.shape[1]}x{pixels.shape[0]}; use score_rgb for photos of any size"
            )
        batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)
        batch /= 255.0
        (scores,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return _one_score(np.asarray(scores))


def _one_score(scores: np.ndarray) -> float:
    """The single score of a one-image run (shape 1 or 1 x 1), clipped to [0, 5]."""
    if scores.shape not in ((1,), (1, 1)):
        raise ValueError(f"the quality model returned {OUTPUT_NAME!r} of shape {scores.shape} for one image")
    value = float(scores.reshape(-1)[0])
    if not np.isfinite(value):
        raise ValueError(f"the quality model returned a non-finite score ({value})")
    return min(MAX_SCORE, max(MIN_SCORE, value))
