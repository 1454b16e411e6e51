"""Catalog feed record: one row per product image to fetch.

Required: product_id, image_url. Optional: category, title. Any other feed columns are carried through as
JSON in `extra`. `FEED_COLUMNS` lists the recognised names; `row_key` is assigned by the reader
(`<feed basename>:<row number>`) so every input row can be traced to its outcome.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1
REQUIRED_COLUMNS = ("product_id", "image_url")
OPTIONAL_COLUMNS = ("category", "title")

FEED_SCHEMA = declare(
    "catalog_feed",
    VERSION,
    [
        pa.field("row_key", pa.string(), nullable=False),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("image_url", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("title", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of carried-through columns
    ],
)
