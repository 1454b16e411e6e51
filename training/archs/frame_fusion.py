"""FrameFusion: a sliding-window multi-frame x4 super-resolution network, small enough for CPU training.

In: a float tensor N x (3*frames) x h x w in [0, 1]: `frames` consecutive LR frames stacked along the
channels, oldest first, the frame to upscale in the middle. Out: N x 3 x (h*s) x (w*s), the middle frame
super-resolved (unclamped).

Two ways to align the neighbours with the centre (`align`):
- "flow": the window arrives already aligned (pipeline/video/align.py: classical DIS optical flow, applied by
  every caller that builds a window: `prealigned` is True), so the frames are fused at once: two 3x3
  convolutions over all the stacked frames (early fusion), at the cost of the single-frame twin plus 3x3
  kernels for the extra input channels. With `neighbour_residuals` each aligned neighbour enters as its
  difference from the centre (times `NEIGHBOUR_GAIN`) and the centre's input weights start at the twin's
  scale, so the network starts as the single-frame twin and learns what the neighbours add. Why (our
  reading): five aligned frames that nearly equal each other (~42 dB) act as one input whose weights move
  five times as fast; at 750 steps of the bench's recipe the plain stack trailed the twin by 0.45 dB on
  the val clips and the residual stack matched it (+0.02 dB; a 4-minute study on the val split only).
- "learned": raw frames; every frame goes through the same feature extractor (two 3x3 convolutions, shared
  weights); each neighbour's features are concatenated with the centre's and passed through one alignment
  block shared by all neighbours (two 3x3 convolutions with a residual). Its few-px receptive field matches
  small motions only; the bench's 15-minute run trailed the single-frame twin with it (bench/results).
Then a 1x1 convolution fuses, `blocks` residual blocks refine at LR resolution, a 3x3 convolution predicts
s^2 sub-pixel phases and PixelShuffle places them, added to the bicubic upscale of the centre frame (the net
learns only the detail interpolation misses). `frames=1` is the single-frame twin: no alignment, the same
trunk and head, what a multi-frame model must beat.

Sizes at 64 features: learned, 5 frames, 6 blocks: 0.64 M parameters; flow, 5 frames, 8 blocks: 0.67 M
(with or without `neighbour_residuals`, which adds no parameters);
frames=1 with 8 blocks (the twin of both): 0.66 M.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from training.archs.bicubic import bicubic_upscale

NEIGHBOUR_GAIN = 4.0  # aligned neighbours differ from the centre by a few grey levels: scale them up


class _Residual(nn.Module):
    def __init__(self, features: int, scale: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.body(x)


class FrameFusion(nn.Module):
    supported_scales = (4,)

    def __init__(self, scale: int = 4, frames: int = 5, features: int = 64, blocks: int = 6,
                 align: Literal["learned", "flow"] = "learned",
                 neighbour_residuals: bool = False) -> None:  # fmt: skip
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"frame_fusion supports scales {self.supported_scales}, got {scale}")
        if frames < 1 or frames % 2 == 0:
            raise ValueError(
                f"frame_fusion needs an odd number of frames (the centre one is upscaled), got {frames}"
            )
        if align not in ("learned", "flow"):
            raise ValueError(f"frame_fusion align must be 'learned' or 'flow', got {align!r}")
        self.scale, self.frames = scale, frames
        self.prealigned = align == "flow" and frames > 1  # callers align the window (pipeline/video/align.py)
        if neighbour_residuals and not self.prealigned:
            raise ValueError("frame_fusion neighbour_residuals needs align='flow' and more than one frame")
        self.neighbour_residuals = neighbour_residuals
        fused_inputs = frames if self.prealigned else 1
        self.extract = nn.Sequential(
            nn.Conv2d(3 * fused_inputs, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.align = nn.Sequential(
            nn.Conv2d(2 * features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        ) if frames > 1 and not self.prealigned else None  # fmt: skip
        self.fuse = nn.Conv2d(features * (frames // fused_inputs), features, 1)
        self.trunk = nn.Sequential(*(_Residual(features) for _ in range(blocks)))
        self.head = nn.Conv2d(features, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.head.bias)
        self.head.weight.data.mul_(0.1)  # start near the bicubic upscale
        if neighbour_residuals:  # the centre's weights at the twin's init scale (fan-in: 1/frames of this)
            centre = slice(3 * (frames // 2), 3 * (frames // 2) + 3)
            self.extract[0].weight.data[:, centre].mul_(frames**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if channels != 3 * self.frames:
            raise ValueError(
                f"frame_fusion expects {self.frames} stacked RGB frames ({3 * self.frames} channels), got {channels}"
            )
        middle = self.frames // 2
        if self.align is None:  # one frame, or a window aligned by the caller: fused at the input
            fused = self.fuse(self.extract(self._residual_stack(x) if self.neighbour_residuals else x))
        else:
            feats = self.extract(x.reshape(batch * self.frames, 3, height, width))
            feats = feats.reshape(batch, self.frames, -1, height, width)
            centre = feats[:, middle]
            aligned = [
                centre if t == middle else feats[:, t] + self.align(torch.cat([feats[:, t], centre], dim=1))
                for t in range(self.frames)
            ]
            fused = self.fuse(torch.cat(aligned, dim=1))
        out = self.shuffle(self.head(self.trunk(fused) + fused))
        start = 3 * middle
        return out + bicubic_upscale(x[:, start : start + 3], self.scale)

    def _residual_stack(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked window with every neighbour replaced by NEIGHBOUR_GAIN x (neighbour - centre)."""
        batch, channels, height, width = x.shape
        middle = self.frames // 2
        frames = x.reshape(batch, self.frames, 3, height, width)
        centre = frames[:, middle : middle + 1]
        before, after = (frames[:, :middle] - centre), (frames[:, middle + 1 :] - centre)
        stacked = torch.cat([before * NEIGHBOUR_GAIN, centre, after * NEIGHBOUR_GAIN], dim=1)
        return stacked.reshape(batch, channels, height, width)
