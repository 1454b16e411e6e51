"""Make the matte composites of one committed image shard: the per-shard function of `matte_composites`.

In: the same arguments as `make_pairs_for_shard` (storage root and options, one `InputShard`, its
image-index rows, the family name, a `PairsConfig` whose `matte` section applies, the attempt folder).
Out: a `ShardOutput` whose records follow `schemas.matte_samples.MATTE_SAMPLE_SCHEMA` and whose skips
follow the pair skip ledger.

Per image (sorted by image_id): decode the stored bytes (`decode_error` when Pillow cannot), estimate its
matte (pipeline.matte.estimate; a photo whose matte is unusable is one skip with the estimator's reason
and measure), then write `matte.variants` composites, each with params seeded by (image_id, variant) over
the scene photos of `matte.scenes` (read once per shard, checked against their manifest): four PNG members
per sample (`<key>.image.png`, `.alpha.png`, `.fg.png`, `.bg.png`). Members are written in a fixed order into byte-deterministic tars, so
any worker count and any rerun give the same bytes; regenerating a sample is `compose(estimate_matte(stored
image), params, side, scenes)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.matte import COMPOSITE_VERSION, COMPOSITES, compose, composite_params, estimate_matte
from pipeline.matte.config import CompositesConfig
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.make import (
    InputShard,
    ShardOutput,
    decode_hr,
    decode_or_skip,
    image_skip,
    map_images,
    params_json,
    sample_source,
)
from pipeline.reference_sets import read_files
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from pipeline.tile_codec import encode_tile
from schemas.matte_samples import MEMBERS


def sample_id(image_id: str, variant: int) -> str:
    return f"{image_id}_c{variant}"


def load_scenes(storage: Storage, config: CompositesConfig) -> dict[str, np.ndarray]:
    """Scene name -> uint8 H x W x 3 photo of the `matte.scenes` reference set ({} when none is set)."""
    if config.scenes is None:
        return {}
    files = read_files("scenes", config.scenes, storage, "pairs.matte.scenes")
    return {name: decode_hr(data) for name, data in sorted(files.items())}


def make_composites_for_shard(
    storage_root: str,
    storage_options: Mapping[str, Any],
    shard: InputShard,
    index_rows: Sequence[Mapping[str, Any]],
    recipe_name: str,
    config: PairsConfig,
    output_dir: str,
) -> ShardOutput:
    """The composites of every image of `shard`; the tars are written under `output_dir` (storage-relative)."""
    if recipe_name != COMPOSITES:
        raise ValueError(f"make_composites_for_shard makes {COMPOSITES}, not {recipe_name!r}")
    storage = Storage(storage_root, dict(storage_options))
    scenes = load_scenes(storage, config.matte)
    return map_images(
        storage,
        shard,
        index_rows,
        output_dir,
        config.shard_target_bytes,
        lambda member, row, writer: _composites_of_image(member, row, config, shard, scenes, writer),
    )


def _composites_of_image(
    member: bytes,
    row: Mapping[str, Any],
    config: PairsConfig,
    shard: InputShard,
    scenes: Mapping[str, np.ndarray],
    writer: ShardWriter,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    matte = config.matte
    common = sample_source(row, COMPOSITES, shard)
    image_id = common["image_id"]
    photo, skips = decode_or_skip(member, common)
    if photo is None:
        return [], skips, 0
    height, width = photo.shape[:2]
    estimate = estimate_matte(photo, matte.matte)
    if estimate.reason is not None:
        return [], [image_skip(common, estimate.reason, estimate.detail, width, height)], 0
    names = sorted(scenes)
    records = []
    for variant in range(matte.variants):
        params = composite_params(image_id, variant, names)
        sample = compose(estimate.alpha, estimate.foreground, params, matte.side, scenes)
        key = sample_id(image_id, variant)
        pixels = (sample.image, sample.alpha, sample.foreground, sample.background)
        members = {f"{name}.png": encode_tile(p, "png", config.png_compress_level)
                   for name, p in zip(MEMBERS, pixels, strict=True)}  # fmt: skip
        location = writer.add(key, members)
        spans = {f"{name}_{part}": value for name in MEMBERS
                 for part, value in zip(("offset", "size"), location.members[f"{name}.png"], strict=True)}  # fmt: skip
        records.append(
            {
                **common,
                **spans,
                "sample_id": key,
                "split": row["split"],
                "composite_version": COMPOSITE_VERSION,
                "variant": variant,
                "background": params["background"]["kind"],
                "params": params_json(params),
                "matte_confidence": estimate.confidence,
                "alpha_mean": float(sample.alpha.mean() / 255.0),
                "side": matte.side,
                "shard": location.shard,
                "image_width": width,
                "image_height": height,
            }
        )
    return records, [], matte.side * matte.side * matte.variants
