"""Degradation recipes, aligned tiling and quality labels for LR/HR training pairs.

In: a recipe name (and optionally a config override). Out: a ready `Recipe` from `get_recipe`.
`RECIPES` maps every known name to its config model and constructor; it is read-only.

Typical use, one pair::

    recipe = get_recipe("realworld_x4")
    params = recipe.sample_params(SeedKey(image_id, variant=0))   # record these with the pair
    hr, lr = recipe.crop_hr(image), recipe.apply(image, params)     # regenerates bit for bit
    get_recipe(record["recipe"], version=record["recipe_version"])  # the recipe a stored pair was made by
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.degrade.bicubic import BicubicConfig, BicubicRecipe, bicubic_downscale, bicubic_upscale
from pipeline.degrade.kernels import BlurConfig
from pipeline.degrade.ops import NoiseConfig
from pipeline.degrade.realworld import VERSIONS as REALWORLD_VERSIONS
from pipeline.degrade.realworld import RealworldConfig, RealworldRecipe, StageConfig
from pipeline.degrade.recipe import Recipe, SeedKey, Severity
from pipeline.degrade.restore import (
    MIXED_VERSIONS,
    JpegConfig,
    RestoreBlur,
    RestoreJpeg,
    RestoreMixed,
    RestoreNoise,
)
from pipeline.degrade.restore import VERSIONS as RESTORE_VERSIONS


@dataclass(frozen=True)
class RecipeEntry:
    """How to build one named recipe: its config model, a constructor taking a validated config and a
    version, and the versions it has (the last one is what new pairs use)."""

    config_model: type[BaseModel]
    build: Callable[[Any, int], Recipe]
    versions: tuple[int, ...] = (1,)
    default_config: Callable[[int], BaseModel] | None = None  # per version; else config_model()


RECIPES: Mapping[str, RecipeEntry] = MappingProxyType(
    {
        "bicubic_x2": RecipeEntry(BicubicConfig, lambda cfg, _: BicubicRecipe(2, cfg)),
        "bicubic_x3": RecipeEntry(BicubicConfig, lambda cfg, _: BicubicRecipe(3, cfg)),
        "bicubic_x4": RecipeEntry(BicubicConfig, lambda cfg, _: BicubicRecipe(4, cfg)),
        "realworld_x2": RecipeEntry(
            RealworldConfig, lambda cfg, v: RealworldRecipe(2, cfg, v), REALWORLD_VERSIONS
        ),
        "realworld_x4": RecipeEntry(
            RealworldConfig, lambda cfg, v: RealworldRecipe(4, cfg, v), REALWORLD_VERSIONS
        ),
        "restore_x1_noise": RecipeEntry(
            NoiseConfig, RestoreNoise, RESTORE_VERSIONS, RestoreNoise.default_config
        ),
        "restore_x1_blur": RecipeEntry(BlurConfig, RestoreBlur, RESTORE_VERSIONS, RestoreBlur.default_config),
        "restore_x1_jpeg": RecipeEntry(JpegConfig, RestoreJpeg, RESTORE_VERSIONS, RestoreJpeg.default_config),
        "restore_x1_mixed": RecipeEntry(
            StageConfig, RestoreMixed, MIXED_VERSIONS, RestoreMixed.default_config
        ),
    }
)


def get_recipe(
    name: str, config: BaseModel | Mapping[str, Any] | None = None, version: int | None = None
) -> Recipe:
    """The recipe called `name`, with its default config or `config` (a model or a plain mapping), at
    `version` (default: the latest; pass a pair record's `recipe_version` to regenerate it).

    Raises ValueError listing the known recipes for an unknown name, the known versions for an unknown
    version, and naming the field for a bad config.
    """
    entry = RECIPES.get(name)
    if entry is None:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    if version is None:
        version = entry.versions[-1]
    elif version not in entry.versions:
        raise ValueError(f"recipe {name} has versions {entry.versions}, not {version!r}")
    default = entry.default_config(version) if entry.default_config else entry.config_model()
    if config is None:
        parsed = default
    elif isinstance(config, entry.config_model):
        parsed = config
    elif isinstance(config, Mapping):  # fields given replace those of the version's default
        try:
            parsed = entry.config_model.model_validate({**default.model_dump(), **dict(config)})
        except ValidationError as err:
            raise ValueError(f"invalid config for recipe {name}: {err}") from None
    else:
        raise ValueError(f"config for recipe {name} must be a {entry.config_model.__name__} or a mapping")
    return entry.build(parsed, version)


__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeEntry",
    "SeedKey",
    "Severity",
    "bicubic_downscale",
    "bicubic_upscale",
    "get_recipe",
]
