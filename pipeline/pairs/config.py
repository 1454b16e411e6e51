"""Configure pair generation: which recipes, how many variants, tile geometry, shard size, the Dask cluster.

In: keyword values (CLI flags, settings YAML, DAG Params) or nothing (documented defaults). Out: a frozen
`PairsConfig`, validated as a whole before any work starts: an unknown recipe, a recipe override outside
its ranges, a tile that is not a multiple of a recipe's scale or an overlap that leaves no stride raise
ValueError naming the field and the fix. `recipe(name)` returns the configured `Recipe`. Besides the SR
recipes, `recipes` may name the `quality_grid` sample family (distortion grids for the quality model),
configured by `quality_grid` (`QualityGridConfig`), and the `matte_composites` family (background-removal
composites, pipeline/matte), configured by `matte` (`pipeline.matte.config.CompositesConfig`).

Only the fields in `OUTPUT_FIELDS` change the bytes written; `output_key()` is the part of a pairs
partition's content key that comes from the config (workers, scheduler and retries do not change output).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.cluster import SCHEDULER_ENV
from pipeline.degrade import RECIPES, Recipe, get_recipe
from pipeline.degrade.labels import LabelConfig
from pipeline.degrade.tiles import TileConfig
from pipeline.matte.composite import COMPOSITES as MATTE_COMPOSITES  # pipeline/pairs/composites.py
from pipeline.matte.config import CompositesConfig
from pipeline.tile_codec import TileCodec, encode_tile
from pipeline.video.clips import CLIPS as SYNTHETIC_CLIPS  # pipeline/pairs/clips.py
from pipeline.video.config import ClipsConfig

OUTPUT_FIELDS = (
    "recipe_overrides",
    "variants",
    "hr_tile",
    "overlap",
    "min_tile",
    "shard_target_bytes",
    "png_compress_level",
    "hr_codec",
    "zstd_level",
    "flat_tile_std",
    "labels",
)
MIN_TILE_FLOOR = 32  # SSIM-Y needs 11x11 px left after shaving `scale` px per border
QUALITY_GRID = "quality_grid"  # the sample family of the learned quality model (pipeline/pairs/grid.py)

SAMPLE_FAMILIES = (QUALITY_GRID, MATTE_COMPOSITES, SYNTHETIC_CLIPS)  # the families that are not SR recipes


class QualityGridConfig(BaseModel):
    """The quality grid: every distortion family at every level, plus the pristine canvas, per image.

    All fields change the output bytes; they are the grid's part of its partitions' content key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canvas_long_side: int = Field(
        default=384, ge=64, le=2048
    )  # what the model sees (pipeline.distort.canvas)
    min_long_side: int = Field(
        default=192, ge=32
    )  # smaller sources are skipped (too_small), not upscaled 2x+
    families: tuple[str, ...] | None = None  # a subset of pipeline.distort.FAMILIES; None = all of them

    @model_validator(mode="after")
    def _known_families(self) -> QualityGridConfig:
        from pipeline.distort import FAMILIES

        unknown = [f for f in self.families or () if f not in FAMILIES]
        if unknown or (self.families is not None and not self.families):
            raise ValueError(
                f"quality_grid.families {list(self.families or ())} must be a non-empty subset of {list(FAMILIES)}"
            )
        return self

    def family_names(self) -> tuple[str, ...]:
        from pipeline.distort import FAMILIES

        return tuple(f for f in FAMILIES if self.families is None or f in self.families)


