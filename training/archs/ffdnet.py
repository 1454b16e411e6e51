"""FFDNet-style restorer (Zhang et al., TIP 2018): denoise / de-JPEG / deblur at scale 1, at half resolution.

In: a float tensor N x 3 x h x w in [0, 1], any h and w (odd included), and, for a model built with `levels`
(damage-level names, training/archs/levels.py), optionally N x len(levels) normalized levels (`UNKNOWN` or
None: not told). Out: N x 3 x h x w (unclamped; the caller quantizes).

FFDNet's design: a reversible 2x2 downsampling (space-to-depth, 3 -> 12 channels), `depth` 3x3 convolutions
with ReLU at half resolution (where a 3x3 kernel sees as far as a 6x6 one at full size, for a quarter of the
work), then depth-to-space back. Here the space-to-depth and its 1x1 mixing are one 2x2 stride-2
convolution and depth-to-space is a 2x2 stride-2 transposed convolution: the same linear maps, but an odd
side is handled by replicating the last row/column and cropping the output back to `x`'s size with
shapes read from `x`, so a `torch.jit.trace` serves every input size (training/serve/export.py checks odd
sizes). The network predicts the residual (input + correction, as DnCNN/FFDNet learn the noise).

The paper's noise-level map is the optional `levels` input: one channel per level, broadcast over the image
and concatenated to the 12 downsampled channels (the paper's place for it). Trained with some levels
hidden (`data.level_dropout`), one model serves both ways: told the sigma (`crisp restore --sigma`) and
blind (crawled photos carry no known sigma; `forward(x)` alone is the blind call, and the one a TorchScript
trace records). Without `levels` (the default) the model is blind only. Other differences from the paper,
deliberate: no batch norm (small batches on CPU); and the body's middle convolutions are paired into
residual blocks (conv-ReLU-conv plus the block's input, EDSR-style, the second convolution's init scaled
by 0.1) instead of the paper's plain conv-BN-ReLU stack. Measured (T91 crops, blind N(0, 0..75^2) training, gain at
sigma 25 on held-out T91 crops, 64 features x 12 convolutions, Adam lr 1e-3, batch 16, patch 64, 400 steps):
the plain stack +1.45 dB (+0.65 with batch norm; at lr 3e-3 it diverges), the residual blocks +5.00 dB,
with the same parameters. Without BN the plain stack trained to an input-blind net in the 30-minute bench
(bench/results/restore.json at a744040: +0.26 dB over its input).
`depth` counts the 3x3 convolutions: the first, (depth - 2) // 2 residual blocks, one plain convolution
when depth is odd, the last. Default 96 features x 12, the paper's colour model size: 0.85M parameters
(64 features: 0.38M).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from training.archs.levels import UNKNOWN, check_levels


class ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)  # each block starts near its identity: one scale through the stack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class FFDNet(nn.Module):
    supported_scales = (1,)

    def __init__(
        self,
        scale: int = 1,
        channels: int = 3,
        features: int = 96,
        depth: int = 12,
        levels: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"ffdnet restores at scale 1, got {scale}")
        if depth < 2:
            raise ValueError(f"ffdnet needs depth >= 2 (first and last convolution), got {depth}")
        self.scale, self.levels = scale, check_levels(levels)
        self.down = nn.Conv2d(channels, channels * 4, kernel_size=2, stride=2)
        first = nn.Conv2d(channels * 4 + len(self.levels), features, 3, padding=1)
        layers: list[nn.Module] = [first, nn.ReLU(inplace=True)]
        layers += [ResidualBlock(features) for _ in range((depth - 2) // 2)]
        if depth % 2:
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels * 4, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(channels * 4, channels, kernel_size=2, stride=2)
        self._init_weights()

    def _init_weights(self) -> None:
        # He init keeps the signal alive through the ReLUs (PyTorch's default shrank it ~6x over 12 plain
        # layers, 40-50 % of the units dead); a near-zero last layer starts the restorer at the identity.
        # The residual blocks initialise their own convolutions.
        for module in (self.down, *self.body):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.up.weight, std=1e-3)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        # one replicated row and column always: even sides then drop it again, odd ones keep the last pixel
        half = self.down(F.pad(x, (0, 1, 0, 1), mode="replicate"))
        if self.levels:
            plane = torch.ones_like(half[:, :1])  # read from `half`, so a trace follows every input size
            if levels is None:
                maps = plane.expand(-1, len(self.levels), -1, -1) * UNKNOWN
            else:
                maps = plane * levels.to(half.dtype)[:, :, None, None]
            half = torch.cat([half, maps], dim=1)
        elif levels is not None:
            raise ValueError("this restorer was built without levels: call it with the image only")
        correction = self.up(self.body(half))
        return x + correction[..., :height, :width]
