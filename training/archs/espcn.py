"""ESPCN (Shi et al., CVPR 2016): efficient sub-pixel convolutional network.

In: a float tensor N x 3 x h x w in [0, 1]. Out: N x 3 x (h*s) x (w*s) (unclamped; the caller
quantizes). All convolutions run at LR resolution; the last one predicts s^2 sub-pixel phases per
colour channel and `PixelShuffle` rearranges them into the HR image.

The paper's design: conv 5x5 -> 64, tanh; conv 3x3 -> 32, tanh; conv 3x3 -> 3*s^2; PixelShuffle(s).
The paper trains on Y only; here the network maps RGB to RGB, the usual modern setup.
`residual=True` (off by default, NOT in the paper) adds a float bicubic upscale of the input to the
output, so the convolutions learn only the detail the interpolation misses; it is the size-generic
`bicubic_upscale`, so a `torch.jit.trace` of either variant serves every input size.
"""

from __future__ import annotations

import torch
from torch import nn

from training.archs.bicubic import bicubic_upscale


class ESPCN(nn.Module):
    supported_scales = (2, 3, 4)

    def __init__(
        self,
        scale: int,
        channels: int = 3,
        features: tuple[int, int] = (64, 32),
        residual: bool = False,
    ) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"espcn supports scales {self.supported_scales}, got {scale}")
        first, second = features
        self.scale = scale
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(channels, first, kernel_size=5, padding=2),
            nn.Tanh(),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.Tanh(),
            nn.Conv2d(second, channels * scale * scale, kernel_size=3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.body(x))
        if self.residual:
            out = out + bicubic_upscale(x, self.scale)
        return out
