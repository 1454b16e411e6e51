"""Measure video super-resolution: per-frame fidelity and temporal consistency against known motion.

In: a clip's super-resolved HR frames, its ground-truth HR frames (frames x H x W x 3 uint8) and, for the
synthetic clips (pipeline/video/clips.py), every frame's 2x3 matrix (photo pixel <- frame pixel). Out:
`frame_psnr_y` (PSNR-Y of every frame, `border` px shaved, pipeline/sr_metrics), `temporal_error` (how much
a method's change from one frame to the next differs from the true change, in gray levels),
`warp_to` (frame t resampled onto frame u's pixel grid with the known motion) and, for real clips whose
motion is unknown, `flow_warping_error` (the classic warping error: frame t warped onto frame t+1 by optical
flow estimated once on a reference upscale, so every method is judged with the same flow).

Temporal error: with W the warp of frame t onto frame t+1 by the known motion, the true frames change by
G_{t+1} - W(G_t) (only resampling, since the scene is static); a method flickers where its own change
O_{t+1} - W(O_t) departs from that. The mean absolute departure over the inner region (the warp leaves
`margin` px of each border undefined) and over consecutive pairs is the temporal error; 0 is a method
exactly as consistent as the truth. Per-frame upscaling that invents detail differently in each frame
scores high; a smooth but stable method scores low, which is why it is read next to PSNR.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.sr_metrics import psnr_y


def _full(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    return np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])


def warp_to(frame: np.ndarray, source_matrix, target_matrix) -> np.ndarray:
    """`frame` (rendered with `source_matrix`) resampled onto the grid of the frame rendered with
    `target_matrix` (OpenCV bicubic, edge pixels replicated)."""
    target_to_source = (np.linalg.inv(_full(source_matrix)) @ _full(target_matrix))[:2]
    height, width = frame.shape[:2]
    return cv2.warpAffine(
        np.ascontiguousarray(frame), target_to_source, (width, height),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


def temporal_error(outputs: np.ndarray, truths: np.ndarray, matrices: Sequence, margin: int = 8) -> float:
    """Mean |(O_{t+1} - W(O_t)) - (G_{t+1} - W(G_t))| in gray levels over consecutive frame pairs."""
    if outputs.shape != truths.shape or len(outputs) != len(matrices) or len(outputs) < 2:
        raise ValueError(
            f"need matching clips of >= 2 frames, got {outputs.shape}, {truths.shape}, {len(matrices)} matrices"
        )
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    errors = []
    for t in range(len(outputs) - 1):
        made = outputs[t + 1].astype(np.float32) - warp_to(outputs[t], matrices[t], matrices[t + 1])
        true = truths[t + 1].astype(np.float32) - warp_to(truths[t], matrices[t], matrices[t + 1])
        errors.append(float(np.abs(made - true)[inner].mean()))
    return float(np.mean(errors))


def frame_psnr_y(outputs: np.ndarray, truths: np.ndarray, border: int) -> list[float]:
    """PSNR-Y of every frame (the SR tables' measure), `border` px shaved."""
    return [psnr_y(o, g, border) for o, g in zip(outputs, truths, strict=True)]


def flow_warping_error(outputs: np.ndarray, reference: np.ndarray, margin: int = 8) -> float:
    """Mean |O_{t+1} - W_t(O_t)| in gray levels, W_t the backward Farneback flow (OpenCV) from frame t+1 to
    frame t of `reference` (e.g. the bicubic upscale of the clip), over the inner region and the pairs."""
    if outputs.shape != reference.shape or len(outputs) < 2:
        raise ValueError(f"need matching clips of >= 2 frames, got {outputs.shape} and {reference.shape}")
    height, width = outputs.shape[1:3]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in reference]
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    errors = []
    for t in range(len(outputs) - 1):
        flow = cv2.calcOpticalFlowFarneback(gray[t + 1], gray[t], None, 0.5, 4, 21, 3, 5, 1.1, 0)
        warped = cv2.remap(np.ascontiguousarray(outputs[t]), grid_x + flow[..., 0], grid_y + flow[..., 1],
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        errors.append(float(np.abs(outputs[t + 1].astype(np.float32) - warped)[inner].mean()))
    return float(np.mean(errors))
