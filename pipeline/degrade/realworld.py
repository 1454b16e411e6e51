"""Make real-world LR images with Real-ESRGAN's second-order degradation: `realworld_x4`, `realworld_x2`.

In: an HR uint8 HxWx3 image and a params dict sampled by `sample_params` (or read back from a pair
record). Out: the uint8 LR of ``(H // scale, W // scale)``, aligned with the HR modcropped to the scale.

Pipeline (Wang et al. 2021, `realesrgan_model.py`), every random choice recorded in params:
  stage 1: blur (21x21-max kernel: iso/aniso Gaussian, generalized, plateau, or sinc w.p. 0.1)
           -> resize up/down/keep (probs 0.2/0.7/0.1, factor in [0.15, 1.5], area/bilinear/bicubic)
           -> Gaussian (sigma 1..30) or Poisson (scale 0.05..3) noise, gray w.p. 0.4 -> JPEG 30..95
  stage 2: blur w.p. 0.8 (sigma 0.2..1.5) -> resize to ``HR/scale * f`` (probs 0.3/0.4/0.3, f in
           [0.3, 1.2]) -> noise (sigma 1..25, Poisson 0.05..2.5)
  final:   w.p. 0.5 [resize to LR size, sinc (w.p. 0.8), JPEG 30..95], else [JPEG, resize, sinc]
Differences from the original, all deliberate: no unsharp masking of the HR (the HR stays the clean
target), real JPEG through Pillow (integer quality) instead of DiffJPEG, and sampled values drawn from one
seeded Generator. Pixel operations by version (`VERSIONS`; new pairs use the latest, a recorded pair
regenerates with its `recipe_version`):
  1: numpy/scipy (`ops`, `kernels.filter2d`: resizes reproduce `F.interpolate` exactly, FFT blur);
  2: OpenCV (`cv_ops`: separable blur where the kernel allows, `cv2.resize`, OpenCV's noise generator,
     Poisson by its normal approximation), about twice as fast; the differences are in `cv_ops`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from pipeline.degrade import cv_ops, kernels, ops
from pipeline.degrade.recipe import Recipe, Severity, check_range


class StageConfig(BaseModel):
    """One degradation stage. Defaults: Real-ESRGAN's first stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blur: kernels.BlurConfig = kernels.BlurConfig()
    blur_prob: float = 1.0
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    noise: ops.NoiseConfig = ops.NoiseConfig()
    jpeg_range: tuple[int, int] = (30, 95)

    @model_validator(mode="after")
    def _valid(self) -> StageConfig:
        if not 0.0 <= self.blur_prob <= 1.0:
            raise ValueError(f"blur_prob={self.blur_prob} must be in [0, 1]")
        if any(p < 0 for p in self.resize_probs) or abs(sum(self.resize_probs) - 1.0) > 1e-6:
            raise ValueError(f"resize_probs={self.resize_probs} (up, down, keep) must be >= 0 and sum to 1")
        if not 0.01 <= self.resize_range[0] <= 1.0 <= self.resize_range[1] <= 8.0:
            raise ValueError(f"resize_range={self.resize_range} must satisfy 0.01 <= low <= 1 <= high <= 8")
        if not 1 <= self.jpeg_range[0] <= self.jpeg_range[1] <= 100:
            raise ValueError(f"jpeg_range={self.jpeg_range} must satisfy 1 <= low <= high <= 100")
        return self


_STAGE2 = StageConfig(
    blur=kernels.BlurConfig(sigma_range=(0.2, 1.5)),
    blur_prob=0.8,
    resize_probs=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise=ops.NoiseConfig(sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5)),
)


