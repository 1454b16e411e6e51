"""Name the distortions of the quality grid, fix their strengths and draw each member's recorded params.

In: an image id (the reference's `image_id`), a family name from `FAMILIES`, a level 0..`LEVELS` and
the grid version. Out: from `grid_params`, a JSON-serializable dict (keys sorted) holding every value
`pipeline.distort.apply.distort` needs; `grid` lists all members of one reference; `validate_params`
parses a params dict into its family's pydantic model (extra="forbid", strict types, ranges) or
raises ValueError naming the bad key.

The grid of one reference is the pristine canvas (level 0) plus every family at levels 1..5: 75
distorted images. Levels are strictly more severe. The strengths are fixed constants (`STRENGTHS`),
meant for the 384-px quality canvas:

| family             | parameter(s)                      | levels 1..5                       |
|--------------------|-----------------------------------|-----------------------------------|
| gaussian_blur      | sigma (px)                        | 0.8, 1.6, 2.8, 4.5, 7             |
| motion_blur        | length (px), angle drawn          | 3.5, 7, 12, 20, 32                |
| defocus_blur       | radius (px) of a uniform disk     | 1.25, 2.5, 4, 6.5, 11             |
| gaussian_noise     | sigma (8-bit levels), seed drawn  | 1.5, 3, 4.5, 6.5, 9               |
| poisson_noise      | photons at white, seed drawn      | 8000, 2500, 1000, 400, 170        |
| jpeg               | quality (Pillow, 4:2:0)           | 75, 40, 20, 10, 5                 |
| double_jpeg        | first / second quality, shift drawn | 90/95, 60/70, 30/40, 14/20, 5/8 |
| fake_hr            | bicubic down-then-up factor       | 1.5, 2.5, 4, 7, 13                |
| overexposure       | stops up, in linear light         | 0.15, 0.35, 0.6, 0.9, 1.3         |
| underexposure      | stops down, in linear light       | 0.04, 0.09, 0.16, 0.25, 0.38      |
| contrast_loss      | factor toward the image mean      | 0.97, 0.93, 0.88, 0.81, 0.72      |
| colour_cast        | strength (white-point chroma/100), hue drawn | 0.01, 0.022, 0.038, 0.06, 0.095 |
| oversaturation     | CIELAB chroma factor              | 1.1, 1.25, 1.5, 1.85, 2.4         |
| chroma_subsampling | Cb/Cr down-then-up factor         | 2, 4, 8, 16, 32                   |
| posterization      | levels per channel                | 32, 16, 10, 6, 4                  |

Why these values: the training target (`pipeline.distort.target`) is a full-reference score, and the
grid should sample it evenly in every family, so the tables were set on 40 real product photos until
each family's mean target ran about 4.3, 3.6, 2.9, 2.1, 1.4 over levels 1..5 (measured numbers are in
target.py). Strengths then grow roughly geometrically, as perceived loss does. Two consequences of the
studio shots' white backgrounds: the tone and colour families are much milder than a photographer's
"just visible" (0.04 stops, a cast of ~1 CIELAB unit), because a uniform shift of the background moves
the mean colour difference of the whole canvas; and chroma_subsampling stays the mildest family (its
level 5 means ~3.0) because luma SSIM cannot see it and white has no chroma to smear.

Seeding (the contract of `pipeline.degrade.recipe`): everything random (noise seed, motion angle, cast
hue, double-JPEG shift) comes from ``seed_generator(image_id, "quality_grid", version, variant)`` with
``variant = family index * 100 + level``, so a member's params depend on nothing but its key; each
level draws its own values (a new hue, angle or noise field per level).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

GRID_NAME = "quality_grid"
PRISTINE = "pristine"
LEVELS = 5
VARIANT_STRIDE = 100  # variant = family index * stride + level; 100 keeps room for more levels
NOISE_SEED_LIMIT = 2**53  # seeds stay exact in JSON readers that use doubles

FAMILIES: tuple[str, ...] = (
    "gaussian_blur",
    "motion_blur",
    "defocus_blur",
    "gaussian_noise",
    "poisson_noise",
    "jpeg",
    "double_jpeg",
    "fake_hr",
    "overexposure",
    "underexposure",
    "contrast_loss",
    "colour_cast",
    "oversaturation",
    "chroma_subsampling",
    "posterization",
)

# family -> parameter name -> its value at levels 1..LEVELS. Ints stay ints (JPEG qualities, factors).
STRENGTHS: Mapping[str, Mapping[str, tuple[float, ...] | tuple[int, ...]]] = MappingProxyType(
    {
        "gaussian_blur": {"sigma": (0.8, 1.6, 2.8, 4.5, 7.0)},
        "motion_blur": {"length": (3.5, 7.0, 12.0, 20.0, 32.0)},
        "defocus_blur": {"radius": (1.25, 2.5, 4.0, 6.5, 11.0)},
        "gaussian_noise": {"sigma": (1.5, 3.0, 4.5, 6.5, 9.0)},
        "poisson_noise": {"photons": (8000.0, 2500.0, 1000.0, 400.0, 170.0)},
        "jpeg": {"quality": (75, 40, 20, 10, 5)},
        "double_jpeg": {"first_quality": (90, 60, 30, 14, 5), "second_quality": (95, 70, 40, 20, 8)},
        "fake_hr": {"factor": (1.5, 2.5, 4.0, 7.0, 13.0)},
        "overexposure": {"stops": (0.15, 0.35, 0.6, 0.9, 1.3)},
        "underexposure": {"stops": (0.04, 0.09, 0.16, 0.25, 0.38)},
        "contrast_loss": {"factor": (0.97, 0.93, 0.88, 0.81, 0.72)},
        "colour_cast": {"strength": (0.01, 0.022, 0.038, 0.06, 0.095)},
        "oversaturation": {"factor": (1.1, 1.25, 1.5, 1.85, 2.4)},
        "chroma_subsampling": {"factor": (2, 4, 8, 16, 32)},
        "posterization": {"levels": (32, 16, 10, 6, 4)},
    }
)


# --- the params of one member: one model per family, so `distort` refuses bad ones before any work.
# Ranges are what each op handles sensibly (wider than the tables, so a study can go past level 5).

Level = Annotated[int, Field(ge=1, le=LEVELS)]
Seed = Annotated[int, Field(ge=0, lt=NOISE_SEED_LIMIT)]
Quality = Annotated[int, Field(ge=1, le=95)]  # Pillow: above 95 only grows the file


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    level: Level


class Pristine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    family: Literal["pristine"]
    level: Literal[0]


class GaussianBlur(_Params):
    family: Literal["gaussian_blur"]
    sigma: float = Field(gt=0, le=20)


class MotionBlur(_Params):
    family: Literal["motion_blur"]
    length: float = Field(ge=1, le=64)
    angle_deg: float = Field(ge=0, lt=360)


class DefocusBlur(_Params):
    family: Literal["defocus_blur"]
    radius: float = Field(gt=0, le=20)


class GaussianNoise(_Params):
    family: Literal["gaussian_noise"]
    sigma: float = Field(gt=0, le=100)
    seed: Seed


class PoissonNoise(_Params):
    family: Literal["poisson_noise"]
    photons: float = Field(ge=1, le=100_000)
    seed: Seed


class Jpeg(_Params):
    family: Literal["jpeg"]
    quality: Quality


class DoubleJpeg(_Params):
    family: Literal["double_jpeg"]
    first_quality: Quality
    second_quality: Quality
    shift_y: int = Field(ge=1, le=7)
    shift_x: int = Field(ge=1, le=7)


class FakeHr(_Params):
    family: Literal["fake_hr"]
    factor: float = Field(gt=1, le=16)


class Exposure(_Params):
    family: Literal["overexposure", "underexposure"]
    stops: float = Field(gt=0, le=6)


class ContrastLoss(_Params):
    family: Literal["contrast_loss"]
    factor: float = Field(ge=0, lt=1)


class ColourCast(_Params):
    family: Literal["colour_cast"]
    strength: float = Field(gt=0, le=1)
    hue_deg: float = Field(ge=0, lt=360)


class Oversaturation(_Params):
    family: Literal["oversaturation"]
    factor: float = Field(gt=1, le=8)


class ChromaSubsampling(_Params):
    family: Literal["chroma_subsampling"]
    factor: int = Field(ge=2, le=32)


class Posterization(_Params):
    family: Literal["posterization"]
    levels: int = Field(ge=2, le=128)


PARAMS_MODELS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        PRISTINE: Pristine,
        "gaussian_blur": GaussianBlur,
        "motion_blur": MotionBlur,
        "defocus_blur": DefocusBlur,
        "gaussian_noise": GaussianNoise,
        "poisson_noise": PoissonNoise,
        "jpeg": Jpeg,
        "double_jpeg": DoubleJpeg,
        "fake_hr": FakeHr,
        "overexposure": Exposure,
        "underexposure": Exposure,
        "contrast_loss": ContrastLoss,
        "colour_cast": ColourCast,
        "oversaturation": Oversaturation,
        "chroma_subsampling": ChromaSubsampling,
        "posterization": Posterization,
    }
)


def validate_params(params: Mapping[str, Any]) -> BaseModel:
    """Parse one member's params into its family's model; ValueError names the bad key or value."""
    if not isinstance(params, Mapping):
        raise ValueError(f"distortion params must be a mapping, got {type(params).__name__}")
    family = params.get("family")
    if family not in PARAMS_MODELS:
        known = ", ".join((PRISTINE, *FAMILIES))
        raise ValueError(f"params 'family' must be one of {known}; got {family!r}")
    try:
        return PARAMS_MODELS[family].model_validate(dict(params))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"invalid params for distortion family {family}: {problems}") from None


def grid_variant(family: str, level: int) -> int:
    """The `seed_generator` variant of one grid member: fixed by the family's position and the level."""
    return FAMILIES.index(family) * VARIANT_STRIDE + level