class PairsConfig(BaseModel):
    """Pair generation settings. Defaults: bicubic_x4, one variant per image, 480 px HR tiles, no overlap,
    zstd HR and PNG LR tiles, blank tiles skipped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipes: tuple[str, ...] = ("bicubic_x4",)
    # per-recipe config overrides, e.g. {"realworld_x4": {"final_sinc_prob": 0.5}}; validated by the recipe
    recipe_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    variants: int = 1  # degraded versions per image and recipe (variant index is part of the seed)
    hr_tile: int = 480  # HR tile side in px; must be a multiple of every recipe's scale
    overlap: int = 0  # HR px shared by neighbouring tiles
    min_tile: int = 96  # an image whose modcropped short side is below this is skipped (reason too_small)
    shard_target_bytes: int = 256 * 1024 * 1024  # an output shard rolls over past this size
    png_compress_level: int = 1  # zlib level of PNG tiles: 1 is fast and only ~10 % bigger
    # HR tile codec: zstd'd raw pixels encode ~10x faster than PNG for ~25 % more bytes (pipeline.tile_codec)
    hr_codec: TileCodec = "zstd"
    zstd_level: int = 1
    # HR tiles whose luma std (every 2nd pixel) is below this are blank background: skipped as flat_tile
    # (on the product photos 12 % of 480 px tiles, all >= 60 dB for bicubic); 0 keeps every tile
    flat_tile_std: float = 2.0
    workers: int | None = None  # LocalCluster worker processes; None = one per core
    scheduler_address: str | None = None  # a running Dask scheduler; None = DASK_SCHEDULER_ADDRESS or local
    retries: int = 2  # Dask task retries on an exception (worker loss is retried by the scheduler)
    labels: LabelConfig = Field(default_factory=LabelConfig)  # quality score weights (see degrade.labels)
    quality_grid: QualityGridConfig = Field(default_factory=QualityGridConfig)  # the quality_grid family
    matte: CompositesConfig = Field(default_factory=CompositesConfig)  # the matte_composites family
    clips: ClipsConfig = Field(default_factory=ClipsConfig)  # the synthetic_clips_x4 family

    @field_validator("recipes", mode="before")
    @classmethod
    def _as_tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else tuple(value)

    @model_validator(mode="after")
    def _check(self) -> PairsConfig:
        known = sorted([*RECIPES, *SAMPLE_FAMILIES])
        if not self.recipes:
            raise ValueError("recipes is empty: name at least one of " + ", ".join(known))
        unknown = [r for r in self.recipes if r not in known] + [
            r for r in self.recipe_overrides if r not in RECIPES
        ]
        if unknown:
            raise ValueError(f"unknown recipe(s) {unknown}; known recipes: {', '.join(known)}")
        if len(set(self.recipes)) != len(self.recipes):
            raise ValueError(f"recipes lists a recipe twice: {list(self.recipes)}")
        _at_least(self.variants, 1, "variants", "generate at least one variant per image")
        _at_least(self.hr_tile, 8, "hr_tile", "use a tile of at least 8 px, e.g. 480")
        if not 0 <= self.overlap < self.hr_tile:
            raise ValueError(f"overlap={self.overlap} must be >= 0 and smaller than hr_tile={self.hr_tile}")
        if not MIN_TILE_FLOOR <= self.min_tile <= self.hr_tile:
            raise ValueError(
                f"min_tile={self.min_tile} must be between {MIN_TILE_FLOOR} and hr_tile={self.hr_tile}"
            )
        _at_least(self.shard_target_bytes, 1 << 16, "shard_target_bytes", "use at least 64 KiB")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level={self.png_compress_level} must be in 0..9 (zlib levels)")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level={self.zstd_level} must be in 1..22")
        if self.flat_tile_std < 0:
            raise ValueError(f"flat_tile_std={self.flat_tile_std} must be >= 0 (0 keeps every tile)")
        if self.workers is not None:
            _at_least(self.workers, 1, "workers", "leave it unset for one worker per core")
        _at_least(self.retries, 0, "retries", "use 0 to disable retries")
        for name in (r for r in self.recipes if r not in SAMPLE_FAMILIES):
            scale = self.recipe(name).scale  # builds the recipe: a bad override raises here
            if self.hr_tile % scale:
                raise ValueError(
                    f"hr_tile={self.hr_tile} is not a multiple of recipe {name}'s scale {scale}; "
                    f"use a multiple of {scale} (480 suits scales 2, 3 and 4) so HR and LR tiles stay aligned"
                )
        return self

    def tiles(self) -> TileConfig:
        """The tiling geometry handed to `pipeline.degrade.tiles.tile_pair`."""
        return TileConfig(hr_tile=self.hr_tile, overlap=self.overlap, min_hr_side=self.min_tile)

    def encode_hr_tile(self, pixels: np.ndarray) -> bytes:
        """An HR tile's member bytes: `hr_codec` at its level (`zstd_level` or `png_compress_level`)."""
        level = self.zstd_level if self.hr_codec == "zstd" else self.png_compress_level
        return encode_tile(pixels, self.hr_codec, level)

    def recipe(self, name: str) -> Recipe:
        """The configured SR recipe `name` (ValueError for an unknown name or an override out of range)."""
        return get_recipe(name, self.recipe_overrides.get(name))

    def resolved_scheduler(self) -> str | None:
        """The scheduler to connect to: this config's, else DASK_SCHEDULER_ADDRESS, else None (local)."""
        return self.scheduler_address or os.environ.get(SCHEDULER_ENV) or None

    def output_key(self) -> dict[str, Any]:
        """The settings that determine the output bytes (goes into the partition's content key)."""
        return self.model_dump(mode="json", include=set(OUTPUT_FIELDS))


def _at_least(value: int, low: int, field: str, fix: str) -> None:
    if value < low:
        raise ValueError(f"{field}={value} must be >= {low}: {fix}")
