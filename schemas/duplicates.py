"""Duplicate ledger record: an input row whose image duplicates a kept one.

`kind` is `exact` (same decoded pixels) or `near` (perceptual hash within the Hamming radius);
`duplicate_of` is the kept image's image_id, possibly in an earlier partition (`duplicate_of_partition`).
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1

DUPLICATE_SCHEMA = declare(
    "duplicate_ledger",
    VERSION,
    [
        pa.field("row_key", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("duplicate_of_partition", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("hamming_distance", pa.int32(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
)
