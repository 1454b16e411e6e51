"""Matte sample index: the Parquet records of `pairs/matte_composites/<partition>/`.

One row per composite (pipeline/pairs/composites.py): a committed white-background photo's estimated
matte and foreground (pipeline.matte.estimate) placed over a seeded background (pipeline.matte.composite)
on a square canvas of `side` px. Four lossless PNG members per sample in one tar, each range-readable:
the composite `image` (RGB), its `alpha` (L, 0..255: the training target), and the placed `fg` and `bg`
it was made from (RGB; the compositional loss). `params` (JSON) regenerate the four bit for bit from the
stored photo; `background` is its background kind; `matte_confidence` is the source matte's (1 - its soft
band's share of the product). `split` is the source image's (by product), never per sample.

Photos that give no composites are in the pair skip ledger (`schemas.pairs.PAIR_SKIP_SCHEMA`, recipe
matte_composites, variant 0) with a reason code (matte_not_white_background, matte_empty,
matte_unreliable, decode_error).
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1
MEMBERS = ("image", "alpha", "fg", "bg")  # the PNG members of one sample, in tar order

MATTE_SAMPLE_SCHEMA = declare(
    "matte_samples",
    VERSION,
    [
        pa.field("sample_id", pa.string(), nullable=False),  # f"{image_id}_c{variant}"
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("recipe", pa.string(), nullable=False),  # "matte_composites"
        pa.field("composite_version", pa.int32(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("background", pa.string(), nullable=False),  # scene | texture | gradient | noise | solid
        pa.field("params", pa.string(), nullable=False),  # JSON (sorted keys)
        pa.field("matte_confidence", pa.float64(), nullable=False),  # 0..1
        pa.field("alpha_mean", pa.float64(), nullable=False),  # the composite's alpha, 0..1
        pa.field("side", pa.int32(), nullable=False),
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