def _check_key(image_id: str, family: str, level: int, version: int) -> None:
    if not isinstance(image_id, str) or not image_id:
        raise ValueError(f"image_id must be a non-empty string, got {image_id!r}")
    if family not in FAMILIES and family != PRISTINE:
        raise ValueError(f"unknown distortion family {family!r}; known families: {', '.join(FAMILIES)}")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= LEVELS:
        raise ValueError(f"level must be an integer in 0..{LEVELS}, got {level!r}")
    if family == PRISTINE and level != 0:
        raise ValueError(f"family {PRISTINE!r} exists only at level 0, got level {level}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"grid version must be an integer >= 0, got {version!r}")


def _random_params(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """The drawn values of one member; plain Python numbers so the dict dumps to JSON as it is."""
    if family in ("gaussian_noise", "poisson_noise"):
        return {"seed": int(rng.integers(0, NOISE_SEED_LIMIT))}
    if family == "motion_blur":
        return {"angle_deg": round(float(rng.uniform(0.0, 180.0)), 2)}
    if family == "colour_cast":
        return {"hue_deg": round(float(rng.uniform(0.0, 360.0)), 2)}
    if family == "double_jpeg":
        # Both offsets non-zero modulo 8: the second pass's blocks never line up with the first's.
        shift_y, shift_x = (int(v) for v in rng.integers(1, 8, size=2))
        return {"shift_y": shift_y, "shift_x": shift_x}
    return {}


def grid_params(image_id: str, family: str, level: int, version: int) -> dict[str, Any]:
    """Every parameter `distort` needs for one grid member; the same key always gives the same dict.

    Level 0 (any family, or family "pristine") is the pristine member ``{"family": "pristine",
    "level": 0}``. ValueError for an unknown family, a level outside 0..LEVELS or a bad id/version.
    """
    _check_key(image_id, family, level, version)
    if level == 0:
        return {"family": PRISTINE, "level": 0}
    params: dict[str, Any] = {"family": family, "level": level}
    for name, values in STRENGTHS[family].items():
        params[name] = values[level - 1]
    # Imported here: pipeline.degrade's package import pulls scipy.signal (~3 s), which serving (it only
    # needs the canvas) and `distort` (it replays recorded params) should not pay.
    from pipeline.degrade.recipe import seed_generator

    rng = seed_generator(image_id, GRID_NAME, version, grid_variant(family, level))
    params.update(_random_params(family, rng))
    validate_params(params)  # a table or a draw outside the model's ranges is a bug: fail loudly
    return dict(sorted(params.items()))


def grid(image_id: str, version: int) -> list[dict[str, Any]]:
    """All members of one reference's grid: pristine first, then each family at levels 1..LEVELS."""
    members = [grid_params(image_id, PRISTINE, 0, version)]
    for family in FAMILIES:
        members.extend(grid_params(image_id, family, level, version) for level in range(1, LEVELS + 1))
    return members
