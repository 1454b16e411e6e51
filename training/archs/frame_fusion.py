"""FrameFusion: a sliding-window multi-frame x4 super-resolution network, small enough for CPU training.

In: a float tensor N x (3*frames) x h x w in [0, 1]: `frames` consecutive LR frames stacked along the
channels, oldest first, the frame to upscale in the middle. Out: N x 3 x (h*s) x (w*s), the middle frame
super-resolved (unclamped).

Every frame goes through the same feature extractor (two 3x3 convolutions, shared weights, so the net sees
each frame alike wherever it sits in the window); each neighbour's features are then concatenated with the
centre's and passed through one alignment block shared by all neighbours (two 3x3 convolutions with a
residual: learned alignment, so no optical flow and no downloaded weights are needed; with pans of a few LR
px per frame the block's 5x5 receptive field spans the motion between neighbours); the aligned features of all frames are fused by a 1x1
convolution and refined by `blocks` residual blocks at LR resolution; a 3x3 convolution predicts s^2
sub-pixel phases and PixelShuffle places them, added to the bicubic upscale of the centre frame (the net
learns only the detail interpolation misses). `frames=1` is the single-frame twin of the same size: no
alignment, the same trunk and head, what a multi-frame model must beat.

Defaults (64 features, 6 blocks, 5 frames): 0.64 M parameters; frames=1: 0.51 M (with blocks=8, 0.66 M: the
same size budget).
"""

from __future__ import annotations

import torch
from torch import nn

from training.archs.bicubic import bicubic_upscale


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

    def __init__(self, scale: int = 4, frames: int = 5, features: int = 64, blocks: int = 6) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"frame_fusion supports scales {self.supported_scales}, got {scale}")
        if frames < 1 or frames % 2 == 0:
            raise ValueError(
                f"frame_fusion needs an odd number of frames (the centre one is upscaled), got {frames}"
            )
        self.scale, self.frames = scale, frames
        self.extract = nn.Sequential(
            nn.Conv2d(3, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.align = nn.Sequential(
            nn.Conv2d(2 * features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        ) if frames > 1 else None  # fmt: skip
        self.fuse = nn.Conv2d(frames * features, features, 1)
        self.trunk = nn.Sequential(*(_Residual(features) for _ in range(blocks)))
        self.head = nn.Conv2d(features, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.head.bias)
        self.head.weight.data.mul_(0.1)  # start near the bicubic upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if channels != 3 * self.frames:
            raise ValueError(
                f"frame_fusion expects {self.frames} stacked RGB frames ({3 * self.frames} channels), got {channels}"
            )
        feats = self.extract(x.reshape(batch * self.frames, 3, height, width))
        feats = feats.reshape(batch, self.frames, -1, height, width)
        middle = self.frames // 2
        centre = feats[:, middle]
        aligned = [
            centre if t == middle else feats[:, t] + self.align(torch.cat([feats[:, t], centre], dim=1))
            for t in range(self.frames)
        ]
        fused = self.fuse(torch.cat(aligned, dim=1))
        out = self.shuffle(self.head(self.trunk(fused) + fused))
        start = 3 * middle
        return out + bicubic_upscale(x[:, start : start + 3], self.scale)
