"""Make the synthetic clips of one committed image shard: the per-shard function of `synthetic_clips_x4`.

In: the same arguments as `make_pairs_for_shard` (storage root and options, one `InputShard`, its
image-index rows, the family name, a `PairsConfig` whose `clips` section applies, the attempt folder).
Out: a `ShardOutput` whose records follow `schemas.clip_samples.CLIP_SAMPLE_SCHEMA` and whose skips follow
the pair skip ledger.

Per image (sorted by image_id): decode the stored bytes (`decode_error` when Pillow cannot), then render
`clips.variants` clips, each with params seeded by (image_id, variant) (pipeline/video/clips.py); a clip
whose centre HR frame is blank is a `flat_tile` skip (with its variant). Two PNG members per clip
(`<key>.hr.png`, `<key>.lr.png`: the frames stacked top to bottom), written in a fixed order into
byte-deterministic tars, so any worker count and any rerun give the same bytes; regenerating a clip is
`render_clip(stored image, params, clips config)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.pairs.config import PairsConfig
from pipeline.pairs.make import (
    InputShard,
    ShardOutput,
    decode_or_skip,
    image_skip,
    is_flat,
    map_images,
    params_json,
    sample_source,
)
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from pipeline.tile_codec import encode_tile
from pipeline.video.clips import (
    CLIPS,
    CLIPS_VERSION,
    SCALE,
    clip_params,
    mean_motion_lr,
    product_box,
    render_clip,
    stack_frames,
)
from schemas.clip_samples import MEMBERS
from schemas.reasons import Reason


def sample_id(image_id: str, variant: int) -> str:
    return f"{image_id}_v{variant}"


def make_clips_for_shard(
    storage_root: str,
    storage_options: Mapping[str, Any],
    shard: InputShard,
    index_rows: Sequence[Mapping[str, Any]],
    recipe_name: str,
    config: PairsConfig,
    output_dir: str,
) -> ShardOutput:
    """The clips of every image of `shard`; the tars are written under `output_dir` (storage-relative)."""
    if recipe_name != CLIPS:
        raise ValueError(f"make_clips_for_shard makes {CLIPS}, not {recipe_name!r}")
    storage = Storage(storage_root, dict(storage_options))
    return map_images(
        storage,
        shard,
        index_rows,
        output_dir,
        config.shard_target_bytes,
        lambda member, row, writer: _clips_of_image(member, row, config, shard, writer),
    )


def _clips_of_image(
    member: bytes, row: Mapping[str, Any], config: PairsConfig, shard: InputShard, writer: ShardWriter
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    clips = config.clips
    common = sample_source(row, CLIPS, shard)
    image_id = common["image_id"]
    photo, skips = decode_or_skip(member, common)
    if photo is None:
        return [], skips, 0
    height, width = photo.shape[:2]
    box = product_box(photo)
    records = []
    for variant in range(clips.variants):
        params = clip_params(image_id, variant, photo.shape, clips, box)
        clip = render_clip(photo, params, clips)
        if is_flat(clip.hr[clips.frames // 2], clips.flat_std):
            detail = f"the centre frame's luma std is under clips.flat_std={clips.flat_std:g}"
            skips.append({**image_skip(common, Reason.FLAT_TILE, detail, width, height), "variant": variant})
            continue
        key = sample_id(image_id, variant)
        members = {f"{name}.png": encode_tile(stack_frames(frames), "png", config.png_compress_level)
                   for name, frames in zip(MEMBERS, (clip.hr, clip.lr), strict=True)}  # fmt: skip
        location = writer.add(key, members)
        spans = {f"{name}_{part}": value for name in MEMBERS
                 for part, value in zip(("offset", "size"), location.members[f"{name}.png"], strict=True)}  # fmt: skip
        records.append(
            {
                **common,
                **spans,
                "sample_id": key,
                "split": row["split"],
                "clip_version": CLIPS_VERSION,
                "variant": variant,
                "frames": clips.frames,
                "scale": SCALE,
                "side": clips.side,
                "params": params_json(params),
                "motion_lr": mean_motion_lr(params),
                "shard": location.shard,
                "image_width": width,
                "image_height": height,
            }
        )
    return records, skips, clips.frames * clips.side * clips.side * clips.variants
