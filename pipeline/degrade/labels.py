"""Label one LR/HR pair for quality models: full-reference scores, severity components and a quality score.

In: the modcropped HR, the recipe's LR, the recipe and the pair's recorded params (and a `LabelConfig`).
Out: `PairLabels` with
- `psnr_y`, `ssim_y`: the LR upsampled with Pillow bicubic (`bicubic_upscale`) scored against the HR with
  the standard protocol of `pipeline.sr_metrics` (border = scale; scale 1 compares LR and HR directly,
  border 0); identical images score PSNR = inf;
- `blur_sigma`, `noise_sigma`, `jpeg_quality`, `scale`: the recipe's `Severity`, read from the params;
- `quality_score` in [0, 5] (5 = pristine) and its `quality_class`.

Quality score (monotone: every severity component can only lower it)::

    penalty = blur_sigma / 1.5 + noise_sigma / 10.0 + (100 - jpeg_quality) / 35.0 + log2(scale) / 2.0
    quality_score = 5 * exp(-penalty / 3.0)

so a Gaussian blur of sigma 1.5 HR px, noise of sigma 10 levels, JPEG quality 65 or a x4 downscale each cost
one penalty point (the divisors are `LabelConfig` fields). Classes by score: excellent >= 4, good >= 3,
fair >= 2, poor >= 1, bad < 1. Examples: bicubic_x2 4.23 (excellent), bicubic_x4 3.58 (good).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from pipeline.degrade.bicubic import bicubic_upscale
from pipeline.degrade.recipe import Recipe, Severity
from pipeline.sr_metrics import psnr_ssim_y

QUALITY_CLASSES = ("excellent", "good", "fair", "poor", "bad")


class LabelConfig(BaseModel):
    """How much of each severity component costs one penalty point, and the class floors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blur_sigma_per_point: float = 1.5  # HR pixels of Gaussian-equivalent sigma
    noise_sigma_per_point: float = 10.0  # 8-bit levels
    jpeg_quality_per_point: float = 35.0  # quality steps below 100
    scale_log2_per_point: float = 2.0  # x4 = log2(4) / 2 = 1 point
    temperature: float = 3.0  # penalty at which the score falls to 5/e
    class_floors: tuple[float, float, float, float] = (4.0, 3.0, 2.0, 1.0)  # excellent, good, fair, poor

    @model_validator(mode="after")
    def _valid(self) -> LabelConfig:
        divisors = (
            self.blur_sigma_per_point,
            self.noise_sigma_per_point,
            self.jpeg_quality_per_point,
            self.scale_log2_per_point,
            self.temperature,
        )
        if any(d <= 0 for d in divisors):
            raise ValueError("LabelConfig divisors and temperature must be > 0")
        if list(self.class_floors) != sorted(self.class_floors, reverse=True) or self.class_floors[-1] <= 0:
            raise ValueError(f"class_floors={self.class_floors} must be positive and decreasing")
        return self


@dataclass(frozen=True)
class PairLabels:
    psnr_y: float
    ssim_y: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    scale: int
    quality_score: float
    quality_class: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def severity_penalty(severity: Severity, config: LabelConfig | None = None) -> float:
    """Sum of the per-component penalties (0 for a pristine pair); increasing in every component."""
    cfg = config or LabelConfig()
    return (
        severity.blur_sigma / cfg.blur_sigma_per_point
        + severity.noise_sigma / cfg.noise_sigma_per_point
        + (100 - severity.jpeg_quality) / cfg.jpeg_quality_per_point
        + math.log2(severity.scale) / cfg.scale_log2_per_point
    )


def quality_score(severity: Severity, config: LabelConfig | None = None) -> float:
    """``5 * exp(-penalty / temperature)``: 5 for a pristine pair, towards 0 as degradations stack."""
    cfg = config or LabelConfig()
    if severity.blur_sigma < 0 or severity.noise_sigma < 0 or not 0 <= severity.jpeg_quality <= 100:
        raise ValueError(f"severity out of range: {severity}")
    if severity.scale < 1:
        raise ValueError(f"severity scale must be >= 1, got {severity.scale}")
    return 5.0 * math.exp(-severity_penalty(severity, cfg) / cfg.temperature)


def quality_class(score: float, config: LabelConfig | None = None) -> str:
    """Name of the band the score falls in (see the module docstring)."""
    cfg = config or LabelConfig()
    for name, floor in zip(QUALITY_CLASSES, cfg.class_floors, strict=False):
        if score >= floor:
            return name
    return QUALITY_CLASSES[-1]


def pair_labels(
    hr: np.ndarray,
    lr: np.ndarray,
    recipe: Recipe,
    params: Mapping[str, Any],
    config: LabelConfig | None = None,
) -> PairLabels:
    """All labels of one pair; `hr` must be the recipe's modcropped HR (`recipe.crop_hr`)."""
    scale = recipe.scale
    if (
        lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale)
        or hr.shape[0] % scale
        or hr.shape[1] % scale
    ):
        raise ValueError(f"LR {lr.shape} and HR {hr.shape} are not an aligned pair at scale {scale}")
    upsampled = bicubic_upscale(lr, scale)
    border = scale if scale > 1 else 0
    severity = recipe.severity(params)
    score = quality_score(severity, config)
    psnr, ssim = psnr_ssim_y(upsampled, hr, border)  # one Y conversion per image for both scores
    return PairLabels(
        psnr_y=psnr,
        ssim_y=ssim,
        blur_sigma=severity.blur_sigma,
        noise_sigma=severity.noise_sigma,
        jpeg_quality=severity.jpeg_quality,
        scale=severity.scale,
        quality_score=score,
        quality_class=quality_class(score, config),
    )
