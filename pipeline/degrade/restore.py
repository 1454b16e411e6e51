"""Make same-size degraded images for restoration models: `restore_x1_noise`, `restore_x1_blur`,
`restore_x1_jpeg` and `restore_x1_mixed`.

In: an HR uint8 HxWx3 image and a params dict from `sample_params`. Out: a uint8 image of the same size.
Version 2 (the default for new pairs; `default_config(version)` gives each version's ranges):
- noise: Gaussian sigma 0..75 (8-bit levels, recorded: a noise-level-aware model reads it) or Poisson
  scale 0.05..3, each w.p. 0.5, gray w.p. 0.4; OpenCV's generator (`cv_ops.add_noise`);
- blur: one kernel of the Real-ESRGAN family (iso/aniso Gaussian, generalized, plateau, sinc), sigma
  0.2..3, applied by `cv_ops.filter2d`;
- jpeg: a Pillow JPEG round trip at quality 10..95; w.p. 0.3 a second one at 30..95 on a grid shifted
  by (1..7, 1..7) pixels (non-aligned double JPEG: a re-saved crop of an already compressed photo);
- mixed: one first-order real-world chain, blur (w.p. 0.8) -> noise -> JPEG 30..95, from
  `realworld.StageConfig` with the resize kept at 1x.
Version 1 (recorded pairs regenerate with it): noise sigma 1..30 by numpy, FFT blur, single JPEG 30..95.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from pipeline.degrade import cv_ops, kernels, ops
from pipeline.degrade.realworld import StageConfig, StageParams, check_stage, sample_stage
from pipeline.degrade.recipe import Recipe, Severity, check_range

VERSIONS = (1, 2)
MIXED_VERSIONS = (1,)
_KEEP_ONLY = ("area",)  # the mixed chain never resizes; its recorded mode is this placeholder


def _check_version(version: int, versions: tuple[int, ...], name: str) -> int:
    if version not in versions:
        raise ValueError(f"recipe {name} has versions {versions}, got {version}")
    return version


class NoiseRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    noise: ops.NoiseParams


class BlurRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    blur: kernels.KernelParams


class JpegConfig(BaseModel):
    """JPEG quality range (inclusive integers) and the non-aligned second compression."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    quality_range: tuple[int, int] = (30, 95)
    double_prob: float = 0.0
    second_quality_range: tuple[int, int] = (30, 95)
    max_shift: int = 7  # the second grid is shifted by 1..max_shift pixels on each axis

    @model_validator(mode="after")
    def _valid(self) -> JpegConfig:
        for name in ("quality_range", "second_quality_range"):
            low, high = getattr(self, name)
            if not 1 <= low <= high <= 100:
                raise ValueError(f"{name}={(low, high)} must satisfy 1 <= low <= high <= 100")
        if not 0.0 <= self.double_prob <= 1.0:
            raise ValueError(f"double_prob={self.double_prob} must be in [0, 1]")
        if not 1 <= self.max_shift <= 7:
            raise ValueError(f"max_shift={self.max_shift} must be in 1..7 (a shift of 8 realigns the grid)")
        return self


class SecondJpeg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    quality: int
    shift_y: int
    shift_x: int


class JpegRecipeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    quality: int
    double: SecondJpeg | None = None  # absent in version 1


class RestoreNoise(Recipe):
    """Additive Gaussian or Poisson noise at scale 1."""

    name = "restore_x1_noise"
    params_model = NoiseRecipeParams

    @staticmethod
    def default_config(version: int) -> ops.NoiseConfig:
        return ops.NoiseConfig() if version == 1 else ops.NoiseConfig(sigma_range=(0.0, 75.0))

    def __init__(self, config: ops.NoiseConfig | None = None, version: int = VERSIONS[-1]) -> None:
        self.version = _check_version(version, VERSIONS, self.name)
        self.config = config or self.default_config(version)
        self._noise = ops.add_noise if version == 1 else cv_ops.add_noise

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"noise": ops.sample_noise(rng, self.config)}

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, NoiseRecipeParams)
        ops.check_noise(params.noise, self.config, "noise", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, NoiseRecipeParams)
        return ops.to_uint8(self._noise(ops.to_float(hr), params.noise))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, NoiseRecipeParams)
        return Severity(noise_sigma=ops.noise_sigma_equivalent(parsed.noise))


