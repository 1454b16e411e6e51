"""Apply one recorded grid member to a canvas: the pixel side of the quality grid.

In: a uint8 HxWx3 RGB image (a quality canvas) and a params dict as `grid_params` records it.
Out: a new uint8 HxWx3 image of the same size. `distort` is a pure function of (pixels, params):
params are validated first (`families.validate_params`: one pydantic model per family, extra="forbid",
strict types, ranges), so a bad key or value raises ValueError naming it before any pixel work; the
same input and params give the same bytes on every call, thread count and process (noise from
``np.random.Generator(PCG64(seed))``, integer or fixed-order float arithmetic, Pillow's libjpeg,
OpenCV filters that split rows, not sums, between threads). Bytes are pinned per environment: another
libjpeg or OpenCV build may differ by a level here and there, so record the library versions with the grid.

How each family works (strength names as in `pipeline.distort.families.STRENGTHS`):
- gaussian_blur: OpenCV GaussianBlur, kernel +-3 sigma. motion_blur: a line of `length` px at
  `angle_deg` (anti-aliased by splatting 4 samples a pixel). defocus_blur: a uniform disk of `radius`
  px with exact-ish edge coverage (8x8 supersampling). All filters reflect at the border.
- gaussian_noise: N(0, sigma) per channel on the 8-bit values, clipped. poisson_noise: shot noise in
  linear light, ``Poisson(x_linear * photons) / photons``, so `photons` is the photon count at white
  (numpy's exact sampler: ~12 ms a 384-px canvas, the slowest family; large blur kernels ~8-11 ms).
- jpeg: one Pillow round trip (4:2:0). double_jpeg: `first_quality`, then the result padded by
  (shift_y, shift_x) at the top-left (edge pixels) so the second pass's 8x8 grid is off the first's,
  compressed at `second_quality` and cropped back: the output is aligned with the input.
- fake_hr: Pillow BICUBIC down by `factor` (anti-aliased), then BICUBIC up to the input size.
- overexposure / underexposure: sRGB decode, times 2**(+-stops), clip, encode (a 256-entry table).
- contrast_loss: every value pulled toward the image's mean value (all channels): m + f * (x - m).
- colour_cast: a white-balance error, per-channel gains in linear light; the gains are the linear RGB
  of the CIELAB white point (100, strength*100 at `hue_deg`) scaled so the largest gain is 1.
- oversaturation: CIELAB a*, b* times `factor`. chroma_subsampling: Cr/Cb area-averaged down by
  `factor` and bilinearly up. posterization: each channel rounded to `levels` evenly spaced values.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image

from pipeline.distort.canvas import check_rgb
from pipeline.distort.families import (
    FAMILIES,
    PRISTINE,
    ColourCast,
    DoubleJpeg,
    GaussianNoise,
    PoissonNoise,
    validate_params,
)

# --- colour helpers: exact sRGB curves, tabulated so per-pixel work is a lookup -----------------------


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


_TO_LINEAR = _srgb_decode(np.arange(256) / 255.0)  # float64, one entry per 8-bit value
_XYZ_TO_LINEAR_RGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _lut(arr: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map every 8-bit value through `table` (256 values, or 256x3 for one table per channel)."""
    table8 = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    return cv2.LUT(arr, table8.reshape(256, 1, -1) if table8.ndim == 2 else table8)


def _lab_white_gains(chroma: float, hue_deg: float) -> np.ndarray:
    """Linear-RGB gains that turn white into the CIELAB colour (100, chroma at hue), max gain 1."""
    a, b = chroma * math.cos(math.radians(hue_deg)), chroma * math.sin(math.radians(hue_deg))
    fy = (100.0 + 16.0) / 116.0  # L* = 100: full lightness, scaled into gamut below
    f = np.array([fy + a / 500.0, fy, fy - b / 200.0])
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D65_WHITE
    rgb = np.clip(_XYZ_TO_LINEAR_RGB @ xyz, 1e-3, None)
    return rgb / rgb.max()


# --- the families ---------------------------------------------------------------------------------


def _jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "JPEG", quality=quality, subsampling=2, optimize=False)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def _double_jpeg(arr: np.ndarray, p: DoubleJpeg) -> np.ndarray:
    first = _jpeg(arr, p.first_quality)
    shifted = np.pad(first, ((p.shift_y, 0), (p.shift_x, 0), (0, 0)), mode="edge")
    return np.ascontiguousarray(_jpeg(shifted, p.second_quality)[p.shift_y :, p.shift_x :])


def _frozen(kernel: np.ndarray) -> np.ndarray:
    """float32 and read-only: cached kernels are shared between calls."""
    out = kernel.astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    half = math.ceil(length / 2)
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    t = np.linspace(-length / 2, length / 2, max(2, math.ceil(4 * length)))
    xs = half + t * math.cos(math.radians(angle_deg))
    ys = half - t * math.sin(math.radians(angle_deg))  # image rows grow downwards
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, weight in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(kernel, (np.clip(y0 + dy, 0, 2 * half), np.clip(x0 + dx, 0, 2 * half)), weight)
    # Crop the all-zero margin symmetrically (the centre stays the anchor): a near-horizontal line
    # becomes a 3-row kernel, which OpenCV filters directly instead of through a DFT.
    rows, cols = np.nonzero(kernel)
    keep_y = int(abs(rows - half).max())
    keep_x = int(abs(cols - half).max())
    kernel = kernel[half - keep_y : half + keep_y + 1, half - keep_x : half + keep_x + 1]
    return _frozen(kernel / kernel.sum())