class RealworldConfig(BaseModel):
    """Both stages and the final sinc/JPEG step; defaults are Real-ESRGAN's x4plus/x2plus settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage1: StageConfig = StageConfig()
    stage2: StageConfig = _STAGE2
    resize_modes: tuple[ops.ResizeMode, ...] = ("area", "bilinear", "bicubic")
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)
    sinc_first_prob: float = 0.5  # chance of [resize, sinc, JPEG] rather than [JPEG, resize, sinc]

    @model_validator(mode="after")
    def _valid(self) -> RealworldConfig:
        if not self.resize_modes or len(set(self.resize_modes)) != len(self.resize_modes):
            raise ValueError(f"resize_modes={self.resize_modes} must be distinct modes of {ops.RESIZE_MODES}")
        for name in ("final_sinc_prob", "sinc_first_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if any(s < 3 or s % 2 == 0 for s in self.final_sinc_sizes) or not self.final_sinc_sizes:
            raise ValueError(f"final_sinc_sizes={self.final_sinc_sizes} must be odd sizes >= 3")
        if not 0.0 < self.final_sinc_omega[0] <= self.final_sinc_omega[1] <= math.pi:
            raise ValueError(f"final_sinc_omega={self.final_sinc_omega} must lie in (0, pi]")
        return self


class ResizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    direction: Literal["up", "down", "keep"]
    factor: float
    mode: ops.ResizeMode


class StageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    blur: kernels.KernelParams | None
    resize: ResizeParams
    noise: ops.NoiseParams
    jpeg_quality: int


class RealworldParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stage1: StageParams
    stage2: StageParams
    final_order: Literal["sinc_then_jpeg", "jpeg_then_sinc"]
    final_resize_mode: ops.ResizeMode
    final_sinc: kernels.KernelParams | None


def _pick(rng: np.random.Generator, options: tuple[Any, ...]) -> Any:
    return options[int(rng.integers(len(options)))]


def sample_stage(rng: np.random.Generator, config: StageConfig, modes: tuple[str, ...]) -> dict[str, Any]:
    blur = kernels.sample_kernel(rng, config.blur) if rng.random() < config.blur_prob else None
    direction = ("up", "down", "keep")[int(rng.choice(3, p=config.resize_probs))]
    low, high = config.resize_range
    factor = 1.0
    if direction == "up":
        factor = rng.uniform(1.0, high)
    elif direction == "down":
        factor = rng.uniform(low, 1.0)
    return {
        "blur": blur,
        "resize": {"direction": direction, "factor": float(factor), "mode": _pick(rng, modes)},
        "noise": ops.sample_noise(rng, config.noise),
        "jpeg_quality": int(rng.integers(config.jpeg_range[0], config.jpeg_range[1] + 1)),
    }


def check_stage(
    stage: StageParams, config: StageConfig, modes: tuple[str, ...], what: str, name: str
) -> None:
    if (stage.blur is None and config.blur_prob >= 1.0) or (
        stage.blur is not None and config.blur_prob <= 0.0
    ):
        raise ValueError(f"recipe {name}: {what}.blur presence contradicts blur_prob={config.blur_prob}")
    if stage.blur is not None:
        kernels.check_kernel(stage.blur, config.blur, f"{what}.blur", name)
    low, high = config.resize_range
    bounds = {"up": (1.0, high), "down": (low, 1.0), "keep": (1.0, 1.0)}[stage.resize.direction]
    check_range(stage.resize.factor, bounds, f"{what}.resize.factor ({stage.resize.direction})", name)
    if stage.resize.mode not in modes:
        raise ValueError(f"recipe {name}: {what}.resize.mode={stage.resize.mode} is not one of {modes}")
    ops.check_noise(stage.noise, config.noise, f"{what}.noise", name)
    check_range(stage.jpeg_quality, config.jpeg_range, f"{what}.jpeg_quality", name)


VERSIONS = (1, 2)


class RealworldRecipe(Recipe):
    """Second-order real-world degradation at scale 2 or 4; `version` picks the pixel operations."""

    params_model = RealworldParams

    def __init__(
        self, scale: int, config: RealworldConfig | None = None, version: int = VERSIONS[-1]
    ) -> None:
        if scale not in (2, 4):
            raise ValueError(f"realworld recipes exist for scales 2 and 4, got {scale}")
        if version not in VERSIONS:
            raise ValueError(f"realworld recipes have versions {VERSIONS}, got {version}")
        self.scale, self.version = scale, version
        self.name = f"realworld_x{scale}"
        self.config = config or RealworldConfig()
        if version == 1:
            self._resize, self._noise, self._filter = ops.resize, ops.add_noise, kernels.filter2d
        else:
            self._resize, self._noise, self._filter = cv_ops.resize, cv_ops.add_noise, cv_ops.filter2d

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self.config
        stage1 = sample_stage(rng, cfg.stage1, cfg.resize_modes)
        stage2 = sample_stage(rng, cfg.stage2, cfg.resize_modes)
        sinc_first = rng.random() < cfg.sinc_first_prob
        final_mode = _pick(rng, cfg.resize_modes)
        final_sinc = None
        if rng.random() < cfg.final_sinc_prob:
            final_sinc = kernels.sample_sinc(rng, cfg.final_sinc_sizes, cfg.final_sinc_omega)
        return {
            "stage1": stage1,
            "stage2": stage2,
            "final_order": "sinc_then_jpeg" if sinc_first else "jpeg_then_sinc",
            "final_resize_mode": final_mode,
            "final_sinc": final_sinc,
        }

    def _check_ranges(self, params: BaseModel) -> None:
        assert isinstance(params, RealworldParams)
        cfg = self.config
        check_stage(params.stage1, cfg.stage1, cfg.resize_modes, "stage1", self.name)
        check_stage(params.stage2, cfg.stage2, cfg.resize_modes, "stage2", self.name)
        if params.final_resize_mode not in cfg.resize_modes:
            raise ValueError(
                f"recipe {self.name}: final_resize_mode={params.final_resize_mode} is not allowed"
            )
        sinc = params.final_sinc
        if (sinc is None and cfg.final_sinc_prob >= 1.0) or (sinc is not None and cfg.final_sinc_prob <= 0.0):
            raise ValueError(f"recipe {self.name}: final_sinc presence contradicts final_sinc_prob")
        if sinc is not None:
            if sinc.kind != "sinc" or sinc.size not in cfg.final_sinc_sizes:
                raise ValueError(
                    f"recipe {self.name}: final_sinc must be a sinc of size in {cfg.final_sinc_sizes}"
                )
            check_range(sinc.omega_c, cfg.final_sinc_omega, "final_sinc.omega_c", self.name)

    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray:
        assert isinstance(params, RealworldParams)
        height, width = hr.shape[:2]
        lr_size = (height // self.scale, width // self.scale)
        resize, noise, blur = self._resize, self._noise, self._filter
        out = ops.to_float(hr)
        one, two = params.stage1, params.stage2
        if one.blur is not None:
            out = blur(out, kernels.build_kernel(one.blur))
        size1 = (max(1, int(height * one.resize.factor)), max(1, int(width * one.resize.factor)))
        out = ops.jpeg(noise(resize(out, *size1, one.resize.mode), one.noise), one.jpeg_quality)
        if two.blur is not None:
            out = blur(out, kernels.build_kernel(two.blur))
        size2 = tuple(max(1, int(side / self.scale * two.resize.factor)) for side in (height, width))
        out = noise(resize(out, *size2, two.resize.mode), two.noise)
        if params.final_order == "jpeg_then_sinc":
            out = ops.jpeg(out, two.jpeg_quality)  # jpeg clips to 8 bits
        out = resize(out, *lr_size, params.final_resize_mode)
        if params.final_sinc is not None:
            out = blur(out, kernels.build_kernel(params.final_sinc))
        if params.final_order == "sinc_then_jpeg":
            out = ops.jpeg(out, two.jpeg_quality)  # jpeg clips to 8 bits
        return ops.to_uint8(out)

    def severity(self, params: Mapping[str, Any]) -> Severity:
        """Blur combined in HR pixels: stage-2 kernels act at ``factor1 x`` HR resolution and the final
        sinc at LR resolution; noise sigmas add in quadrature; JPEG is the lower of the two qualities."""
        parsed = self.validate_params(params)
        assert isinstance(parsed, RealworldParams)
        one, two = parsed.stage1, parsed.stage2
        blur_sq = 0.0
        if one.blur is not None:
            blur_sq += kernels.sigma_equivalent(one.blur) ** 2
        if two.blur is not None:
            blur_sq += (kernels.sigma_equivalent(two.blur) / one.resize.factor) ** 2
        if parsed.final_sinc is not None:
            blur_sq += (kernels.sigma_equivalent(parsed.final_sinc) * self.scale) ** 2
        noise = math.hypot(ops.noise_sigma_equivalent(one.noise), ops.noise_sigma_equivalent(two.noise))
        return Severity(
            blur_sigma=math.sqrt(blur_sq),
            noise_sigma=noise,
            jpeg_quality=min(one.jpeg_quality, two.jpeg_quality),
            scale=self.scale,
        )
