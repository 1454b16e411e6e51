"""Clip sample index: the Parquet records of `pairs/synthetic_clips_x4/<partition>/`.

One row per synthetic clip (pipeline/video/clips.py): a committed product photo filmed by a seeded, known
camera motion (a sub-pixel pan with a slight turn and zoom), `frames` HR frames of `side` px and their
bicubic x4 LR frames. Two lossless PNG members per sample in one tar, each range-readable: `hr` (the HR
frames stacked top to bottom: frames*side x side x 3) and `lr` (likewise at side/4). `params` (JSON)
hold every frame's 2 x 3 matrix (photo pixel <- frame pixel) and regenerate the clip bit for bit from the
stored photo; `motion_lr` is the mean displacement between neighbouring frames in LR px. `split` is the
source image's (by product), never per clip.

Photos that give no clip, and clips that film only blank background, are in the pair skip ledger
(`schemas.pairs.PAIR_SKIP_SCHEMA`, recipe synthetic_clips_x4) with a reason code (flat_tile, decode_error).
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1
MEMBERS = ("hr", "lr")  # the PNG members of one clip, in tar order

CLIP_SAMPLE_SCHEMA = declare(
    "clip_samples",
    VERSION,
    [
        pa.field("sample_id", pa.string(), nullable=False),  # f"{image_id}_v{variant}"
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("recipe", pa.string(), nullable=False),  # "synthetic_clips_x4"
        pa.field("clip_version", pa.int32(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("scale", pa.int32(), nullable=False),
        pa.field("side", pa.int32(), nullable=False),  # HR frame side
        pa.field("params", pa.string(), nullable=False),  # JSON (sorted keys)
        pa.field("motion_lr", pa.float64(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        *[
            pa.field(f"{member}_{part}", pa.int64(), nullable=False)
            for member in MEMBERS
            for part in ("offset", "size")
        ],
        pa.field("image_width", pa.int32(), nullable=False),  # the source photo
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("source_partition", pa.string(), nullable=False),
        pa.field("source_shard", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ],
)
