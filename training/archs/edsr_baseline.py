"""EDSR-baseline (Lim et al., CVPRW 2017): the small EDSR without batch norm.

In: a float tensor N x 3 x h x w in [0, 1]. Out: N x 3 x (h*s) x (w*s) (unclamped).

Layout, as in the paper and its reference code: subtract the DIV2K RGB mean; head conv 3x3 -> 64;
body of 16 residual blocks (conv-ReLU-conv, residual scaling 1) plus a conv, with a long skip over
the body; upsampler conv + PixelShuffle (one x2 or x3 step, two x2 steps for x4); conv 3x3 -> 3;
add the mean back. Parameters: 1,369,859 (x2), 1,554,499 (x3), 1,517,571 (x4) -- the paper's
"1.5M" (the commonly quoted 1.37M is the x2 model).
"""

from __future__ import annotations

import torch
from torch import nn

# DIV2K training-set RGB mean on a [0, 1] scale (EDSR's reference code).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class ResBlock(nn.Module):
    def __init__(self, features: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv3x3(features, features), nn.ReLU(inplace=True), _conv3x3(features, features)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def _upsampler(scale: int, features: int) -> nn.Sequential:
    steps: list[nn.Module] = []
    factors = [2, 2] if scale == 4 else [scale]
    for factor in factors:
        steps += [_conv3x3(features, features * factor * factor), nn.PixelShuffle(factor)]
    return nn.Sequential(*steps)


class EDSRBaseline(nn.Module):
    supported_scales = (2, 3, 4)

    def __init__(
        self,
        scale: int,
        n_resblocks: int = 16,
        features: int = 64,
        res_scale: float = 1.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"edsr_baseline supports scales {self.supported_scales}, got {scale}")
        self.scale = scale
        # A buffer, not a parameter: the mean shift is fixed, and it travels with the state dict.
        self.register_buffer("rgb_mean", torch.tensor(rgb_mean).view(1, 3, 1, 1))
        self.head = _conv3x3(3, features)
        self.body = nn.Sequential(
            *[ResBlock(features, res_scale) for _ in range(n_resblocks)], _conv3x3(features, features)
        )
        self.tail = nn.Sequential(_upsampler(scale, features), _conv3x3(features, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x - self.rgb_mean)
        x = x + self.body(x)
        return self.tail(x) + self.rgb_mean
