"""Pair index and pair skip ledger: the Parquet records of `pairs/<recipe>/<partition>/`.

`PAIR_INDEX_SCHEMA` holds one row per aligned (HR tile, LR tile) pair: where both tile members sit in
their tar shard (one range read each), the recipe, version, scale and the recorded `params` (JSON) that
regenerate the LR bit for bit, the severity components read from those params, the full-reference labels
(PSNR-Y / SSIM-Y of the bicubic-upsampled LR against HR, standard protocol) and the derived
`quality_score` in [0, 5] with its `quality_class`, and no-reference metrics measured on the LR tile.

`PAIR_SKIP_SCHEMA` holds one row per (image, variant) that produced no pair, with a reason code from
`schemas.reasons.Reason` (HR smaller than the tile or scale allows, undecodable bytes...), and one row per
tile dropped as blank (`flat_tile`, with its `tile_y`/`tile_x`), so no input disappears silently.

Version 2 of both: HR members may be zstd `.npy` (`pipeline.tile_codec`) as well as PNG, tiles split each
axis evenly (`pipeline.degrade.tiles`), and skips gained `tile_y`/`tile_x` (null for a whole image).

`partition` is the output partition (= the source image partition's date); `source_partition` and
`source_shard` name the image partition and shard the HR came from.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 2
SKIP_VERSION = 2

PAIR_INDEX_SCHEMA = declare(
    "pair_index",
    VERSION,
    [
        pa.field("pair_id", pa.string(), nullable=False),  # f"{image_id}_{variant}_{tile_y}_{tile_x}"
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("recipe", pa.string(), nullable=False),
        pa.field("recipe_version", pa.int32(), nullable=False),
        pa.field("scale", pa.int32(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("tile_y", pa.int32(), nullable=False),  # top-left of the HR tile in the modcropped HR
        pa.field("tile_x", pa.int32(), nullable=False),
        pa.field("hr_width", pa.int32(), nullable=False),
        pa.field("hr_height", pa.int32(), nullable=False),
        pa.field("lr_width", pa.int32(), nullable=False),
        pa.field("lr_height", pa.int32(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),  # role name, e.g. shards/000003.tar
        pa.field("hr_offset", pa.int64(), nullable=False),
        pa.field("hr_size", pa.int64(), nullable=False),
        pa.field("lr_offset", pa.int64(), nullable=False),
        pa.field("lr_size", pa.int64(), nullable=False),
        pa.field("params", pa.string(), nullable=False),  # JSON of the recipe params (sorted keys)
        pa.field("psnr_y", pa.float64(), nullable=False),
        pa.field("ssim_y", pa.float64(), nullable=False),
        pa.field("quality_score", pa.float64(), nullable=False),
        pa.field("quality_class", pa.string(), nullable=False),
        # severity components read from params (not measured): Gaussian-sigma equivalent blur in HR px,
        # noise sigma in 8-bit levels, lowest JPEG quality applied (100 = none)
        pa.field("blur_sigma", pa.float64(), nullable=False),
        pa.field("noise_sigma", pa.float64(), nullable=False),
        pa.field("jpeg_quality", pa.int32(), nullable=False),
        # no-reference metrics of the LR tile (pipeline.clean.quality.measure, as at ingest)
        pa.field("lr_sharpness", pa.float64(), nullable=False),
        pa.field("lr_noise_sigma", pa.float64(), nullable=False),
        pa.field("lr_blockiness", pa.float64(), nullable=False),
        pa.field("image_width", pa.int32(), nullable=False),  # the source HR's size, before modcrop
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("source_partition", pa.string(), nullable=False),
        pa.field("source_shard", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ],
)

PAIR_SKIP_SCHEMA = declare(
    "pair_skips",
    SKIP_VERSION,
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("recipe", pa.string(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # a schemas.reasons.Reason value
        pa.field("detail", pa.string()),
        pa.field("tile_y", pa.int32()),  # the dropped tile of a flat_tile skip; null when the whole image was
        pa.field("tile_x", pa.int32()),
        pa.field("image_width", pa.int32()),
        pa.field("image_height", pa.int32()),
        pa.field("source_partition", pa.string(), nullable=False),
        pa.field("source_shard", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ],
)
