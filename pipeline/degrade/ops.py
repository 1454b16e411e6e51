"""Apply the pixel operations of the degradation recipes: resize, noise and JPEG, on float32 images.

In: float32 HxWxC images in [0, 1] (`to_float` / `to_uint8` convert from and to uint8) and recorded
params (noise kind, strength, gray flag and integer seed; JPEG quality; resize mode and size).
Out: float32 images. Every function is pure: noise comes from a generator seeded by the recorded seed.

- `resize` reproduces PyTorch's `F.interpolate` (align_corners=False, no antialias) that Real-ESRGAN
  uses, so down-scaling aliases as it does there: "area" is adaptive average pooling, "bilinear" and
  "bicubic" (A = -0.75) sample at ``(i + 0.5) * in / out - 0.5`` with border replication. It runs as
  two sparse matrix products (rows, then columns). OpenCV is not used anywhere.
- `add_noise` follows BasicSR's `random_add_gaussian_noise_pt` / `random_add_poisson_noise_pt`:
  Gaussian ``N(0, sigma/255)`` per channel or one gray plane for all channels; Poisson
  ``(Poisson(x * v) / v - x) * scale`` with v the next power of two of the number of distinct 8-bit
  levels, computed on the image or on its gray version (0.2989 R + 0.587 G + 0.114 B); result clipped.
- `jpeg` is a real JPEG round trip through Pillow (4:2:0 chroma, integer quality), deterministic.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import sparse

from pipeline.degrade.recipe import check_range

ResizeMode = Literal["area", "bilinear", "bicubic"]
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
_CUBIC_A = -0.75  # PyTorch's bicubic coefficient
_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], dtype=np.float32)
NOISE_SEED_LIMIT = 2**53  # seeds stay exact in JSON readers that use doubles


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / np.float32(255.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round half to even and clip, as Real-ESRGAN's final ``clamp(round(x * 255))``."""
    return np.clip(np.rint(img * np.float32(255.0)), 0, 255).astype(np.uint8)


def _cubic(distance: np.ndarray) -> np.ndarray:
    d = np.abs(distance)
    near = ((_CUBIC_A + 2.0) * d - (_CUBIC_A + 3.0)) * d * d + 1.0
    far = ((_CUBIC_A * d - 5.0 * _CUBIC_A) * d + 8.0 * _CUBIC_A) * d - 4.0 * _CUBIC_A
    return np.where(d <= 1.0, near, np.where(d < 2.0, far, 0.0))


