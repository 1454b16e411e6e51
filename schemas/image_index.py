"""Image index record: one row per accepted image of an `images/<date>` partition.

The core columns are the contract every later stage relies on (pairs, training, `crisp upscale`):
image_id (content hash of the decoded pixels), product_id, url, split, shard / offset / size (one range
read returns the stored image bytes, the member "<image_id>.<jpg|png>"), width, height, format (the
*stored* format, "jpeg" or "png"), phash (the 64-bit perceptual hash's bit pattern as int64) and partition.

Version 2 adds `color_signature` (COLOR_SIGNATURE_BYTES bytes: mean CIELAB of an 8x8 grid, see
pipeline/clean/hashing.py), which near-duplicate detection compares next to the pHash. It is nullable:
a null means "colour unknown" (rows kept from a version 1 index by --retry-failed), and readers of a
version 1 index, which lacks the column, treat every row that way; dedup then judges by pHash alone.

Version 3 adds the learned quality model's score and the main-image compliance measures, all nullable:
`quality_learned` (0-5, higher is better; null when the run had no model, pipeline/ingest/scoring.py),
`rank_in_product` (1 = the best score among the partition's accepted images of one product_id, ties by
image_id; null when not scored), and `white_border_share`, `product_fill` (0..1) and `compliant`
(pipeline/clean/compliance.py). Readers of a version 2 index, which lacks them, treat every row as not
scored and of unknown compliance, as do rows kept from one by --retry-failed (they keep their nulls).
Which model scored a partition is its manifest's `extra.run.quality_model`.

The rest is lineage and quality, computed once at ingest: the feed row (row_key, category, title, extra
JSON), how the bytes were stored (source_format, reencoded, bytes_sha256 of the stored bytes), the
normalize flags (what was changed to reach 8-bit sRGB), one float64 column per quality metric (null where
a metric does not apply, e.g. jpeg_quality of a PNG), the quality flags, and when the image was fetched
and first ingested.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 3

SPLIT_VALUES = ("train", "val", "test")
FORMAT_VALUES = ("jpeg", "png")
SOURCE_FORMAT_VALUES = ("jpeg", "png", "gif", "webp", "bmp", "tiff")  # what the cleaner decodes
FORMAT_EXTENSIONS = {"jpeg": "jpg", "png": "png"}  # shard member extension per stored format

# Mirrors the fields of pipeline.clean.quality.QualityMetrics (schemas/ imports nothing of ours; a test
# keeps the two in step).
QUALITY_METRIC_COLUMNS = (
    "sharpness",
    "brightness",
    "dark_score",
    "light_score",
    "contrast",
    "colorfulness",
    "channel_spread",
    "entropy",
    "jpeg_quality",
    "blockiness",
    "noise_sigma",
    "white_background_ratio",
    "aspect_ratio",
)

# The measures of pipeline.clean.compliance.Compliance the index stores (a test keeps the two in step).
COMPLIANCE_MEASURE_COLUMNS = ("white_border_share", "product_fill")
LEARNED_QUALITY_RANGE = (0.0, 5.0)  # the quality model contract's score range (pipeline/quality)

CORE_COLUMNS = (
    "image_id",
    "product_id",
    "url",
    "split",
    "shard",
    "offset",
    "size",
    "width",
    "height",
    "format",
    "phash",
    "partition",
)

TIMESTAMP = pa.timestamp("us", tz="UTC")
# Mirrors pipeline.clean.hashing.COLOR_SIGNATURE_BYTES (8 x 8 cells x L*a*b*; a test keeps the two in step).
COLOR_SIGNATURE_BYTES = 192
COLOR_SIGNATURE_TYPE = pa.binary(COLOR_SIGNATURE_BYTES)

IMAGE_INDEX_SCHEMA = declare(
    "image_index",
    VERSION,
    [
        # core contract
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("phash", pa.int64(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
        # feed lineage
        pa.field("row_key", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("title", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of the feed's other columns
        # storage
        pa.field("source_format", pa.string(), nullable=False),
        pa.field("reencoded", pa.bool_(), nullable=False),
        pa.field("bytes_sha256", pa.string(), nullable=False),
        pa.field("normalize_flags", pa.list_(pa.string()), nullable=False),
        # dedup (null = colour unknown)
        pa.field("color_signature", COLOR_SIGNATURE_TYPE),
        # quality
        *[pa.field(name, pa.float64()) for name in QUALITY_METRIC_COLUMNS],
        pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
        # learned quality (v3; null = not scored)
        pa.field("quality_learned", pa.float64()),
        pa.field("rank_in_product", pa.int32()),
        # main-image compliance (v3; null = not measured: a row kept from a v2 index)
        *[pa.field(name, pa.float64()) for name in COMPLIANCE_MEASURE_COLUMNS],
        pa.field("compliant", pa.bool_()),
        # time
        pa.field("fetched_at", TIMESTAMP, nullable=False),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
    ],
)


def phash_to_int64(value: int) -> int:
    """The uint64 perceptual hash as the signed int64 with the same 64 bits (Parquet has no uint64 here)."""
    if not 0 <= int(value) < 2**64:
        raise ValueError(f"phash {value} is not a 64-bit unsigned value")
    value = int(value)
    return value - 2**64 if value >= 2**63 else value


def phash_from_int64(value: int) -> int:
    """Inverse of `phash_to_int64`."""
    return int(value) & (2**64 - 1)


def member_extension(stored_format: str) -> str:
    """Shard member extension ("jpg" / "png") of a stored format; ValueError names the allowed ones."""
    try:
        return FORMAT_EXTENSIONS[stored_format]
    except KeyError:
        raise ValueError(
            f"stored format {stored_format!r} is not one of {', '.join(FORMAT_VALUES)}"
        ) from None
