"""Make same-size degraded images for restoration models: `restore_x1_noise`, `restore_x1_blur`,
`restore_x1_jpeg`.

In: an HR uint8 HxWx3 image and a params dict from `sample_params`. Out: a uint8 image of the same size
with one degradation, drawn from the Real-ESRGAN first-stage ranges by default:
- noise: Gaussian sigma 1..30 (8-bit levels) or Poisson scale 0.05..3, each w.p. 0.5, gray w.p. 0.4;
- blur: one kernel of the Real-ESRGAN family (iso/aniso Gaussian, generalized, plateau, sinc), sigma 0.2..3;
- jpeg: a Pillow JPEG round trip at an integer quality 30..95.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from pipeline.degrade import kernels, ops
from pipeline.degrade.recipe import Recipe, Severity, check_range


class NoiseRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    noise: ops.NoiseParams


class BlurRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    blur: kernels.KernelParams


class JpegConfig(BaseModel):
    """JPEG quality range (inclusive integers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    quality_range: tuple[int, int] = (30, 95)

    @model_validator(mode="after")
    def _valid(self) -> JpegConfig:
        if not 1 <= self.quality_range[0] <= self.quality_range[1] <= 100:
            raise ValueError(f"quality_range={self.quality_range} must satisfy 1 <= low <= high <= 100")
        return self


class JpegRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    quality: int


class RestoreNoise(Recipe):
    """Additive Gaussian or Poisson noise at scale 1."""

    name = "restore_x1_noise"
    params_model = NoiseRecipeParams

    def __init__(self, config: ops.NoiseConfig | None = None) -> None:
        self.config = config or ops.NoiseConfig()

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"noise": ops.sample_noise(rng, self.config)}

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, NoiseRecipeParams)
        ops.check_noise(params.noise, self.config, "noise", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, NoiseRecipeParams)
        return ops.to_uint8(ops.add_noise(ops.to_float(hr), params.noise))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, NoiseRecipeParams)
        return Severity(noise_sigma=ops.noise_sigma_equivalent(parsed.noise))


class RestoreBlur(Recipe):
    """One blur kernel at scale 1."""

    name = "restore_x1_blur"
    params_model = BlurRecipeParams

    def __init__(self, config: kernels.BlurConfig | None = None) -> None:
        self.config = config or kernels.BlurConfig()

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"blur": kernels.sample_kernel(rng, self.config)}

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, BlurRecipeParams)
        kernels.check_kernel(params.blur, self.config, "blur", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, BlurRecipeParams)
        return ops.to_uint8(kernels.filter2d(ops.to_float(hr), kernels.build_kernel(params.blur)))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, BlurRecipeParams)
        return Severity(blur_sigma=kernels.sigma_equivalent(parsed.blur))


class RestoreJpeg(Recipe):
    """JPEG compression artifacts at scale 1."""

    name = "restore_x1_jpeg"
    params_model = JpegRecipeParams

    def __init__(self, config: JpegConfig | None = None) -> None:
        self.config = config or JpegConfig()

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        low, high = self.config.quality_range
        return {"quality": int(rng.integers(low, high + 1))}

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, JpegRecipeParams)
        check_range(params.quality, self.config.quality_range, "quality", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, JpegRecipeParams)
        return ops.to_uint8(ops.jpeg(ops.to_float(hr), params.quality))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, JpegRecipeParams)
        return Severity(jpeg_quality=parsed.quality)
