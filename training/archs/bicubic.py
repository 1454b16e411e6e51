"""Bicubic upsampling baseline: Pillow's BICUBIC resize, reimplemented in torch.

In: a float tensor N x 3 x h x w in [0, 1]. Out: N x 3 x (h*s) x (w*s) in [0, 1].

`BicubicUpsampler` is the parameter-free evaluation baseline of the super-resolution tables: it is not
trainable. Its forward reproduces Pillow's `Image.resize(..., Image.BICUBIC)` bit for bit on 8-bit
images (so the published bicubic Y-PSNR rows come out of the same evaluation code as every learned
arch): the input is quantized to 8-bit levels as if read from a file, then Pillow's two separable
passes run with its exact arithmetic -- the same Keys kernel (a = -0.5), the same window clipping and
renormalisation at the borders, coefficients in 22-bit fixed point, horizontal pass first, and each
pass rounded and clipped to 0..255. All of it is integer-exact in float64, batched, on any device.

`bicubic_resize(x, size, quantize=False)` is the differentiable float variant (no 8-bit rounding),
used where a bicubic skip connection feeds a learned arch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# Pillow's Resample.c: the Keys cubic with a = -0.5 and support 2; 8-bit passes use 32 - 8 - 2 bits.
_KEYS_A = -0.5
_KERNEL_SUPPORT = 2.0
_PRECISION_BITS = 22


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    near = ((_KEYS_A + 2.0) * x - (_KEYS_A + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * _KEYS_A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def pillow_bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's per-output-pixel source indices and normalised weights for one axis.

    Returns (index, weight), both out_size x ksize; unused taps have weight 0 and a valid index.
    Follows `precompute_coeffs` in Pillow's Resample.c, operation for operation, so the float weights
    are identical and their fixed-point rounding matches too.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resize sizes must be positive, got in={in_size} out={out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # reducing widens the kernel: that is Pillow's antialiasing
    support = _KERNEL_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    centers = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(centers - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size) - xmin
    offsets = np.arange(ksize)
    taps = xmin[:, None] + offsets[None, :]
    inv_scale = 1.0 / filterscale
    weights = _keys_cubic((taps.astype(np.float64) - centers[:, None] + 0.5) * inv_scale)
    weights = np.where(offsets[None, :] < xmax[:, None], weights, 0.0)
    total = np.zeros(out_size)
    for k in range(ksize):  # sequential sum, as the C loop does
        total += weights[:, k]
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    return np.clip(taps, 0, in_size - 1), weights


def _fixed_point(weights: np.ndarray) -> np.ndarray:
    # C's (int)(w * 2^22 +- 0.5) truncates toward zero: round half away from zero.
    scaled = weights * (1 << _PRECISION_BITS)
    return np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5))


def _resample_axis(x: torch.Tensor, dim: int, out_size: int, quantize: bool) -> torch.Tensor:
    index, weights = pillow_bicubic_taps(int(x.shape[dim]), int(out_size))
    if quantize:
        weights = _fixed_point(weights)
    index_t = torch.from_numpy(index).to(x.device)
    weights_t = torch.from_numpy(weights).to(device=x.device, dtype=x.dtype)
    shape = [1] * x.dim()
    shape[dim] = out_size
    out = None
    for k in range(index.shape[1]):  # a few taps: memory stays at one output-sized tensor
        term = x.index_select(dim, index_t[:, k]) * weights_t[:, k].reshape(shape)
        out = term if out is None else out + term
    if quantize:
        # Pillow adds half a unit and shifts right (floor division), then clips to 8 bits.
        half = float(1 << (_PRECISION_BITS - 1))
        out = torch.floor((out + half) / float(1 << _PRECISION_BITS)).clamp_(0.0, 255.0)
    return out


def bicubic_resize(x: torch.Tensor, size: tuple[int, int], quantize: bool = False) -> torch.Tensor:
    """Resize N x C x H x W to `size` = (height, width) with Pillow's bicubic kernel.

    quantize=False: float and differentiable (no 8-bit rounding anywhere).
    quantize=True: x is taken as [0, 1] intensities, quantized to 8 bits, and resized with Pillow's
    exact 8-bit arithmetic; the result is k/255 for integer k, identical to Pillow's output.
    """
    if x.dim() != 4:
        raise ValueError(f"bicubic_resize expects N x C x H x W, got shape {tuple(x.shape)}")
    out_h, out_w = size
    if not quantize:
        return _resample_axis(_resample_axis(x, 3, out_w, False), 2, out_h, False)
    levels = torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0)
    levels = _resample_axis(levels, 3, out_w, True)  # horizontal first, like Pillow
    levels = _resample_axis(levels, 2, out_h, True)
    return (levels / 255.0).to(x.dtype)


class BicubicUpsampler(nn.Module):
    """Parameter-free evaluation baseline: Pillow-exact bicubic upscaling by `scale`.

    Not trainable (it has no parameters and its output carries no gradient); it exists so that the
    bicubic row of the benchmark tables is produced by the same evaluation code as the learned archs.
    """

    supported_scales = (2, 3, 4)

    def __init__(self, scale: int) -> None:
        super().__init__()
        if scale not in self.supported_scales:
            raise ValueError(f"bicubic supports scales {self.supported_scales}, got {scale}")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return bicubic_resize(x, (height * self.scale, width * self.scale), quantize=True)