class RestoreBlur(Recipe):
    """One blur kernel at scale 1."""

    name = "restore_x1_blur"
    params_model = BlurRecipeParams

    @staticmethod
    def default_config(version: int) -> kernels.BlurConfig:
        return kernels.BlurConfig()

    def __init__(self, config: kernels.BlurConfig | None = None, version: int = VERSIONS[-1]) -> None:
        self.version = _check_version(version, VERSIONS, self.name)
        self.config = config or self.default_config(version)
        self._filter = kernels.filter2d if version == 1 else cv_ops.filter2d

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"blur": kernels.sample_kernel(rng, self.config)}

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, BlurRecipeParams)
        kernels.check_kernel(params.blur, self.config, "blur", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, BlurRecipeParams)
        return ops.to_uint8(self._filter(ops.to_float(hr), kernels.build_kernel(params.blur)))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, BlurRecipeParams)
        return Severity(blur_sigma=kernels.sigma_equivalent(parsed.blur))


class RestoreJpeg(Recipe):
    """JPEG compression artifacts at scale 1, single or non-aligned double."""

    name = "restore_x1_jpeg"
    params_model = JpegRecipeParams

    @staticmethod
    def default_config(version: int) -> JpegConfig:
        return JpegConfig() if version == 1 else JpegConfig(quality_range=(10, 95), double_prob=0.3)

    def __init__(self, config: JpegConfig | None = None, version: int = VERSIONS[-1]) -> None:
        self.version = _check_version(version, VERSIONS, self.name)
        self.config = config or self.default_config(version)

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {
            "quality": int(rng.integers(cfg.quality_range[0], cfg.quality_range[1] + 1))
        }
        if self.version >= 2:  # version 1 drew nothing more: its sampled params stay as they were
            params["double"] = None
            if rng.random() < cfg.double_prob:
                low, high = cfg.second_quality_range
                shift_y, shift_x = (int(v) for v in rng.integers(1, cfg.max_shift + 1, size=2))
                params["double"] = {
                    "quality": int(rng.integers(low, high + 1)),
                    "shift_y": shift_y,
                    "shift_x": shift_x,
                }
        return params

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, JpegRecipeParams)
        cfg = self.config
        check_range(params.quality, cfg.quality_range, "quality", self.name)
        second = params.double
        if second is not None:
            if cfg.double_prob <= 0.0:
                raise ValueError(f"recipe {self.name}: double JPEG contradicts double_prob=0")
            check_range(second.quality, cfg.second_quality_range, "double.quality", self.name)
            check_range(second.shift_y, (1, cfg.max_shift), "double.shift_y", self.name)
            check_range(second.shift_x, (1, cfg.max_shift), "double.shift_x", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, JpegRecipeParams)
        out = ops.jpeg(ops.to_float(hr), params.quality)
        second = params.double
        if second is not None:  # pad at the top-left so the second 8x8 grid misses the first, crop back
            shifted = np.pad(out, ((second.shift_y, 0), (second.shift_x, 0), (0, 0)), mode="edge")
            out = ops.jpeg(shifted, second.quality)[second.shift_y :, second.shift_x :]
        return ops.to_uint8(out)

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, JpegRecipeParams)
        second = parsed.double.quality if parsed.double is not None else 100
        return Severity(jpeg_quality=min(parsed.quality, second))


class RestoreMixed(Recipe):
    """The first-order real-world chain at scale 1: blur (sometimes), noise, JPEG."""

    name = "restore_x1_mixed"
    params_model = StageParams

    @staticmethod
    def default_config(version: int) -> StageConfig:
        return StageConfig(blur_prob=0.8, resize_probs=(0.0, 0.0, 1.0))

    def __init__(self, config: StageConfig | None = None, version: int = MIXED_VERSIONS[-1]) -> None:
        self.version = _check_version(version, MIXED_VERSIONS, self.name)
        self.config = config or self.default_config(version)
        if self.config.resize_probs != (0.0, 0.0, 1.0):
            raise ValueError(f"recipe {self.name} keeps the size: resize_probs must be (0, 0, 1)")

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return sample_stage(rng, self.config, _KEEP_ONLY)

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, StageParams)
        check_stage(params, self.config, _KEEP_ONLY, "stage", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, StageParams)
        out = ops.to_float(hr)
        if params.blur is not None:
            out = cv_ops.filter2d(out, kernels.build_kernel(params.blur))
        return ops.to_uint8(ops.jpeg(cv_ops.add_noise(out, params.noise), params.jpeg_quality))

    def severity(self, params: Mapping[str, Any]) -> Severity:
        parsed = self.validate_params(params)
        assert isinstance(parsed, StageParams)
        return Severity(
            blur_sigma=kernels.sigma_equivalent(parsed.blur) if parsed.blur is not None else 0.0,
            noise_sigma=ops.noise_sigma_equivalent(parsed.noise),
            jpeg_quality=parsed.jpeg_quality,
        )