def _axis_weights(n_in: int, n_out: int, mode: str) -> sparse.csr_matrix:
    """Sparse (n_out, n_in) matrix mapping one axis of the input to the output."""
    rows = np.arange(n_out)
    if mode == "area":
        start = (rows * n_in) // n_out
        end = -((-(rows + 1) * n_in) // n_out)
        counts = end - start
        row_idx = np.repeat(rows, counts)
        col_idx = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        data = np.repeat(1.0 / counts, counts)
    elif mode in ("bilinear", "bicubic"):
        src = (rows + 0.5) * (n_in / n_out) - 0.5
        if mode == "bilinear":
            src = np.maximum(src, 0.0)
            offsets = np.arange(0, 2)
        else:
            offsets = np.arange(-1, 3)
        base = np.floor(src)
        taps = base[:, None] + offsets[None, :]
        if mode == "bilinear":
            frac = (src - base)[:, None]
            weights = np.where(offsets[None, :] == 0, 1.0 - frac, frac)
        else:
            weights = _cubic(src[:, None] - taps)
        row_idx = np.repeat(rows, len(offsets))
        col_idx = np.clip(taps, 0, n_in - 1).astype(np.int64).ravel()  # border replication
        data = weights.ravel()
    else:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    # duplicate (row, col) entries from clamped taps are summed, which is what replication means
    return sparse.csr_matrix((data.astype(np.float32), (row_idx, col_idx)), shape=(n_out, n_in))


def resize(img: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Resize an HxWxC float32 image to (height, width) with PyTorch interpolate semantics."""
    if height < 1 or width < 1:
        raise ValueError(f"resize target must be at least 1x1, got {height}x{width}")
    h_in, w_in, channels = img.shape
    if (h_in, w_in) == (height, width):
        return img.copy()  # all three modes are the identity at equal size
    rows = _axis_weights(h_in, height, mode) @ img.reshape(h_in, w_in * channels)
    rows = rows.reshape(height, w_in, channels).transpose(1, 0, 2).reshape(w_in, height * channels)
    out = _axis_weights(w_in, width, mode) @ rows
    return np.ascontiguousarray(out.reshape(width, height, channels).transpose(1, 0, 2), dtype=np.float32)


class NoiseConfig(BaseModel):
    """Ranges of one noise stage. Defaults: Real-ESRGAN's first stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gaussian_prob: float = 0.5  # else Poisson
    sigma_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma, 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    @model_validator(mode="after")
    def _valid(self) -> NoiseConfig:
        for name, (low, high), ceil in (
            ("gaussian_prob", (self.gaussian_prob,) * 2, 1.0),
            ("gray_prob", (self.gray_prob,) * 2, 1.0),
            ("sigma_range", self.sigma_range, 255.0),
            ("poisson_scale_range", self.poisson_scale_range, 50.0),
        ):
            if not 0.0 <= low <= high <= ceil:
                raise ValueError(f"{name}={low, high} must satisfy 0 <= low <= high <= {ceil}")
        return self


class GaussianNoise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["gaussian"]
    sigma: float
    gray: bool
    seed: int = Field(ge=0, lt=NOISE_SEED_LIMIT)


class PoissonNoise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["poisson"]
    scale: float
    gray: bool
    seed: int = Field(ge=0, lt=NOISE_SEED_LIMIT)


NoiseParams = Annotated[GaussianNoise | PoissonNoise, Field(discriminator="kind")]


def sample_noise(rng: np.random.Generator, config: NoiseConfig) -> dict[str, Any]:
    """Draw kind, strength, gray flag and the pixel-noise seed (Real-ESRGAN's order of draws)."""
    if rng.random() < config.gaussian_prob:
        params: dict[str, Any] = {"kind": "gaussian", "sigma": float(rng.uniform(*config.sigma_range))}
    else:
        params = {"kind": "poisson", "scale": float(rng.uniform(*config.poisson_scale_range))}
    params["gray"] = bool(rng.random() < config.gray_prob)
    params["seed"] = int(rng.integers(0, NOISE_SEED_LIMIT))
    return params


def check_noise(
    noise: GaussianNoise | PoissonNoise, config: NoiseConfig, what: str, recipe_name: str
) -> None:
    if isinstance(noise, GaussianNoise):
        check_range(noise.sigma, config.sigma_range, f"{what}.sigma", recipe_name)
    else:
        check_range(noise.scale, config.poisson_scale_range, f"{what}.scale", recipe_name)


def _poisson_noise(plane: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    levels = to_uint8(plane)
    distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
    vals = np.float32(2.0 ** math.ceil(math.log2(distinct)))
    quantized = levels.astype(np.float32) / np.float32(255.0)
    return rng.poisson(quantized * vals).astype(np.float32) / vals - quantized


def add_noise(img: np.ndarray, noise: GaussianNoise | PoissonNoise) -> np.ndarray:
    """Add the recorded noise to an HxWxC float32 image and clip to [0, 1]."""
    rng = np.random.Generator(np.random.PCG64(noise.seed))
    shape = (*img.shape[:2], 1) if noise.gray else img.shape
    if isinstance(noise, GaussianNoise):
        added = rng.standard_normal(shape, dtype=np.float32) * np.float32(noise.sigma / 255.0)
    else:
        base = (img @ _GRAY_WEIGHTS)[:, :, None] if noise.gray else img
        added = _poisson_noise(base, rng) * np.float32(noise.scale)
    return np.clip(img + added, 0.0, 1.0)


def noise_sigma_equivalent(noise: GaussianNoise | PoissonNoise) -> float:
    """Noise standard deviation in 8-bit levels; Poisson at mid-gray with 256 levels:
    ``255 * scale * sqrt(0.5 / 256)``."""
    if isinstance(noise, GaussianNoise):
        return noise.sigma
    return 255.0 * noise.scale * math.sqrt(0.5 / 256.0)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress and decode an HxWx3 float32 image with Pillow at an integer quality (1..100)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return to_float(np.asarray(decoded.convert("RGB")))
