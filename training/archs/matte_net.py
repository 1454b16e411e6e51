"""MatteNet: the background-removal network (issue #14), a small U-Net, and its arch registry.

In: a float tensor N x 3 x H x W, RGB in [0, 1], any H, W >= 16. Out: `forward`: N x 1 x H x W alpha in
[0, 1] (what is exported and served); `logits`: the same before the sigmoid (what the loss takes).

Layout (defaults width=16, depth=5, max_width=128: 1,229,138 parameters; about 64 ms at 320 x 320 on one
CPU thread in torch, measured on the 2-core dev box):
- a stride-2 3x3 stem, so the encoder starts at half resolution (the full-resolution work of a U-Net is
  most of its cost on a CPU, and a matte's detail comes back through the refinement below);
- `depth` encoder stages of two conv-BN-ReLU 3x3 blocks, each after the first halving the resolution
  and doubling the width up to `max_width`: at depth 5 the deepest sees 1/32 of the input, enough context
  to tell a product from a cluttered scene;
- a decoder that upsamples bilinearly to the skip's size (any input size, no padding rules), concatenates
  the skip and applies two conv blocks, up to half resolution, then a 3x3 conv to one logit;
- a refinement at full resolution: the upsampled logit and the image through two 3x3 convs (`refine`
  channels), added to the logit, so edges follow the image's own edges.

No data-dependent control flow: `torch.onnx.export(..., dynamo=False)` with dynamic H/W gives one graph.
`MATTE_ARCHS` maps config names to classes; `build_matte_arch(name, **options)` raises ValueError naming the
known archs, or the accepted options of the named one.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from training.archs.quality_net import conv_bn


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn(in_channels, out_channels, 3, stride), conv_bn(out_channels, out_channels, 3)
    )


class MatteNet(nn.Module):
    def __init__(self, width: int = 16, depth: int = 5, max_width: int = 128, refine: int = 8) -> None:
        super().__init__()
        if depth < 2 or width < 4:
            raise ValueError(f"MatteNet needs depth >= 2 and width >= 4, got depth={depth}, width={width}")
        chans = [min(width * 2**i, max_width) for i in range(depth)]
        self.stem = conv_bn(3, chans[0], 3, stride=2)
        self.encoder = nn.ModuleList(
            [_stage(chans[0], chans[0], 1)] + [_stage(chans[i - 1], chans[i], 2) for i in range(1, depth)]
        )
        self.decoder = nn.ModuleList([_stage(chans[i + 1] + chans[i], chans[i], 1) for i in range(depth - 1)])
        self.head = nn.Conv2d(chans[0], 1, 3, padding=1)
        self.refine = nn.Sequential(
            nn.Conv2d(4, refine, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(refine, 1, 3, padding=1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """N x 1 x H x W alpha in [0, 1]: what validation scores, export traces and serving runs."""
        return torch.sigmoid(self.logits(image))

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid alpha: the training loss takes BCE with logits, stable where alpha is 0 or 1."""
        skips = []
        h = self.stem(image)
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        for i in reversed(range(len(self.decoder))):
            h = F.interpolate(h, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            h = self.decoder[i](torch.cat([h, skips[i]], dim=1))
        coarse = F.interpolate(self.head(h), size=image.shape[-2:], mode="bilinear", align_corners=False)
        return coarse + self.refine(torch.cat([image, coarse], dim=1))


MATTE_ARCHS: dict[str, type[nn.Module]] = {"matte_net": MatteNet}


def check_matte_arch(name: str, options: dict[str, object] | None = None) -> None:
    if name not in MATTE_ARCHS:
        raise ValueError(f"unknown matte arch {name!r}; known: {sorted(MATTE_ARCHS)}")
    accepted = set(inspect.signature(MATTE_ARCHS[name].__init__).parameters) - {"self"}
    unknown = set(options or {}) - accepted
    if unknown:
        raise ValueError(
            f"matte arch {name!r} has no option(s) {sorted(unknown)}; its options are {sorted(accepted)}"
        )


def build_matte_arch(name: str, **options: object) -> nn.Module:
    check_matte_arch(name, options)
    return MATTE_ARCHS[name](**options)
