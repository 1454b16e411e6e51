"""Make the quality grid of one committed image shard: the per-shard function of the `quality_grid` family.

In: the same arguments as `make_pairs_for_shard` (storage root and options, one `InputShard`, its
image-index rows, the family name, a `PairsConfig` whose `quality_grid` section applies, the attempt
folder). Out: a `ShardOutput` whose records follow `schemas.quality_samples.QUALITY_SAMPLE_SCHEMA` and
whose skips follow the pair skip ledger.

Per image (sorted by image_id): decode the stored bytes, skip it with `too_small` when its long side is
below `min_long_side` (`decode_error` for bytes Pillow cannot decode), make its quality canvas
(`pipeline.distort.quality_canvas` at the grid version's canvas version), then write the pristine canvas
and, for every family and level, the canvas distorted with params seeded by (image_id, family, level) —
each a lossless PNG member of the output tar — with its target score and full-reference anchors
(`pipeline.distort.target`). The members are written in a fixed order with byte-deterministic tars, so
any worker count and any rerun gives the same bytes; regenerating a sample is
`distort(quality_canvas(stored image, side, canvas_version(grid_version)), params)`.

Grid versions: 1 made version-1 canvases; 2 (2026-12-08) makes version-2 canvases, a cheaper shrink for
serving (pipeline/distort/canvas.py), and, as the version is part of every seed key, new draws of the
random params. Version-1 samples still regenerate bit for bit with `canvas_version(1)` and their params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.distort import (
    LEVELS,
    PRISTINE,
    FidelityReference,
    distort,
    grid_params,
    quality_canvas,
    targets_from_fr,
)
from pipeline.pairs.config import QUALITY_GRID, PairsConfig
from pipeline.pairs.make import (
    InputShard,
    ShardOutput,
    decode_or_skip,
    image_skip,
    map_images,
    params_json,
    sample_source,
)
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from pipeline.tile_codec import encode_tile
from schemas.reasons import Reason

MEMBER = "png"
GRID_VERSION = 2  # the seed key's version: a change of any family's bytes is a new version
CANVAS_OF_GRID = {1: 1, 2: 2}  # grid version -> the quality canvas version its samples were made on


def canvas_version(grid_version: int) -> int:
    """The quality canvas version (pipeline.distort.canvas) of samples of `grid_version`."""
    if grid_version not in CANVAS_OF_GRID:
        raise ValueError(f"unknown quality grid version {grid_version!r}; known: {sorted(CANVAS_OF_GRID)}")
    return CANVAS_OF_GRID[grid_version]


def sample_id(image_id: str, family: str, level: int) -> str:
    return f"{image_id}_{family}_{level}"


def make_quality_grid_for_shard(
    storage_root: str,
    storage_options: Mapping[str, Any],
    shard: InputShard,
    index_rows: Sequence[Mapping[str, Any]],
    recipe_name: str,
    config: PairsConfig,
    output_dir: str,
) -> ShardOutput:
    """The grid of every image of `shard`; the tars are written under `output_dir` (storage-relative)."""
    if recipe_name != QUALITY_GRID:
        raise ValueError(f"make_quality_grid_for_shard makes {QUALITY_GRID}, not {recipe_name!r}")
    return map_images(
        Storage(storage_root, dict(storage_options)),
        shard,
        index_rows,
        output_dir,
        config.shard_target_bytes,
        lambda member, row, writer: _grid_of_image(member, row, config, shard, writer),
    )


def grid_members(canvas: np.ndarray, image_id: str, families: Sequence[str]):
    """(family, level, params, pixels) of the pristine canvas, then every family at levels 1..LEVELS."""
    yield PRISTINE, 0, grid_params(image_id, PRISTINE, 0, GRID_VERSION), canvas
    for family in families:
        for level in range(1, LEVELS + 1):
            params = grid_params(image_id, family, level, GRID_VERSION)
            yield family, level, params, distort(canvas, params)


def _grid_of_image(
    member: bytes, row: Mapping[str, Any], config: PairsConfig, shard: InputShard, writer: ShardWriter
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    grid = config.quality_grid
    common = sample_source(row, QUALITY_GRID, shard)
    image_id = common["image_id"]
    image, skips = decode_or_skip(member, common)
    if image is None:
        return [], skips, 0
    height, width = image.shape[:2]
    if max(height, width) < grid.min_long_side:
        detail = f"long side {max(height, width)} px < quality_grid.min_long_side={grid.min_long_side}"
        return [], [image_skip(common, Reason.TOO_SMALL, detail, width, height)], 0
    canvas = quality_canvas(image, grid.canvas_long_side, canvas_version(GRID_VERSION))
    members = list(grid_members(canvas, image_id, grid.family_names()))
    reference = FidelityReference(canvas)
    anchors = [reference.measures(pixels) for _, _, _, pixels in members]
    targets = {(PRISTINE, 0): 5.0}
    for family in grid.family_names():
        frs = [a["fr"] for (fam, _, _, _), a in zip(members, anchors, strict=True) if fam == family]
        for level, score in enumerate(targets_from_fr(frs), start=1):
            targets[(family, level)] = float(score)
    records = []
    for (family, level, params, pixels), measured in zip(members, anchors, strict=True):
        key = sample_id(image_id, family, level)
        location = writer.add(key, {MEMBER: encode_tile(pixels, "png", config.png_compress_level)})
        offset, size = location.members[MEMBER]
        records.append(
            {
                **common,
                "sample_id": key,
                "group_id": image_id,
                "split": row["split"],
                "grid_version": GRID_VERSION,
                "family": family,
                "level": level,
                "params": params_json(params),
                "target": targets[(family, level)],
                "ssim_y": float(measured["ssim_y"]),
                "colour_fidelity": float(measured["colour_fidelity"]),
                "fr": float(measured["fr"]),
                "width": int(canvas.shape[1]),
                "height": int(canvas.shape[0]),
                "canvas_long_side": grid.canvas_long_side,
                "shard": location.shard,
                "offset": offset,
                "size": size,
                "image_width": width,
                "image_height": height,
            }
        )
    return records, [], canvas.shape[0] * canvas.shape[1] * len(members)
