"""Quality sample index: the Parquet records of `pairs/quality_grid/<partition>/`.

One row per sample of the learned quality model's distortion grid (pipeline/pairs/grid.py): the image's
quality canvas (pipeline.distort.canvas, long side `canvas_long_side`) either pristine (`family`
"pristine", `level` 0, target 5) or distorted by one family at one level (1 mildest .. 5 most severe),
stored as a lossless PNG member (one range read), with the recorded `params` (JSON) that regenerate it bit
for bit from the stored image, the training `target` in [0, 5] (higher is better; pipeline.distort.target
defines it from the full-reference anchors recorded beside it: luma SSIM, colour fidelity and their
product `fr`) and the ranking group (`group_id`: the reference image, so every level of every family of
one photo ranks together). `split` is the source image's (by product), never per sample.

Images that give no samples are in the pair skip ledger (`schemas.pairs.PAIR_SKIP_SCHEMA`, recipe
quality_grid, variant 0) with a reason code.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1
PRISTINE = "pristine"  # the family name of a grid's undistorted member

QUALITY_SAMPLE_SCHEMA = declare(
    "quality_samples",
    VERSION,
    [
        pa.field("sample_id", pa.string(), nullable=False),  # f"{image_id}_{family}_{level}"
        pa.field("image_id", pa.string(), nullable=False),  # the reference image
        pa.field("group_id", pa.string(), nullable=False),  # ranking group (= image_id of the reference)
        pa.field("product_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("recipe", pa.string(), nullable=False),  # "quality_grid"
        pa.field("grid_version", pa.int32(), nullable=False),
        pa.field("family", pa.string(), nullable=False),  # a pipeline.distort family, or "pristine"
        pa.field("level", pa.int32(), nullable=False),  # 0 pristine, 1..5 increasing severity
        pa.field("params", pa.string(), nullable=False),  # JSON of the distortion params (sorted keys)
        pa.field("target", pa.float64(), nullable=False),  # training target in [0, 5], higher is better
        pa.field("ssim_y", pa.float64(), nullable=False),  # anchors of the target, vs the pristine canvas
        pa.field("colour_fidelity", pa.float64(), nullable=False),
        pa.field("fr", pa.float64(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),  # the canvas
        pa.field("height", pa.int32(), nullable=False),
        pa.field("canvas_long_side", pa.int32(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),  # role name, e.g. shards/000003.tar
        pa.field("offset", pa.int64(), nullable=False),  # of the PNG member in the shard
        pa.field("size", pa.int64(), nullable=False),
        pa.field("image_width", pa.int32(), nullable=False),  # the source image, before the canvas
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("source_partition", pa.string(), nullable=False),
        pa.field("source_shard", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ],
)