@lru_cache(maxsize=64)
def _disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    half = math.ceil(radius)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-half, half + 1)
    ys = (grid[:, None, None, None] + offsets[None, None, :, None]) ** 2
    xs = (grid[None, :, None, None] + offsets[None, None, None, :]) ** 2
    coverage = ((ys + xs) <= radius**2).mean(axis=(2, 3))
    return _frozen(coverage / coverage.sum())


def _filter(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(arr, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def _resize_pillow(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((width, height), Image.Resampling.BICUBIC))


def _fake_hr(arr: np.ndarray, factor: float) -> np.ndarray:
    height, width = arr.shape[:2]
    small_w, small_h = max(1, int(width / factor + 0.5)), max(1, int(height / factor + 0.5))
    return np.array(_resize_pillow(_resize_pillow(arr, small_w, small_h), width, height))


def _gaussian_noise(arr: np.ndarray, p: GaussianNoise) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(p.seed))
    noisy = rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(p.sigma) + arr
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _poisson_noise(arr: np.ndarray, p: PoissonNoise) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(p.seed))
    counts = rng.poisson(_TO_LINEAR[arr] * p.photons)
    # Counts are integers: encode each possible count once (k / photons, clipped at white), then look up.
    cap = math.ceil(p.photons)
    by_count = np.rint(_srgb_encode(np.arange(cap + 1) / p.photons) * 255.0).astype(np.uint8)
    return by_count[np.minimum(counts, cap)]


def _chroma_subsampling(arr: np.ndarray, factor: int) -> np.ndarray:
    height, width = arr.shape[:2]
    ycrcb = cv2.cvtColor(arr, cv2.COLOR_RGB2YCrCb)
    small = (max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor)))
    chroma = cv2.resize(ycrcb[:, :, 1:], small, interpolation=cv2.INTER_AREA)
    ycrcb[:, :, 1:] = cv2.resize(chroma, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def _oversaturate(arr: np.ndarray, factor: float) -> np.ndarray:
    lab = cv2.cvtColor(arr.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2Lab)
    lab[:, :, 1:] *= np.float32(factor)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * np.float32(255.0)), 0, 255).astype(np.uint8)


def _exposure(stops: float) -> np.ndarray:
    return _srgb_encode(_TO_LINEAR * 2.0**stops) * 255.0


def _contrast_loss(arr: np.ndarray, factor: float) -> np.ndarray:
    mean = float(arr.mean(dtype=np.float64))
    return _lut(arr, mean + factor * (np.arange(256) - mean))


def _posterize(levels: int) -> np.ndarray:
    step = 255.0 / (levels - 1)
    return np.rint(np.arange(256) / step) * step


def _colour_cast(p: ColourCast) -> np.ndarray:
    gains = _lab_white_gains(100.0 * p.strength, p.hue_deg)
    return _srgb_encode(_TO_LINEAR[:, None] * gains[None, :]) * 255.0


def _gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(arr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


_FAMILY_OPS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    PRISTINE: lambda a, p: a.copy(),
    "gaussian_blur": lambda a, p: _gaussian_blur(a, p.sigma),
    "motion_blur": lambda a, p: _filter(a, _motion_kernel(p.length, p.angle_deg)),
    "defocus_blur": lambda a, p: _filter(a, _disk_kernel(p.radius)),
    "gaussian_noise": _gaussian_noise,
    "poisson_noise": _poisson_noise,
    "jpeg": lambda a, p: _jpeg(a, p.quality),
    "double_jpeg": _double_jpeg,
    "fake_hr": lambda a, p: _fake_hr(a, p.factor),
    "overexposure": lambda a, p: _lut(a, _exposure(p.stops)),
    "underexposure": lambda a, p: _lut(a, _exposure(-p.stops)),
    "contrast_loss": lambda a, p: _contrast_loss(a, p.factor),
    "colour_cast": lambda a, p: _lut(a, _colour_cast(p)),
    "oversaturation": lambda a, p: _oversaturate(a, p.factor),
    "chroma_subsampling": lambda a, p: _chroma_subsampling(a, p.factor),
    "posterization": lambda a, p: _lut(a, _posterize(p.levels)),
}
assert set(_FAMILY_OPS) == {PRISTINE, *FAMILIES}, "every family needs an op"


def distort(rgb: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The image distorted as `params` say: uint8 HxWx3 in, a new uint8 HxWx3 of the same size out."""
    parsed = validate_params(params)
    arr = np.ascontiguousarray(check_rgb(rgb, "distort"))
    out = _FAMILY_OPS[parsed.family](arr, parsed)  # type: ignore[attr-defined]
    if out.shape != arr.shape or out.dtype != np.uint8:  # a broken op must not write a wrong sample
        raise AssertionError(f"{parsed.family} returned {out.dtype} {out.shape} for {arr.shape}")
    return out
