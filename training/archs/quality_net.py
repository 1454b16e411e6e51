"""QualityNet: the network of the learned no-reference quality model (issue #13), and its arch registry.

In: a float tensor N x 3 x H x W, RGB in [0, 1], any H, W >= 32 (the quality canvas of
pipeline/distort/canvas.py: 384 px long side, short side >= 32). Out: N scores in (0, 5), higher is
better: `5 * sigmoid(head)`, the ONNX contract of pipeline/quality/model_file.py (input `image`,
output `score` of shape N).

Layout (defaults width=32, depth=4: 527,713 parameters, 147M multiply-adds at 384 x 384):
- stem: a `patch` x `patch` (4) stride-`patch` conv to `width` channels, a learned linear map of every
  4 x 4 pixel patch (ConvNeXt's patchify stem). Blur, noise, ringing and JPEG blocks all show within or
  between such patches, and at 1/4 resolution the rest of the net is cheap on a CPU;
- `depth - 1` stages, each halving the resolution and doubling the width: a depthwise 3x3 stride-2
  conv plus a pointwise conv, then one inverted-residual block (pointwise expand x`expand`,
  depthwise 3x3, pointwise project, identity skip);
- the stem and every stage output are pooled twice, global mean AND global standard deviation
  (population std over the positions: a noisy or blocky canvas has busier feature maps at the same
  mean), and the 2 * (width + 2 width + ...) numbers go through a small MLP to one logit. Pooling every
  scale, not only the last, lets fine-scale evidence (noise, blocks) reach the head directly.

BatchNorm after every conv (ONNX Runtime folds it at inference), ReLU activations, no data-dependent
Python control flow: `torch.onnx.export(..., dynamo=False)` with dynamic H/W gives one graph for every
size. A 384 x 384 canvas on one CPU thread: about 6 ms in torch, 2.5 ms in ONNX Runtime (measured on
the 2-core dev box; tests/training/archs/test_quality_net.py only asserts a loose bound).

`QUALITY_ARCHS` maps config names to classes; `build_quality_arch(name, **options)` raises ValueError
naming the known archs, or the accepted options of the named one.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

STD_EPS = 1e-6  # inside the square root of the pooled variance: finite gradients on a flat map


def conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) + BatchNorm (+ ReLU), 'same' padding for odd kernels."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block at constant resolution and width: expand, depthwise 3x3, project, add."""

    def __init__(self, channels: int, expand: int = 2) -> None:
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            conv_bn(channels, hidden, 1),
            conv_bn(hidden, hidden, 3, groups=hidden),
            conv_bn(hidden, channels, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Stage(nn.Module):
    """Halve the resolution (depthwise 3x3 stride 2, pointwise to `out_channels`), then one residual block."""

    def __init__(self, in_channels: int, out_channels: int, expand: int = 2) -> None:
        super().__init__()
        self.down = nn.Sequential(
            conv_bn(in_channels, in_channels, 3, stride=2, groups=in_channels),
            conv_bn(in_channels, out_channels, 1),
        )
        self.block = InvertedResidual(out_channels, expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.down(x))


def mean_std_pool(features: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x 2C: spatial mean, then spatial population std (defined on a 1 x 1 map too)."""
    mean = features.mean(dim=(2, 3))
    variance = (features - mean[:, :, None, None]).pow(2).mean(dim=(2, 3))
    return torch.cat([mean, torch.sqrt(variance + STD_EPS)], dim=1)


class QualityNet(nn.Module):
    """RGB N x 3 x H x W in [0, 1] -> N quality scores in (0, 5)."""

    def __init__(
        self, width: int = 32, depth: int = 4, head_width: int = 128, expand: int = 2, patch: int = 4
    ) -> None:
        super().__init__()
        for name, value in (("width", width), ("depth", depth), ("head_width", head_width),
                            ("expand", expand), ("patch", patch)):  # fmt: skip
            if value < 1:
                raise ValueError(f"quality_net {name} must be >= 1, got {value}")
        widths = [width * 2**i for i in range(depth)]  # the stem's, then one per stride-2 stage
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, patch, stride=patch, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.stages = nn.ModuleList(Stage(widths[i], widths[i + 1], expand) for i in range(depth - 1))
        self.head = nn.Sequential(
            nn.Linear(2 * sum(widths), head_width), nn.ReLU(inplace=True), nn.Linear(head_width, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.stem(image)
        pooled = [mean_std_pool(features)]
        for stage in self.stages:
            features = stage(features)
            pooled.append(mean_std_pool(features))
        logit = self.head(torch.cat(pooled, dim=1)).squeeze(1)
        return 5.0 * torch.sigmoid(logit)


QUALITY_ARCHS: dict[str, type[nn.Module]] = {"quality_net": QualityNet}


def check_quality_arch(name: str, options: dict[str, object] | None = None) -> None:
    """Raise ValueError unless `name` is a known quality arch that accepts every option."""
    if name not in QUALITY_ARCHS:
        raise ValueError(f"unknown quality arch {name!r}; known quality archs: {sorted(QUALITY_ARCHS)}")
    accepted = set(inspect.signature(QUALITY_ARCHS[name].__init__).parameters) - {"self"}
    unknown = set(options or {}) - accepted
    if unknown:
        raise ValueError(
            f"quality arch {name!r} has no option(s) {sorted(unknown)}; its options are {sorted(accepted)}"
        )


def build_quality_arch(name: str, **options: object) -> nn.Module:
    """Instantiate quality arch `name` with `options`; ValueError on an unknown name or option."""
    check_quality_arch(name, options)
    return QUALITY_ARCHS[name](**options)
