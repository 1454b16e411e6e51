"""Define what a degradation recipe is: seeded parameter sampling plus a pure apply function.

In: a recipe's typed config (pydantic), a `SeedKey` (image_id, variant) for sampling, and for applying an
HR image (uint8 HxWx3) with a recorded params dict. Out: a JSON-serializable params dict, the uint8 LR
image, the modcropped HR it pairs with, and the `Severity` of the degradation the params describe.

Contract every recipe keeps, so any stored pair regenerates bit for bit:
- `sample_params(key)` draws every random value from one numpy Generator whose seed is the SHA-256 of
  (image_id, recipe name, recipe version, variant), so it depends on nothing else (no global RNG, no
  worker id, no time). Anything random inside `apply` (noise) is a recorded integer seed.
- `apply(hr, params)` is a pure function of (pixels, params): params are validated first (pydantic
  model with extra="forbid", then the config's ranges) so a bad value raises ValueError before any work.
- The LR is exactly ``(H // scale, W // scale)`` of the input; `crop_hr` gives the HR it aligns with.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ValidationError

from pipeline.sr_metrics import modcrop


@dataclass(frozen=True)
class SeedKey:
    """Identity of one pair: which image, and which of its variants (0, 1, ... per recipe)."""

    image_id: str
    variant: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.image_id, str) or not self.image_id:
            raise ValueError(f"SeedKey.image_id must be a non-empty string, got {self.image_id!r}")
        if isinstance(self.variant, bool) or not isinstance(self.variant, int) or self.variant < 0:
            raise ValueError(f"SeedKey.variant must be an integer >= 0, got {self.variant!r}")


@dataclass(frozen=True)
class Severity:
    """Nominal strength of a degradation, read from recorded params (not measured on pixels).

    blur_sigma: Gaussian-sigma equivalent of all blur kernels combined, in HR pixels (0 = none; the
    scale's own anti-alias filter is not counted, `scale` covers it). noise_sigma: standard deviation of
    the added noise in 8-bit levels (Poisson converted at mid-gray). jpeg_quality: lowest JPEG quality
    applied (100 = no JPEG). scale: the recipe's downscale factor (1 = restoration).
    """

    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 100
    scale: int = 1


def seed_generator(image_id: str, recipe_name: str, recipe_version: int, variant: int) -> np.random.Generator:
    """A PCG64 generator seeded from SHA-256 of the key: stable across processes, machines and versions."""
    payload = json.dumps([image_id, recipe_name, recipe_version, variant], separators=(",", ":"))
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def check_image(hr: np.ndarray, recipe_name: str, min_side: int, allow_gray: bool = False) -> np.ndarray:
    """Validate an HR image for a recipe: uint8 HxWx3 (or HxW if allowed) with both sides >= min_side."""
    arr = np.asarray(hr)
    is_rgb = arr.ndim == 3 and arr.shape[2] == 3
    if arr.dtype != np.uint8 or not (is_rgb or (allow_gray and arr.ndim == 2)):
        raise ValueError(
            f"recipe {recipe_name} expects a uint8 HxWx3 RGB image, got {arr.dtype} {arr.shape}; "
            "convert with PIL Image.convert('RGB') first"
        )
    if min(arr.shape[:2]) < min_side:
        raise ValueError(f"recipe {recipe_name} needs an image of at least {min_side}px, got {arr.shape[:2]}")
    return arr


class Recipe(ABC):
    """Base of all recipes. Subclasses set `name`, `version`, `scale`, `params_model` and implement
    `_sample`, `_check_ranges`, `_apply` and `severity`."""

    name: str
    version: int = 1  # part of the seed key; a change of the bytes a recipe makes is a new version
    scale: int = 1
    params_model: ClassVar[type[BaseModel]]
    config: BaseModel
    accepts_gray: ClassVar[bool] = False  # True where HxW single-channel images are degraded as they are

    @property
    def min_hr_side(self) -> int:
        """Smallest HR side the recipe accepts (each LR side must be at least one pixel)."""
        return self.scale

    def describe(self) -> dict[str, Any]:
        """JSON-serializable identity of the recipe, to record next to every pair."""
        return {
            "name": self.name,
            "version": self.version,
            "scale": self.scale,
            "config": self.config.model_dump(mode="json"),
        }

    def sample_params(self, key: SeedKey) -> dict[str, Any]:
        """Draw this pair's parameters; the same key always gives the same dict."""
        rng = seed_generator(key.image_id, self.name, self.version, key.variant)
        params = self._sample(rng)
        self.validate_params(params)  # a sampler outside its own ranges is a bug: fail loudly
        return params

    def validate_params(self, params: Mapping[str, Any]) -> BaseModel:
        """Parse params into the recipe's model and check the config's ranges; ValueError names the field."""
        try:
            parsed = self.params_model.model_validate(dict(params))
        except ValidationError as err:
            raise ValueError(f"invalid params for recipe {self.name}: {err}") from None
        self._check_ranges(parsed)
        return parsed

    def crop_hr(self, hr: np.ndarray) -> np.ndarray:
        """The HR that the LR of `apply` aligns with: modcropped to a multiple of the scale."""
        return modcrop(np.asarray(hr), self.scale)

    def apply(self, hr: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        """Degrade `hr` (uint8 HxWx3) with recorded params; returns uint8 LR of (H//scale, W//scale)."""
        parsed = self.validate_params(params)
        arr = check_image(hr, self.name, self.min_hr_side, allow_gray=self.accepts_gray)
        return self._apply(self.crop_hr(arr), parsed)

    @abstractmethod
    def _sample(self, rng: np.random.Generator) -> dict[str, Any]: ...

    @abstractmethod
    def _check_ranges(self, params: BaseModel) -> None: ...

    @abstractmethod
    def _apply(self, hr: np.ndarray, params: BaseModel) -> np.ndarray: ...

    @abstractmethod
    def severity(self, params: Mapping[str, Any]) -> Severity: ...


def check_range(value: float, bounds: tuple[float, float], what: str, recipe_name: str) -> None:
    """Raise ValueError naming the parameter when `value` lies outside the closed range `bounds`."""
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(
            f"recipe {recipe_name}: {what}={value} is outside its configured range [{low}, {high}]"
        )
