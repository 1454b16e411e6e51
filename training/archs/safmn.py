"""SAFMN (Sun et al., ICCV 2023): spatially-adaptive feature modulation for efficient SR.

In: a float tensor N x 3 x h x w in [0, 1]. Out: N x 3 x (h*s) x (w*s) (unclamped).

Layout, from the paper and its reference code: conv 3x3 -> dim; 8 blocks, each
  x = SAFM(LayerNorm(x)) + x;  x = CCM(LayerNorm(x)) + x
with a long skip over the blocks; conv 3x3 -> 3*s^2 and PixelShuffle(s).
SAFM splits the channels into 4 groups: group 0 gets a depthwise 3x3 at full resolution, group i
is adaptively max-pooled to (h/2^i, w/2^i), depthwise 3x3, nearest-upsampled back; a 1x1 conv
aggregates the groups, and GELU of that modulates the block input. CCM is conv 3x3 -> dim*ffn_scale,
GELU, conv 1x1 -> dim. LayerNorm normalises over channels at every pixel (channels_first).
Defaults dim 36, 8 blocks, ffn_scale 2.0: 239,520 parameters at x4 (paper: 240K).
One deviation: pooled sizes are floored at 1 pixel, so inputs smaller than 2^3 pixels still run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of N x C x H x W (SAFMN's `channels_first` LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation over `levels` pooling scales."""

    def __init__(self, dim: int, levels: int = 4) -> None:
        super().__init__()
        if dim % levels:
            raise ValueError(f"SAFM needs dim divisible by levels, got dim={dim} levels={levels}")
        chunk = dim // levels
        self.levels = levels
        self.depthwise = nn.ModuleList(
            [nn.Conv2d(chunk, chunk, kernel_size=3, padding=1, groups=chunk) for _ in range(levels)]
        )
        self.aggregate = nn.Conv2d(dim, dim, kernel_size=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        parts = []
        for level, chunk in enumerate(x.chunk(self.levels, dim=1)):
            if level == 0:
                parts.append(self.depthwise[0](chunk))
                continue
            pooled_size = (max(height // 2**level, 1), max(width // 2**level, 1))
            pooled = self.depthwise[level](F.adaptive_max_pool2d(chunk, pooled_size))
            parts.append(F.interpolate(pooled, size=(height, width), mode="nearest"))
        return self.act(self.aggregate(torch.cat(parts, dim=1))) * x


class CCM(nn.Module):
    """Convolutional channel mixer: the block's feed-forward part."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.mix = nn.Sequential(
            nn.Conv2d(dim, hidden, kernel_size=3, padding=1), nn.GELU(), nn.Conv2d(hidden, dim, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


class SAFMBlock(nn.Module):
    def __init__(self, dim: int, ffn_scale: float, levels: int) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.safm = SAFM(dim, levels)
        self.norm2 = ChannelLayerNorm(dim)
        self.ccm = CCM(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


class SAFMN(nn.Module):
    supported_scales = (2, 3, 4)

    def __init__(
        self, scale: int, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0, levels: int = 4
    ) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"safmn supports scales {self.supported_scales}, got {scale}")
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, kernel_size=3, padding=1)
        self.feats = nn.Sequential(*[SAFMBlock(dim, ffn_scale, levels) for _ in range(n_blocks)])
        self.to_img = nn.Sequential(
            nn.Conv2d(dim, 3 * scale * scale, kernel_size=3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        x = self.feats(x) + x
        return self.to_img(x)
