"""Make standard-protocol LR images: `bicubic_x2`, `bicubic_x3`, `bicubic_x4`, and the bicubic upscale baseline.

In: an HR uint8 image (HxWx3, or HxW single-channel as Set14's bridge.png), params `{}` (nothing is
random). Out: the LR, ``(H // scale, W // scale)``, of the HR modcropped to a multiple of the scale.

The downscale is Pillow's BICUBIC resize, which antialiases when reducing (its kernel is stretched by
the scale, as MATLAB `imresize` does) and matches MATLAB's LR to about 54 dB; with Pillow BICUBIC for
the upscale too, the Y-PSNR of Set5/Set14 reproduces the published bicubic baselines within 0.01 dB.
OpenCV's INTER_CUBIC does not antialias and shifts the baselines by up to 0.8 dB: it must not be used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from pipeline.degrade.recipe import Recipe, Severity


class BicubicConfig(BaseModel):
    """Nothing to configure: the protocol is fixed. Kept so every recipe records a config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BicubicParams(BaseModel):
    """No per-pair parameters: the LR is a deterministic function of the HR."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BICUBIC))


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """Pillow-bicubic (antialiased) downscale of an HR whose sides are multiples of `scale`."""
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"HR {height}x{width} is not a multiple of scale {scale}; modcrop it first")
    return _resize(np.ascontiguousarray(hr), width // scale, height // scale)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """Pillow-bicubic upscale of a uint8 LR by an integer factor: the baseline SR method of the tables."""
    if scale < 1:
        raise ValueError(f"bicubic_upscale scale must be >= 1, got {scale}")
    arr = np.ascontiguousarray(lr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"bicubic_upscale expects a uint8 HxW or HxWx3 image, got {arr.dtype} {arr.shape}")
    if scale == 1:
        return arr.copy()
    height, width = arr.shape[:2]
    return _resize(arr, width * scale, height * scale)


class BicubicRecipe(Recipe):
    """The standard protocol LR at one scale."""

    params_model = BicubicParams
    accepts_gray = True

    def __init__(self, scale: int, config: BicubicConfig | None = None) -> None:
        if scale not in (2, 3, 4):
            raise ValueError(f"bicubic recipes exist for scales 2, 3 and 4, got {scale}")
        self.scale = scale
        self.name = f"bicubic_x{scale}"
        self.config = config or BicubicConfig()

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {}

    def _check_ranges(self, params: BaseModel) -> None:
        return None

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        return bicubic_downscale(hr, self.scale)

    def severity(self, params: Mapping[str, Any]) -> Severity:
        self.validate_params(params)
        return Severity(scale=self.scale)
