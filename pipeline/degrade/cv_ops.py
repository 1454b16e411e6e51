"""Apply the pixel operations of version 2 of the real-world recipes with OpenCV: blur, resize and noise.

In: float32 HxWxC images in [0, 1], a 2-D kernel (`kernels.build_kernel`), a target size and resize mode,
or recorded noise params (`ops.NoiseParams`). Out: float32 images. Version 1 (`ops`, `kernels.filter2d`)
stays as it was, so pairs recorded with it regenerate bit for bit; version 2 makes the same degradations
about 3.5x as fast per tile (38-43 vs 11-12 ms for a 480-px HR tile of realworld_x4 on one core; the
job's rates are in bench/results/pairs.json), with these differences, all deliberate:

- `filter2d`: the kernel's outer rows/columns are dropped while they hold at most half of
  `KERNEL_L1_TOLERANCE` (summed absolute taps), then its smallest SVD rank within the rest of the
  tolerance runs as separable passes when that is cheaper than the direct 2-D correlation (iso Gaussians
  are rank 1); the output differs from the exact correlation by at most that tolerance of full scale
  (0.26 of an 8-bit level). Reflect-101 borders, as BasicSR's `filter2D`.
- `resize`: `cv2.resize`. Bilinear and bicubic (A = -0.75) agree with PyTorch's `F.interpolate` to float
  rounding (< 1e-6); "area" is `INTER_AREA` (fractional pixel coverage) when shrinking and nearest when
  growing, as PyTorch's adaptive pooling is; PyTorch pools over whole pixels, so a non-integer shrink
  differs slightly.
- `add_noise`: OpenCV's generator (`cv2.randn` on a thread-local RNG seeded from the recorded seed).
  Poisson noise is drawn as its normal approximation, ``sqrt(x / v) * N(0, 1)`` at the same v (levels):
  mean and variance are exact, the skew of the darkest levels (x * v < 10, x < 0.04) is not reproduced.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.degrade.ops import GaussianNoise, PoissonNoise, to_uint8

KERNEL_L1_TOLERANCE = 1e-3
_SEPARABLE_COST = 1.4  # one separable tap costs about 1.4 direct taps (cv2, float32, measured)
_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], dtype=np.float32)
_SHRINK = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_GROW = {**_SHRINK, "area": cv2.INTER_NEAREST}


def trim_kernel(kernel: np.ndarray, budget: float) -> tuple[np.ndarray, float]:
    """The centred kernel left after dropping outer row pairs or column pairs (cheapest first) while the
    dropped taps sum, in absolute value, to at most `budget`; and that sum. Gaussian tails of a 21-tap
    kernel with a small sigma carry almost nothing, so most kernels shrink to a fraction of their taps."""
    kernel = np.asarray(kernel, dtype=np.float64)
    spent = 0.0
    while True:
        costs = {}
        if kernel.shape[0] > 1:
            costs[0] = float(np.abs(kernel[0]).sum() + np.abs(kernel[-1]).sum())
        if kernel.shape[1] > 1:
            costs[1] = float(np.abs(kernel[:, 0]).sum() + np.abs(kernel[:, -1]).sum())
        if not costs:
            return kernel, spent
        axis = min(costs, key=costs.get)
        if spent + costs[axis] > budget:
            return kernel, spent
        spent += costs[axis]
        kernel = kernel[1:-1] if axis == 0 else kernel[:, 1:-1]


def separable_terms(
    kernel: np.ndarray, tolerance: float = KERNEL_L1_TOLERANCE
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(column, row) float32 pairs whose outer products sum to `kernel` within `tolerance` (summed absolute
    error), or None when the direct 2-D correlation is cheaper."""
    kernel = np.asarray(kernel, dtype=np.float64)
    u, s, vt = np.linalg.svd(kernel)
    height, width = kernel.shape
    for rank in range(1, len(s) + 1):
        approx = (u[:, :rank] * s[:rank]) @ vt[:rank]
        if np.abs(approx - kernel).sum() <= tolerance:
            break
    if rank * (height + width) * _SEPARABLE_COST >= height * width:
        return None
    return [((u[:, i] * s[i]).astype(np.float32), vt[i].astype(np.float32)) for i in range(rank)]


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an HxWxC float32 image with a 2-D kernel (odd sides, centred), reflect-101 borders; half
    the tolerance may go to trimming the kernel's tails, the rest to its separable approximation."""
    trimmed, spent = trim_kernel(kernel, KERNEL_L1_TOLERANCE / 2)
    terms = separable_terms(trimmed, KERNEL_L1_TOLERANCE - spent)
    if terms is None:
        return cv2.filter2D(img, -1, trimmed.astype(np.float32), borderType=cv2.BORDER_REFLECT_101).reshape(
            img.shape
        )
    out = None
    for column, row in terms:
        part = cv2.sepFilter2D(img, -1, row, column, borderType=cv2.BORDER_REFLECT_101)
        out = part if out is None else cv2.add(out, part)
    return out.reshape(img.shape)


def resize(img: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Resize an HxWxC float32 image to (height, width); see the module docstring for the semantics."""
    if height < 1 or width < 1:
        raise ValueError(f"resize target must be at least 1x1, got {height}x{width}")
    if mode not in _SHRINK:
        raise ValueError(f"resize mode must be one of {tuple(_SHRINK)}, got {mode!r}")
    if img.shape[:2] == (height, width):
        return img.copy()
    table = _GROW if height * width > img.shape[0] * img.shape[1] else _SHRINK
    out = cv2.resize(img, (width, height), interpolation=table[mode])
    return out.reshape(height, width, img.shape[2])


def _standard_normal(shape: tuple[int, ...], seed: int) -> np.ndarray:
    cv2.setRNGSeed(seed % (2**31 - 1))  # the calling thread's RNG only
    out = np.empty(
        (int(np.prod(shape)), 1), dtype=np.float32
    )  # one channel: a Scalar std covers only the first
    cv2.randn(out, 0.0, 1.0)
    return out.reshape(shape)


def add_noise(img: np.ndarray, noise: GaussianNoise | PoissonNoise) -> np.ndarray:
    """Add the recorded noise to an HxWxC float32 image and clip to [0, 1]."""
    shape = (*img.shape[:2], 1) if noise.gray else img.shape
    added = _standard_normal(shape, noise.seed)
    if isinstance(noise, GaussianNoise):
        added *= np.float32(noise.sigma / 255.0)
    else:
        base = (img @ _GRAY_WEIGHTS)[:, :, None] if noise.gray else img
        levels = to_uint8(base)
        distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
        vals = np.float32(2.0 ** math.ceil(math.log2(distinct)))
        added *= np.sqrt(levels.astype(np.float32) * np.float32(1.0 / 255.0) / vals) * np.float32(noise.scale)
    if added.shape != img.shape:  # gray noise: one channel, the same on each
        return np.clip(img + added, 0.0, 1.0)
    added += img  # in place: the same sums as img + added, one image fewer to allocate
    return np.clip(added, 0.0, 1.0, out=added)
