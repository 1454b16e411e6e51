"""Align a window of video frames on its centre frame with classical optical flow (OpenCV's DIS).

In: a window of consecutive frames (a sequence of uint8 H x W x 3 arrays of one size, an odd count, the
frame to upscale in the middle). Out: `align_window` -> a list of as many uint8 H x W x 3 frames: the centre
frame unchanged, every neighbour warped onto it. The flow runs from the centre's luma to the neighbour's
(DIS, dense inverse search, OpenCV's medium preset: classical, so nothing to download or train), and the
neighbour is resampled there (bicubic, borders replicated). A window whose frames are under `MIN_SIDE` px
(smaller than DIS's patches) comes back as it is.

Why: a small multi-frame network cannot learn to match pans of several LR px within a CPU budget (a 5-frame
window of 2 px/frame spans 8 px), but it can read the sub-pixel differences of frames already aligned; on
the synthetic product clips the aligned neighbours match the centre at ~42 dB PSNR against ~26 dB raw.
The same function prepares every window a flow-aligned model sees: training crops, validation, `crisp
upscale` and the MLflow pyfunc (which ships this file, so it imports nothing from crisp: numpy and cv2 only).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MIN_SIDE = 12  # DIS refuses frames of about its 8 px patch


def align_window(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every frame of `frames` warped onto the middle one (see the module docstring)."""
    if len(frames) % 2 == 0:
        raise ValueError(f"a window needs an odd number of frames (a centre), got {len(frames)}")
    centre = np.ascontiguousarray(frames[len(frames) // 2])
    height, width = centre.shape[:2]
    if len(frames) == 1 or min(height, width) < MIN_SIDE:
        return [np.asarray(frame) for frame in frames]
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    centre_luma = cv2.cvtColor(centre, cv2.COLOR_RGB2GRAY)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    aligned = []
    for index, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        if frame.shape != centre.shape:
            raise ValueError(f"the window's frames differ in size: {frame.shape} and {centre.shape}")
        if index == len(frames) // 2:
            aligned.append(centre)
            continue
        motion = flow.calc(centre_luma, cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None)
        aligned.append(
            cv2.remap(frame, grid_x + motion[..., 0], grid_y + motion[..., 1], cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_REPLICATE)
        )  # fmt: skip
    return aligned
