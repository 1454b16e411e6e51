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
used where a bicubic skip connection feeds a learned arch. Its taps come from numpy for the given sizes,
except on an axis upscaled by an exact integer factor s (the skip-connection case), which runs
`bicubic_upscale`: pure torch ops whose shapes all come from the input tensor, so `torch.jit.trace`
of a model using it works at every input size. For an integer upscale Pillow's weights depend only on
the output phase (o mod s) away from the borders; at the borders Pillow drops the taps outside the
image and renormalises the rest. Per phase, one fixed 5-tap filter (read off `pillow_bicubic_taps` of a
small reference size) applied to the zero-padded input, divided by the same filter applied to a
zero-padded mask of ones, gives exactly that; the s phases are then interleaved. It matches the numpy
taps to float rounding (about 1e-7 in float32; tests/training/archs/test_bicubic.py).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
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


# Integer upscales: a tap of output phase p sits at most 2 input pixels from the output's input pixel i.
_PHASE_RADIUS = 2
_REFERENCE_SIZE = 2 * _PHASE_RADIUS + 5  # interior pixel _REFERENCE_SIZE // 2 has its full window


@lru_cache(maxsize=16)
def phase_filters(scale: int) -> np.ndarray:
    """Pillow's interior bicubic weights for an integer upscale: scale x 5, taps at offsets -2..2.

    Row p holds the weights of output pixel s*i + p on input pixels i-2..i+2, read off
    `pillow_bicubic_taps` for an interior pixel of a small reference size, so they are Pillow's own.
    """
    if scale < 1:
        raise ValueError(f"upscale factor must be >= 1, got {scale}")
    centre = _REFERENCE_SIZE // 2
    index, weights = pillow_bicubic_taps(_REFERENCE_SIZE, _REFERENCE_SIZE * scale)
    filters = np.zeros((scale, 2 * _PHASE_RADIUS + 1))
    for phase in range(scale):
        row = centre * scale + phase
        for tap, weight in zip(index[row], weights[row], strict=True):
            if weight != 0.0:
                filters[phase, tap - centre + _PHASE_RADIUS] += weight
    return filters


def _upscale_axis(x: torch.Tensor, dim: int, scale: int) -> torch.Tensor:
    """Upscale dim 2 (rows) or 3 (columns) of N x C x H x W by `scale`, Pillow's weights, any size."""
    filters = torch.from_numpy(phase_filters(scale)).to(device=x.device, dtype=x.dtype)
    taps = 2 * _PHASE_RADIUS + 1
    if dim == 3:
        kernel, padding = filters.reshape(scale, 1, 1, taps), (0, _PHASE_RADIUS)
        mask = torch.ones_like(x[:1, :1, :1, :])  # 1 x 1 x 1 x W
    else:
        kernel, padding = filters.reshape(scale, 1, taps, 1), (_PHASE_RADIUS, 0)
        mask = torch.ones_like(x[:1, :1, :, :1])  # 1 x 1 x H x 1
    # conv2d zero-pads: the numerator sums the taps inside the image, the denominator their weights,
    # so out = num / den is Pillow's clip-and-renormalise at the borders and the plain filter inside.
    num = F.conv2d(x.reshape(-1, 1, x.shape[2], x.shape[3]), kernel, padding=padding)
    den = F.conv2d(mask, kernel, padding=padding)
    phases = num / den  # (N*C) x s x H x W
    if dim == 3:  # out[..., w*s + p] = phases[:, p, :, w]
        interleaved = phases.permute(0, 2, 3, 1)
    else:  # out[..., h*s + p, :] = phases[:, p, h, :]
        interleaved = phases.permute(0, 2, 1, 3)
    out_h = x.shape[2] * scale if dim == 2 else x.shape[2]
    out_w = x.shape[3] * scale if dim == 3 else x.shape[3]
    return interleaved.reshape(x.shape[0], x.shape[1], out_h, out_w)


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Float, differentiable Pillow bicubic upscale of N x C x H x W by an integer `scale`, any size.

    Equals `bicubic_resize(x, (H*scale, W*scale))` (to float rounding) with pure torch ops whose shapes
    come from `x`, so a traced model stays valid at every input size. Horizontal pass first, like Pillow.
    """
    if x.dim() != 4:
        raise ValueError(f"bicubic_upscale expects N x C x H x W, got shape {tuple(x.shape)}")
    # Under mixed precision autocast would run the convolutions in bf16/fp16 (errors of a few gray
    # levels): the skip keeps x's own precision, as the numpy-tap path does.
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _upscale_axis(_upscale_axis(x, 3, scale), 2, scale)


def _float_axis(x: torch.Tensor, dim: int, out_size: int) -> torch.Tensor:
    in_size = int(x.shape[dim])
    if out_size % in_size == 0 and out_size > in_size:  # an integer upscale: the size-generic path
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _upscale_axis(x, dim, out_size // in_size)
    return _resample_axis(x, dim, out_size, False)


def bicubic_resize(x: torch.Tensor, size: tuple[int, int], quantize: bool = False) -> torch.Tensor:
    """Resize N x C x H x W to `size` = (height, width) with Pillow's bicubic kernel.

    quantize=False: float and differentiable (no 8-bit rounding anywhere); an axis upscaled by an
    integer factor runs the size-generic `bicubic_upscale` path, any other the numpy taps.
    quantize=True: x is taken as [0, 1] intensities, quantized to 8 bits, and resized with Pillow's
    exact 8-bit arithmetic; the result is k/255 for integer k, identical to Pillow's output.
    """
    if x.dim() != 4:
        raise ValueError(f"bicubic_resize expects N x C x H x W, got shape {tuple(x.shape)}")
    out_h, out_w = size
    if not quantize:
        return _float_axis(_float_axis(x, 3, int(out_w)), 2, int(out_h))
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
